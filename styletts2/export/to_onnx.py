"""Export a StyleTTS2 model to ONNX: text_encoder, diffusion_sampler (and diffusion_sampler_unguided,
its one-pass form for embedding_scale 1), decoder and style_encoder (reference clips; the
multispeaker sampler's reference style) plus model.json and a README.md model card.

    python export/to_onnx.py --checkpoint runs/ljspeech/stage2/last.pth --out exported/ljspeech
    python export/to_onnx.py --checkpoint epoch_2nd_00100.pth --config gin/model/ljspeech.gin --out exported/lj
    python export/to_onnx.py --random-init gin/model/libritts.gin --out exported/random_libritts
    python export/to_onnx.py --checkpoint CKPT --out exported/lj_int8 --int8-decoder --int8-weights
    python export/to_onnx.py --checkpoint CKPT --out exported/lj_fp16 --fp16       # for GPU providers
    python export/to_onnx.py --checkpoint CKPT --out exported/lj --without-style-encoder   # no reference clips

Graphs use the TorchScript-based exporter (`dynamo=False`), fp32, dynamic batch/length axes.
`--int8-decoder` then quantizes the vocoder's convolutions to int8 (styletts2/export/quantize.py) and records
the quality cost against the fp32 decoder on a held-out sentence in model.json. `--fp16` rewrites every
graph in fp16 for GPU providers (styletts2/export/half.py: the prosody predictor stays fp32; inputs
and outputs stay float32) and records the decoder's cost the same way. `--int8-weights` stores every
other large weight in 8 bits (styletts2/export/int8_weights.py: float32 arithmetic, a quarter of the
bytes; PL-BERT and the prosody predictor keep float32 weights) and records the cost on a held-out
sentence.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from styletts2.export.common import ExportError, add_arguments, dynamic_axes, load_for_export, staged_export, \
    write_graphs
from styletts2.export.model_card import graph_metadata, model_json, save_model_card
from styletts2.export.shared_weights import share_folder_weights
from styletts2.errors import run_guarded
from styletts2.synthesis_limits import OPTION_RANGES

MIN_OPSET = 17


def export_graph(graph: torch.nn.Module, inputs: tuple, spec: dict, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        # Tracer warnings about Python-side shape checks: those checks guard, they do not compute.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, inputs, str(path), input_names=[t["name"] for t in spec["inputs"]],
                          output_names=[t["name"] for t in spec["outputs"]], dynamic_axes=dynamic_axes(spec),
                          opset_version=opset, dynamo=False, do_constant_folding=True)


def stamp_io_shapes(path: Path, spec: dict, metadata: dict[str, str] | None = None) -> None:
    """Write the declared shapes (axis names, static sizes) onto the graph's inputs and outputs; the
    exporter leaves some static sizes symbolic where its shape inference loses track (after gathers).
    `metadata` (model.json fields the graph fixes, `graph_metadata`) goes into its metadata_props, which
    the runtime compares with model.json."""
    import onnx

    proto = onnx.load(str(path))
    for value, declared in zip(list(proto.graph.input) + list(proto.graph.output), spec["inputs"] + spec["outputs"]):
        if value.name != declared["name"]:
            raise ExportError(f"{path.name}: graph I/O {value.name!r} where {declared['name']!r} was declared")
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, declared["shape"]):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    if metadata:
        onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))


def ort_session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, spec: dict, inputs: tuple) -> list[np.ndarray]:
    feed = {t["name"]: x.detach().cpu().numpy() for t, x in zip(spec["inputs"], inputs)}
    return session.run([t["name"] for t in spec["outputs"]], feed)


@torch.no_grad()
def compare(graph: torch.nn.Module, spec: dict, inputs: tuple, outputs: list[np.ndarray]) -> dict[str, float]:
    """Max abs error per output against torch eager (durations: max abs difference in frames)."""
    expected = graph(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    errors = {}
    for t, want, got in zip(spec["outputs"], expected, outputs):
        want = want.cpu().numpy()
        if want.shape != got.shape:
            raise ExportError(f"{t['name']}: exported graph gives shape {got.shape}, eager {want.shape}")
        errors[t["name"]] = float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max()) if want.size else 0.0
    return errors


def export_onnx(loaded, out_dir: Path, steps: int = 5, opset: int = MIN_OPSET, verify: bool = True,
                int8_decoder: bool = False, calibration_speed: float = 1.0, fp16: bool = False,
                without_style_encoder: bool = False, int8_weights: bool = False) -> dict:
    """Trace and write every graph (the decoder in int8 if asked) and the model card; returns
    model.json's content. Written into a staging folder that replaces out_dir at the end only."""
    if opset < MIN_OPSET:
        raise ExportError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    check_precision_flags(fp16, int8_decoder or int8_weights)
    low_speed = OPTION_RANGES["speed"][0]
    if not (math.isfinite(calibration_speed) and calibration_speed >= low_speed):  # 0 fails in a Reshape
        raise ExportError(f"--calibration-speed must be a finite number of at least {low_speed:g} (the runtime's "
                          f"lowest speed), got {calibration_speed:g}")
    leave_out = style_encoder_left_out(loaded.model, without_style_encoder)
    with staged_export(Path(out_dir)) as staging:
        info = _export_into(loaded, staging, steps, opset, verify, int8_decoder, calibration_speed, fp16, leave_out,
                            int8_weights)
    print(f"wrote {out_dir / 'model.json'} and {out_dir / 'README.md'}")
    return info


