"""int8 decoder: static (calibrated) int8 quantization of the vocoder's convolutions in decoder.onnx.

    python export/to_onnx.py --checkpoint CKPT --out exported/lj_int8 --int8-decoder

Which convolutions run in int8 (`QUANTIZED_CONVS`, matched on the exporter's node names, which carry
the module path): the vocoder's residual blocks at audio rate (`generator/resblocks`, `generator/noise_res`)
and its frame-rate AdaIN blocks (`encode`, `decode.*`, `asr_res`), where nearly all its FLOPs are.
What stays fp32, and why:
- the prosody predictor (durations, F0, energy): a duration that rounds the other way changes the
  audio's length, and the harmonic source integrates F0 over time;
- the vocoder's `F0_conv`/`N_conv` (cheap, frame rate) and `noise_convs` (the source's path into the
  network) and `conv_post` (the iSTFTNet's magnitude/phase, the HiFi-GAN's waveform): quantizing them
  costs most of the quality for little time;
- ConvTranspose (onnxruntime's CPU provider has no int8 kernel for it).

Format: QDQ (QuantizeLinear/DequantizeLinear pairs, which onnxruntime fuses into QLinearConv),
int8 symmetric per-channel weights, uint8 asymmetric activations with ranges from MinMax calibration
over the decoder's inputs for built-in sentences (`CALIBRATION_TEXTS`, not the benchmark's sentences).
"""
from __future__ import annotations

import inspect
import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

QUANTIZED_CONVS = re.compile(r"^/decoder/(generator/(resblocks|noise_res)\.|decode\.|encode/|asr_res/)")
CALIBRATION_TEXTS = (
    "Please call Stella and ask her to bring these things with her from the store.",
    "Yes!",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "Why would anyone whisper, when the whole valley is already asleep?",
)
HELD_OUT_TEXT = "The north wind and the sun were disputing which was the stronger, when a traveler came along."
DESCRIPTION = ("int8 vocoder: static QDQ int8 convolutions (per-channel symmetric int8 weights, uint8 "
               "activations, MinMax calibration) in the vocoder's residual and AdaIN blocks; prosody "
               "predictor, source path, output convolution and ConvTranspose fp32")


def quantized_conv_names(decoder_path: Path) -> tuple[list[str], list[str]]:
    """(Conv nodes to quantize, Conv nodes kept fp32) of an exported decoder.onnx."""
    import onnx

    model = onnx.load(str(decoder_path), load_external_data=False)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    chosen = [name for name in convs if QUANTIZED_CONVS.search(name)]
    return chosen, [name for name in convs if name not in chosen]