def check_precision_flags(fp16: bool, int8: bool) -> None:
    if fp16 and int8:
        raise ExportError("--fp16 and --int8-decoder / --int8-weights exclude each other: int8 is for CPUs, "
                          "fp16 for GPU providers")


def style_encoder_left_out(model, without_style_encoder: bool) -> frozenset[str]:
    """The graphs `--without-style-encoder` leaves out: a single-speaker model samples every style
    without one, and only reading styles from a reference clip needs it (106 MiB at LJSpeech size)."""
    if not without_style_encoder:
        return frozenset()
    if model.multispeaker:
        raise ExportError("--without-style-encoder: a multispeaker model's sampler takes a reference style, "
                          "which its style encoder reads: export it with the style encoder")
    return frozenset({"style_encoder"})


def _export_into(loaded, out_dir: Path, steps: int, opset: int, verify: bool, int8_decoder: bool,
                 calibration_speed: float, fp16: bool = False, leave_out: frozenset[str] = frozenset(),
                 int8_weights: bool = False) -> dict:
    metadata = graph_metadata(loaded.model)

    def save(graph, inputs, spec, path):
        export_graph(graph, inputs, spec, path, opset)
        stamp_io_shapes(path, spec, metadata.get(path.stem))

    def check(graph, spec, inputs, path):
        return compare(graph, spec, inputs, run_onnx(ort_session(path), spec, inputs))

    spec, verification = write_graphs(loaded.model, steps, out_dir, ".onnx", "onnxruntime", save,
                                      check if verify else None, leave_out)
    info = model_json(loaded, steps, spec, "onnx", opset)
    share_folder_weights(out_dir, info)
    save_model_card(out_dir, info, "onnxruntime", verification or None)
    if int8_decoder:  # calibration drives the graphs just written, through model.json
        info["precision"]["decoder"] = quantize_decoder_in_place(out_dir, calibration_speed)
        save_model_card(out_dir, info, "onnxruntime", verification or None)
    if int8_weights:  # the held-out check reads the rewritten graphs through model.json's hashes
        int8_weights_in_place(out_dir, info, calibration_speed,
                              lambda: save_model_card(out_dir, info, "onnxruntime", verification or None))
    if fp16:
        half_precision_in_place(out_dir, info, calibration_speed)
        save_model_card(out_dir, info, "onnxruntime", verification or None)
    return info


def half_precision_in_place(out_dir: Path, info: dict, calibration_speed: float) -> None:
    """Every graph rewritten in fp16 (styletts2/export/half.py), the shared weights shared again, and
    the decoder's quality against its fp32 form on a held-out sentence recorded in `info`."""
    from styletts2.export.half import convert_folder
    from styletts2.export.model_card import mel_config
    from styletts2.export.quantize import HELD_OUT_TEXT, calibration_feeds, quality

    print("rewriting the graphs in fp16 ...", flush=True)
    (held_out,) = calibration_feeds(out_dir, [HELD_OUT_TEXT], speed=calibration_speed)
    want = ort_session(out_dir / "decoder.onnx").run(None, held_out)
    convert_folder(out_dir, info)
    share_folder_weights(out_dir, info)
    got = ort_session(out_dir / "decoder.onnx").run(None, held_out)
    if not np.array_equal(want[1], got[1]):
        raise ExportError("the fp16 decoder predicts other durations than the fp32 one (the predictor should be fp32)")
    record = {"decoder": info["precision"]["decoder"],
              "quality_vs_fp32": {"text": HELD_OUT_TEXT, **quality(want[0][0], got[0][0], mel_config())}}
    info["precision"]["decoder"] = record
    print(f"  held-out sentence, fp16 decoder vs fp32: SNR {record['quality_vs_fp32']['snr_db']} dB, "
          f"log-mel L1 {record['quality_vs_fp32']['log_mel_l1']}", flush=True)