def calibration_feeds(model_dir: Path, texts: Sequence[str] = CALIBRATION_TEXTS, speed: float = 1.0,
                      seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The decoder's inputs for each text: phonemized with espeak-ng, run through the export's own
    text_encoder and diffusion_sampler graphs (onnxruntime), seeded noises. Multispeaker models are
    sampled with a zero reference style (calibration needs plausible ranges, not a voice)."""
    import onnxruntime as ort

    from styletts2.runtime.model_dir import read_model_json
    from styletts2.text.phonemizer import EspeakPhonemizer
    from styletts2.text.tokenizer import Tokenizer

    config = read_model_json(model_dir)
    sessions = {name: ort.InferenceSession(str(config.graph_file(name)), providers=["CPUExecutionProvider"])
                for name in ("text_encoder", "diffusion_sampler")}
    phonemize, tokenizer = EspeakPhonemizer(), Tokenizer()
    rng = np.random.default_rng(seed)
    width = 2 * config.style_dim
    feeds = []
    for index, text in enumerate(texts):
        tokens = np.array([[config.pad_id, *tokenizer.encode(phonemize(text), add_bos=False, add_eos=False)]],
                          dtype=np.int64)
        lengths = np.array([tokens.shape[1]], dtype=np.int64)
        t_en, bert, d_en = sessions["text_encoder"].run(None, {"tokens": tokens, "token_lengths": lengths})
        sampler_in = {"bert": bert, "noise": rng.standard_normal((1, 1, width), dtype=np.float32),
                      "step_noises": rng.standard_normal((config.diffusion_steps - 1, 1, 1, width), dtype=np.float32),
                      "embedding_scale": np.array(1.0, dtype=np.float32)}
        if config.multispeaker:
            sampler_in["reference_style"] = np.zeros((1, width), dtype=np.float32)
        style = sessions["diffusion_sampler"].run(None, sampler_in)[0]
        feeds.append({"t_en": t_en, "d_en": d_en, "style": style, "speed": np.array(speed, dtype=np.float32),
                      "token_lengths": lengths, "noise_seed": np.array(seed + index, dtype=np.int64),
                      "tail_frames": np.array(config.defaults["tail_frames"], dtype=np.int64)})
    return feeds


class _Feeds:
    """onnxruntime's calibration reader over a list of decoder inputs."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self.pending = iter(feeds)

    def get_next(self):
        return next(self.pending, None)


def calibrate_ranges(source: Path, feeds: Sequence[dict[str, np.ndarray]], cache: Path) -> None:
    """MinMax ranges over `feeds` of every tensor `quantize_static` calibrates in `source`, written
    to `cache` (its `calibration_cache_path`).

    onnxruntime's calibrator appends a min and a max reduction per calibrated tensor, and its session
    runs them all after the whole graph: every calibrated tensor stays alive to the end of a run (the
    LJSpeech-size decoder peaked at 4.3 GB on the calibration sentences, 16 GB at 4x their length).
    The same graph run in priority order reduces each tensor after its producer: 1.35 GB."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="styletts2_calibration.") as folder:
        calibrator = create_calibrator(source, ["Conv"], augmented_model_path=str(Path(folder) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax, providers=["CPUExecutionProvider"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the calibrator's own
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, options,
                                                        providers=["CPUExecutionProvider"])
        calibrator.collect_data(_Feeds(feeds))
        save_tensors_data(calibrator.compute_data(), cache)


def quantize_decoder(source: Path, target: Path, feeds: Iterable[dict[str, np.ndarray]],
                     lean_calibration: bool | None = None) -> dict:
    """Write `target`, `source` (a decoder.onnx) with `QUANTIZED_CONVS` in static int8, calibrated on
    `feeds` (decoder inputs). Returns a summary for model.json.

    lean_calibration: ranges from `calibrate_ranges` (the same values in a third of the memory),
    which needs onnxruntime's calibration cache (None: whenever this onnxruntime has it)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    chosen, kept = quantized_conv_names(source)
    if not chosen:
        raise ValueError(f"{source}: no vocoder convolution matches {QUANTIZED_CONVS.pattern}")
    feeds = list(feeds)
    if not feeds:
        raise ValueError("int8 calibration needs at least one set of decoder inputs")
    target.parent.mkdir(parents=True, exist_ok=True)
    has_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    if lean_calibration and not has_cache:
        raise ValueError("lean int8 calibration needs an onnxruntime whose quantize_static takes calibration_cache_path")
    lean = has_cache if lean_calibration is None else lean_calibration
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor it (rightly) leaves alone
    try:
        with tempfile.TemporaryDirectory(prefix="styletts2_int8.") as folder:
            if lean:  # ranges computed in less memory, handed over as a calibration cache
                calibration = {"calibration_data_reader": None, "calibration_cache_path": Path(folder) / "ranges.json"}
                calibrate_ranges(source, feeds, calibration["calibration_cache_path"])
            else:  # onnxruntime before its calibration cache: its own calibration session
                calibration = {"calibration_data_reader": _Feeds(feeds)}
            quantize_static(str(source), str(target), **calibration, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv"], nodes_to_exclude=kept, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            # 7-bit weights: on x86 CPUs without VNNI (AVX2 only) onnxruntime's u8 x s8
                            # kernels sum pairs in int16 and saturate with full 8-bit weights (12 dB SNR
                            # here instead of > 20); 7 bits cannot overflow, on every CPU.
                            reduce_range=True,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    finally:
        root.setLevel(level)
    return {"decoder": DESCRIPTION, "int8_convs": len(chosen), "fp32_convs": len(kept),
            "calibration_utterances": len(feeds)}


def quality(reference: np.ndarray, other: np.ndarray, mel_config: dict) -> dict[str, float]:
    """SNR (dB) of `other` against `reference` (1-D waveforms) and the mean |difference| of their
    natural-log mels (the runtime's mel front-end)."""
    from styletts2.export.metrics import log_mel_distance, snr_db
    from styletts2.runtime.mel import LogMel

    return {"snr_db": round(snr_db(reference, other), 2),
            "log_mel_l1": round(log_mel_distance(reference, other, LogMel(**mel_config)), 5)}