def int8_weights_in_place(out_dir: Path, info: dict, calibration_speed: float, save_card: Callable[[], None]) -> None:
    """Every graph's large weights stored in 8 bits (styletts2/export/int8_weights.py), the shared weights
    shared again, and the cost on a held-out sentence recorded in `info["int8_weights"]`: SNR of the
    text encoder's and the sampler's outputs, and of the decoder's waveform given the same inputs,
    each against the graphs before (with `--int8-decoder`, the int8 decoder)."""
    from styletts2.export.int8_weights import store_folder_int8
    from styletts2.export.metrics import snr_db
    from styletts2.export.model_card import mel_config
    from styletts2.export.quantize import HELD_OUT_TEXT, calibration_feeds, quality

    print("storing the weights in 8 bits ...", flush=True)
    (before,) = calibration_feeds(out_dir, [HELD_OUT_TEXT], speed=calibration_speed)
    want = ort_session(out_dir / "decoder.onnx").run(None, before)
    counts = store_folder_int8(out_dir, info)
    share_folder_weights(out_dir, info)
    save_card()
    (after,) = calibration_feeds(out_dir, [HELD_OUT_TEXT], speed=calibration_speed)
    got = ort_session(out_dir / "decoder.onnx").run(None, before)
    if not np.array_equal(want[1], got[1]):
        raise ExportError("with 8-bit weights the decoder predicts other durations (the predictor should keep float32)")
    record = {name: round(snr_db(before[name], after[name]), 2) for name in ("t_en", "d_en", "style")}
    record["decoder"] = quality(want[0][0], got[0][0], mel_config())
    info["int8_weights"] = {"weights": counts, "quality_vs_float_weights": {"text": HELD_OUT_TEXT, **record}}
    print(f"  {sum(counts.values())} weights in 8 bits; held-out sentence vs before, SNR: text encoder "
          f"{record['t_en']} / {record['d_en']} dB, style {record['style']} dB, decoder waveform "
          f"{record['decoder']['snr_db']} dB (log-mel L1 {record['decoder']['log_mel_l1']})", flush=True)
    save_card()


def quantize_decoder_in_place(out_dir: Path, calibration_speed: float) -> dict:
    """Replace out_dir/decoder.onnx by its int8 form; returns the precision record for model.json,
    with the int8 decoder's SNR and log-mel distance against the fp32 one on a held-out sentence."""
    from styletts2.export.model_card import mel_config
    from styletts2.export.quantize import CALIBRATION_TEXTS, HELD_OUT_TEXT, calibration_feeds, quality, quantize_decoder

    fp32, int8 = out_dir / "decoder.onnx", out_dir / "decoder.int8.onnx"
    print(f"calibrating and quantizing the decoder to int8 (speed {calibration_speed:g}) ...", flush=True)
    start = time.perf_counter()
    *feeds, held_out = calibration_feeds(out_dir, [*CALIBRATION_TEXTS, HELD_OUT_TEXT], speed=calibration_speed)
    record = quantize_decoder(fp32, int8, feeds)
    want = ort_session(fp32).run(None, held_out)
    got = ort_session(int8).run(None, held_out)
    if not np.array_equal(want[1], got[1]):
        raise ExportError("the int8 decoder predicts other durations than the fp32 one (the predictor should be fp32)")
    record["quality_vs_fp32"] = {"text": HELD_OUT_TEXT, **quality(want[0][0], got[0][0], mel_config())}
    int8.replace(fp32)
    print(f"  {record['int8_convs']} convolutions in int8, {record['fp32_convs']} fp32, in "
          f"{time.perf_counter() - start:.1f} s; held-out sentence vs fp32: SNR {record['quality_vs_fp32']['snr_db']} dB, "
          f"log-mel L1 {record['quality_vs_fp32']['log_mel_l1']}", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    add_arguments(parser)
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET}, default {MIN_OPSET})")
    parser.add_argument("--int8-decoder", action="store_true",
                        help="quantize the vocoder's convolutions to int8 (calibrated on built-in sentences; "
                             "CPU speed-up, quality cost recorded in model.json)")
    parser.add_argument("--int8-weights", action="store_true",
                        help="store every graph's large weights in 8 bits (float32 arithmetic, a quarter of the "
                             "bytes; PL-BERT and the prosody predictor keep float32); cost recorded in model.json")
    parser.add_argument("--fp16", action="store_true",
                        help="every graph in fp16 for GPU providers (the prosody predictor stays fp32; inputs and "
                             "outputs stay float32); the decoder's cost against fp32 is recorded in model.json")
    parser.add_argument("--without-style-encoder", action="store_true",
                        help="single-speaker models: leave the style encoder out (a smaller folder; the runtime "
                             "then samples every style and cannot read a reference clip)")
    parser.add_argument("--calibration-speed", type=float, default=1.0,
                        help="decoder speed input during int8 calibration and the fp16 quality check (default 1; random-init models "
                             "predict ~25 frames per token, use ~5-10 there)")
    args = parser.parse_args(argv)
    return run_guarded("to_onnx.py", lambda: _export(args), debug=args.debug)


def _export(args: argparse.Namespace) -> int:
    if args.opset < MIN_OPSET:
        raise ExportError(f"--opset must be >= {MIN_OPSET}, got {args.opset}")
    check_precision_flags(args.fp16, args.int8_decoder or args.int8_weights)  # before the model loads
    loaded = load_for_export(args)
    export_onnx(loaded, Path(args.out), args.steps, args.opset, verify=not args.no_verify,
                int8_decoder=args.int8_decoder, calibration_speed=args.calibration_speed, fp16=args.fp16,
                without_style_encoder=args.without_style_encoder, int8_weights=args.int8_weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
