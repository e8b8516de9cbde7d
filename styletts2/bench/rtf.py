"""Real-time factor (RTF = compute seconds / audio seconds) of StyleTTS2 inference, per component and
backend, plus the compute floor (counted FLOPs per second of audio over the measured matmul rate).

    python bench/rtf.py --random-init gin/model/ljspeech.gin --threads 2 --repeats 5 --json bench/results/x.json
    python bench/rtf.py --checkpoint runs/ljspeech/stage2/last.pth --backends eager,onnxruntime
    python bench/rtf.py --model exported/ljspeech --backends onnxruntime
    python bench/rtf.py --random-init gin/model/ljspeech.gin --backends torch --upstream ../StyleTTS2

`--upstream PATH` adds upstream's own inference code, from a checkout, as the `upstream` backend, on
the same weights (`upstream_worker.py`, in a process of its own; its compute time is measured
there): the comparison with the original code, which anyone with a checkout can reproduce.

Built-in sentences (short, medium, long: about 1, 5 and 15 s of audio), batch 1. With --random-init
the predicted durations are random (about 25 frames per token), so the audio length is pinned: the
decoder's `speed` input, which divides every duration, is calibrated per sentence so that the output
is the sentence's target length (`--speed auto`, the default for --random-init). Every backend gets
the same inputs, speed included, so they all render the same number of samples.

Each repeat runs every sentence through every backend, the backend order rotated per repeat (so
slow drift in a shared machine's load hits all backends alike); `--warmup` rounds are discarded.
The JSON is {"machine": {...}, "settings": {...}, "rows": [...], ...}; a row is
{"backend", "precision", "component", "sentence", "rtf_median", "rtf_p95", ...} with component
text_encoder, diffusion_sampler, decoder or end_to_end, sentence short, medium, long or "all" (the
three in sequence, as a streamed paragraph: its end_to_end row carries time to first audio).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from styletts2.bench.machine import machine_record
from styletts2.export.metrics import log_mel_distance, snr_db
from styletts2.errors import UserError, add_debug_flag, folder_problem, run_guarded
from styletts2.synthesis_limits import OPTION_RANGES

COMPONENTS = ("text_encoder", "diffusion_sampler", "decoder")
UNGUIDED = "diffusion_sampler_unguided"  # the sampler's one-pass graph for embedding_scale 1, where exported
# Fixed texts; target seconds of audio they are pinned to with --speed auto (random weights).
SENTENCES = {
    "short": ("Hello there, friend.", 1.0),
    "medium": ("The quick brown fox jumps over the lazy dog, then rests beside the quiet river.", 5.0),
    "long": ("On a clear autumn morning, the old lighthouse keeper climbed the narrow spiral stairs, "
             "polished the great brass lamp until it shone like the sun, and watched the fishing boats "
             "drift slowly out of the harbour toward the grey and restless sea, wondering whether the "
             "storm the radio had promised would arrive before nightfall.", 15.0),
}
DEFAULT_BACKENDS = "torch,eager,torchscript,onnxruntime,eager:bf16,onnxruntime:int8"
F0_BIAS_HZ = 150.0  # random weights: F0 sits near 0 Hz, below the voicing threshold (see --help)


# Inputs ------------------------------------------------------------------------------------------

def sentence_tokens(names: list[str]) -> dict[str, list[int]]:
    """Token ids (no leading pad) of the built-in sentences, through the espeak-ng front-end."""
    from styletts2.text.phonemizer import EspeakPhonemizer
    from styletts2.text.tokenizer import Tokenizer

    phonemize, tokenizer = EspeakPhonemizer(), Tokenizer()
    return {n: tokenizer.encode(phonemize(SENTENCES[n][0]), add_bos=False, add_eos=False) for n in names}


def base_feeds(ids: list[int], style_width: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Every graph input except the ones that come out of other graphs."""
    rng = np.random.default_rng(seed)
    tokens = np.array([[0, *ids]], dtype=np.int64)
    return {"tokens": tokens, "token_lengths": np.array([tokens.shape[1]], dtype=np.int64),
            "noise": rng.standard_normal((1, 1, style_width), dtype=np.float32),
            "step_noises": rng.standard_normal((steps - 1, 1, 1, style_width), dtype=np.float32),
            "embedding_scale": np.array(1.0, dtype=np.float32), "speed": np.array(1.0, dtype=np.float32),
            "noise_seed": np.array(seed, dtype=np.int64),
            # no tail: each sentence renders exactly the frames calibrate_speed aims at
            "tail_frames": np.array(0, dtype=np.int64)}


def run_chain(backend, feeds: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """text_encoder -> diffusion_sampler -> decoder; returns (seconds per component and end_to_end,
    outputs). Single-speaker: the sampled style goes to the decoder as is (no reference mixing)."""
    seconds, out = {}, dict(feeds)
    start = time.perf_counter()
    for component in COMPONENTS:
        if component == "decoder":
            out["style"] = out["style"].astype(np.float32)
        t = time.perf_counter()
        out.update(backend.run(graph_of(component, backend, feeds), out))
        seconds[component] = time.perf_counter() - t
    seconds["end_to_end"] = time.perf_counter() - start
    if hasattr(backend, "component_seconds"):  # a worker process: its own compute time, without the pipe
        seconds = {component: backend.component_seconds[component] for component in COMPONENTS}
        seconds["end_to_end"] = sum(seconds.values())
    return seconds, out


def graph_of(component: str, backend, feeds: dict[str, np.ndarray]) -> str:
    """The graph that computes `component`: at embedding_scale 1 the sampler needs no guidance pass,
    so the one-pass graph runs where the export has it (as the torch synthesizer makes one pass)."""
    if component == "diffusion_sampler" and float(feeds["embedding_scale"]) == 1.0 and backend.has_graph(UNGUIDED):
        return UNGUIDED
    return component


def calibrate_speed(eager, feeds: dict[str, np.ndarray], target_frames: int) -> float:
    """The `speed` input that makes the decoder render about `target_frames` alignment frames.

    The decoder graph computes durations = max(1, round(expected / speed)) with expected = the summed
    duration sigmoids; `expected` is computed here once with the eager graph's own predictor modules
    (at speed 1), and frames(speed) is then evaluated as the graph rounds it, in float32."""
    import torch

    from styletts2.graphs import padding_mask
    from styletts2.modules.prosody_predictor import frames_per_token

    torch.set_grad_enabled(False)
    graph = eager.graphs["decoder"]
    encoded = eager.run("text_encoder", feeds)
    style = torch.from_numpy(eager.run("diffusion_sampler", {**feeds, **encoded})["style"])
    d_en, lengths = torch.from_numpy(encoded["d_en"]), torch.from_numpy(feeds["token_lengths"])
    mask = padding_mask(lengths, d_en.shape[2])
    prosodic = style[:, graph.style_dim:]
    d = graph.duration_encoder(d_en, prosodic, lengths, mask)
    x = graph.duration_lstm(d, lengths, mask)
    expected = graph.predictor.expected_frames(x)[0]

    # Frame counts over a fine log grid of speeds; of the speeds closest to the target, take the
    # middle one: away from a rounding step, a backend's last-bit differences cannot flip a duration.
    speeds = np.geomspace(1e-2, 1e3, 20001).astype(np.float32)
    frames = frames_per_token(expected[None, :] / torch.from_numpy(speeds)[:, None]).sum(dim=1).numpy()
    best = np.flatnonzero(np.abs(frames - target_frames) == np.abs(frames - target_frames).min())
    return float(speeds[best[len(best) // 2]])


# Measurements ------------------------------------------------------------------------------------

def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux clear_refs); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def benchmark(backends: list, feeds: dict[str, dict], repeats: int, warmup: int, sample_rate: int,
              measure_memory: bool) -> tuple[dict, dict, dict]:
    """Interleaved timing. Returns (times[label][sentence][component] -> list of seconds,
    memory[label] -> {peak_rss_mb, peak_delta_mb}, outputs[label][sentence] from the last repeat)."""
    times = {b.label: {s: {c: [] for c in (*COMPONENTS, "end_to_end")} for s in feeds} for b in backends}
    memory = {b.label: {"peak_rss_mb": 0.0, "peak_delta_mb": 0.0} for b in backends}
    outputs = {b.label: {} for b in backends}
    for round_ in range(warmup + repeats):
        order = backends[round_ % len(backends):] + backends[:round_ % len(backends)]
        for sentence, feed in feeds.items():
            for backend in order:
                before = _rss_mb("VmRSS") if measure_memory and reset_peak_rss() else None
                seconds, out = run_chain(backend, feed)
                if before is not None and hasattr(backend, "peak_rss_mb"):  # a worker process: its own peak
                    memory[backend.label]["peak_rss_mb"] = backend.peak_rss_mb
                elif before is not None:
                    peak = _rss_mb("VmHWM")
                    mem = memory[backend.label]
                    mem["peak_rss_mb"] = max(mem["peak_rss_mb"], peak)
                    mem["peak_delta_mb"] = max(mem["peak_delta_mb"], peak - before)
                if round_ >= warmup:
                    for component, s in seconds.items():
                        times[backend.label][sentence][component].append(s)
                outputs[backend.label][sentence] = out
        print(f"  round {round_ + 1}/{warmup + repeats}{' (warm-up)' if round_ < warmup else ''} done", flush=True)
    return times, memory, outputs


RATIO_REFERENCES = {"ratio_to_eager": "eager/fp32", "ratio_to_torch": "torch/fp32", "ratio_to_upstream": "upstream/fp32"}
QUALITY_REFERENCE = "eager/fp32"  # sample-exact: the exported graphs in torch eager, same noises


def make_rows(backends, times, memory, outputs, sample_rate: int, mel) -> list[dict]:
    """Rows per backend, sentence and component, plus the "all" (streamed paragraph) row; end_to_end
    rows carry memory, per-repeat-paired ratios to the references and quality against eager fp32."""
    rows = []
    sentences = list(next(iter(times.values())))
    references = {key: label for key, label in RATIO_REFERENCES.items() if label in times}
    for backend in backends:
        label = backend.label
        audio = {s: outputs[label][s]["waveform"].shape[-1] / sample_rate for s in sentences}
        for sentence in sentences:
            for component, values in times[label][sentence].items():
                rtf = [v / audio[sentence] for v in values]
                row = {"backend": backend.name, "precision": backend.precision, "component": component,
                       "sentence": sentence, "audio_s": round(audio[sentence], 3),
                       "tokens": int(outputs[label][sentence]["tokens"].shape[1]),
                       "rtf_median": statistics.median(rtf), "rtf_p95": percentile(rtf, 95), "rtf_min": min(rtf),
                       "seconds_median": statistics.median(values), "repeats": len(values),
                       "seconds": [round(v, 4) for v in values]}
                if component == "end_to_end":
                    row.update(memory[label])
                    for key, reference in references.items():
                        # paired per repeat: the same round's load hit both
                        ref = [t / (outputs[reference][sentence]["waveform"].shape[-1] / sample_rate)
                               for t in times[reference][sentence]["end_to_end"]]
                        row[key] = statistics.median(r / q for r, q in zip(rtf, ref))
                    if QUALITY_REFERENCE in outputs:
                        row.update(quality(outputs[QUALITY_REFERENCE][sentence], outputs[label][sentence], mel,
                                           sample_exact=backend.name not in ("torch", "upstream")))
                rows.append(row)
        # The sentences in sequence: a paragraph streamed piece by piece (short first); its time to
        # first audio is the first piece's end-to-end time.
        n = len(times[label][sentences[0]]["end_to_end"])
        total_audio = sum(audio.values())
        rtf = [sum(times[label][s]["end_to_end"][i] for s in sentences) / total_audio for i in range(n)]
        first = times[label][sentences[0]]["end_to_end"]
        row = {"backend": backend.name, "precision": backend.precision, "component": "end_to_end",
               "sentence": "all", "audio_s": round(total_audio, 3), "rtf_median": statistics.median(rtf),
               "rtf_p95": percentile(rtf, 95), "rtf_min": min(rtf), "seconds_median": statistics.median(r * total_audio for r in rtf),
               "repeats": n, "ttfa_median_s": statistics.median(first), "ttfa_p95_s": percentile(first, 95),
               **memory[label]}
        for key, reference in references.items():
            ref_audio = sum(outputs[reference][s]["waveform"].shape[-1] for s in sentences) / sample_rate
            ref = [sum(times[reference][s]["end_to_end"][i] for s in sentences) / ref_audio for i in range(n)]
            row[key] = statistics.median(r / q for r, q in zip(rtf, ref))
        rows.append(row)
    return rows


def quality(reference: dict, other: dict, mel, sample_exact: bool = True) -> dict:
    """Waveform SNR (dB) and log-mel distance against the reference backend's output, same inputs
    (durations only where the backend draws its own noise)."""
    ref_wave, wave = reference["waveform"][0], other["waveform"][0]
    durations = {"durations_equal": bool(np.array_equal(reference["durations"], other["durations"]))}
    if not sample_exact:
        return durations
    return {**durations,
            "snr_db": snr_db(ref_wave, wave), "logmel_l1": log_mel_distance(ref_wave, wave, mel),
            "max_abs": float(np.max(np.abs(ref_wave.astype(np.float64) - wave))) if ref_wave.shape == wave.shape
            else float("inf")}


# FLOPs and floor ---------------------------------------------------------------------------------

def count_model_flops(eager, feeds: dict[str, dict], outputs: dict[str, dict], sample_rate: int) -> dict:
    """FLOPs of each component (eager fp32 graphs, one run per sentence) per second of audio."""
    from styletts2.bench.flops import count_flops

    totals = {c: 0 for c in COMPONENTS}
    uncounted: set[str] = set()
    audio = 0.0
    for sentence, feed in feeds.items():
        out = outputs[sentence]
        audio += out["waveform"].shape[-1] / sample_rate
        for component in COMPONENTS:
            flops, _, missing = count_flops(eager.run, graph_of(component, eager, feed), out)
            totals[component] += flops
            uncounted.update(missing)
    per_second = {c: totals[c] / audio for c in COMPONENTS}
    per_second["end_to_end"] = sum(per_second.values())
    return {"gflop_per_audio_second": {k: round(v / 1e9, 3) for k, v in per_second.items()},
            "audio_s": round(audio, 3), "uncounted_ops": sorted(uncounted)}


def floor_rows(flops: dict, rates: dict) -> list[dict]:
    """RTF floor per precision and component: FLOPs per audio second / best measured matmul rate."""
    rows = []
    for precision, by_library in rates.items():
        for component, gflop in flops["gflop_per_audio_second"].items():
            rows.append({"precision": precision, "component": component, "gflop_per_audio_second": gflop,
                         "matmul_gflops": by_library["best"], "floor_rtf": gflop / by_library["best"]})
    return rows


# Profiles ----------------------------------------------------------------------------------------

def profile_decoder(decoders: dict[str, Path], eager, feed: dict, threads: int, options_kwargs: dict, top: int = 12,
                    scope_depth: int = 3) -> dict:
    """Where the decoder's time goes: onnxruntime's per-node profile of each decoder graph in
    `decoders` ({label: path}), summed by op type and by module, and torch profiler's self CPU time
    per aten op; each profiled run follows a warm-up run."""
    import torch

    result = {label: _onnx_profile(path, feed, threads, options_kwargs, top, scope_depth)
              for label, path in decoders.items()}
    eager.run("decoder", feed)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        eager.run("decoder", feed)
    averages = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in averages) / 1e6
    result["eager"] = {"total_self_s": round(total, 4), "by_op": [
        {"op": e.key, "seconds": round(e.self_cpu_time_total / 1e6, 4), "share": round(e.self_cpu_time_total / 1e6 / total, 4),
         "calls": e.count} for e in averages[:top]]}
    return result


def _onnx_profile(path: Path, feed: dict, threads: int, options_kwargs: dict, top: int, scope_depth: int) -> dict:
    import onnxruntime as ort

    from styletts2.bench.backends import session_options

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads, profile_prefix=str(Path(tmp) / "decoder"), **options_kwargs)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: feed[i.name] for i in session.get_inputs()}
        for _ in range(2):  # the first run pays for allocation
            session.run(None, inputs)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    start = runs[-1]["ts"] if runs else 0  # the profile holds both runs: keep the second
    by_op: dict[str, float] = {}
    by_scope: dict[str, float] = {}  # node names carry the module path: /decoder/generator/resblocks.3/...
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            op, seconds = e.get("args", {}).get("op_name", "?"), e["dur"] / 1e6
            by_op[op] = by_op.get(op, 0.0) + seconds
            module = e["name"].split("/")[1:-1]  # module path without the node's own name
            scope = "/".join(module[:scope_depth]) or "(top level: noise, alignment, glue)"
            by_scope[scope] = by_scope.get(scope, 0.0) + seconds
    total = sum(by_op.values())

    def shares(table: dict[str, float]) -> list[dict]:
        return [{"op": k, "seconds": round(v, 4), "share": round(v / total, 4)}
                for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:top]]

    return {"total_kernel_s": round(total, 4), "by_op_type": shares(by_op), "by_scope": shares(by_scope)}


# Output ------------------------------------------------------------------------------------------

def markdown(rows: list[dict], floors: list[dict], flops: dict | None) -> str:
    ratio_keys = ["ratio_to_torch", "ratio_to_eager"] + (["ratio_to_upstream"] if any("ratio_to_upstream" in r for r in rows)
                                                         else [])
    heads = {"ratio_to_torch": "vs torch", "ratio_to_eager": "vs eager", "ratio_to_upstream": "vs upstream"}
    lines = ["| backend | precision | sentence | audio s | text_encoder | diffusion_sampler | decoder | end_to_end "
             "(p95) | " + " | ".join(heads[k] for k in ratio_keys) + " | SNR dB | log-mel L1 | TTFA s | peak MB |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(ratio_keys) + "---|---|---|---|"]
    index = {(r["backend"], r["precision"], r["sentence"], r["component"]): r for r in rows}
    for (backend, precision, sentence, component), row in index.items():
        if component != "end_to_end":
            continue
        cells = []
        for c in COMPONENTS:
            part = index.get((backend, precision, sentence, c))
            cells.append(f"{part['rtf_median']:.3f}" if part else "")
        ratios = " | ".join(f"{row[k]:.2f}x" if k in row else "" for k in ratio_keys)
        snr = row.get("snr_db")
        lines.append(
            f"| {backend} | {precision} | {sentence} | {row['audio_s']:.2f} | " + " | ".join(cells)
            + f" | {row['rtf_median']:.3f} ({row['rtf_p95']:.3f}) | " + ratios
            + " | " + (f"{snr:.1f}" if snr is not None else "") + " | "
            + (f"{row['logmel_l1']:.4f}" if "logmel_l1" in row else "") + " | "
            + (f"{row['ttfa_median_s']:.2f}" if "ttfa_median_s" in row else "") + f" | {row['peak_rss_mb']:.0f} |")
    if flops:
        lines += ["", "Compute floor (counted GFLOP per second of audio / best measured matmul GFLOP/s):", "",
                  "| precision | matmul GFLOP/s | " + " | ".join(f"{c} GFLOP/s-audio (floor RTF)" for c in
                                                            (*COMPONENTS, "end_to_end")) + " |",
                  "|---|---|---|---|---|---|"]
        for precision in dict.fromkeys(f["precision"] for f in floors):
            cells = [f for f in floors if f["precision"] == precision]
            lines.append(f"| {precision} | {cells[0]['matmul_gflops']:.0f} | "
                         + " | ".join(f"{f['gflop_per_audio_second']:.2f} ({f['floor_rtf']:.3f})" for f in cells) + " |")
    return "\n".join(lines)


# Main --------------------------------------------------------------------------------------------

class RtfError(UserError):
    """A setting the benchmark cannot run with; the message says which and what to give."""


KNOWN_BACKENDS = {("torch", "fp32"), ("eager", "fp32"), ("eager", "bf16"), ("torchscript", "fp32"),
                  ("onnxruntime", "fp32"), ("onnxruntime", "int8")}


def parse_backends(text: str) -> list[tuple[str, str]]:
    """--backends as (name, precision) pairs: at least one, each known and named once (a second one
    would time the same executor twice under one label)."""
    parsed: list[tuple[str, str]] = []
    choices = ", ".join(f"{n}:{p}" for n, p in sorted(KNOWN_BACKENDS))
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, precision = item.partition(":")
        key = (name, precision or "fp32")
        if key not in KNOWN_BACKENDS:
            raise RtfError(f"unknown backend {item!r}; choose from {choices}")
        if key in parsed:
            raise RtfError(f"--backends names {name}:{key[1]} twice")
        parsed.append(key)
    if not parsed:
        raise RtfError(f"--backends {text!r} names no backend; choose from {choices}")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="an exported directory (onnxruntime; torchscript if it holds .pt files)")
    source.add_argument("--checkpoint", help="a checkpoint (ours, or upstream's with --config)")
    source.add_argument("--random-init", metavar="GIN", help="random weights built from this model gin file")
    parser.add_argument("--config", action="append", default=[], metavar="GIN", help="model gin file(s) for --checkpoint")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="random-init weights and input noises (default 0)")
    parser.add_argument("--steps", type=int, default=5, help="diffusion steps unrolled in the export (default 5)")
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help=f"comma list of backend[:precision] (default {DEFAULT_BACKENDS})")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads, torch and onnxruntime (default 2)")
    parser.add_argument("--upstream", metavar="PATH", help="also time upstream's own inference code from this checkout "
                        "(needs `pip install munch einops einops-exts`; the torch model's weights, run by "
                        "styletts2/bench/upstream_worker.py in a process of its own)")
    parser.add_argument("--upstream-config", metavar="YML", help="the upstream config.yml of the model "
                        "(default: PATH/Configs/config.yml, upstream's LJSpeech config)")
    parser.add_argument("--upstream-python", default=sys.executable, help="the interpreter for the upstream worker")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds before timing (default 1)")
    parser.add_argument("--sentences", default="short,medium,long", help="subset of short,medium,long")
    parser.add_argument("--speed", default=None,
                        help="decoder speed input, or 'auto' to pin each sentence's audio to its target length "
                             "(default: auto for --random-init, 1.0 otherwise)")
    parser.add_argument("--f0-bias", type=float, default=F0_BIAS_HZ,
                        help="random-init only: Hz added to the F0 projection bias so the harmonic source is voiced "
                             "(random F0 sits near 0 Hz); default %(default)s")
    parser.add_argument("--export-dir", help="where --checkpoint/--random-init graphs are exported (default: a temp dir)")
    parser.add_argument("--reuse-export", action="store_true",
                        help="use the graphs an earlier run of the same command left in --export-dir")
    parser.add_argument("--ort-optimization", default="all", choices=["disable", "basic", "extended", "all"])
    parser.add_argument("--ort-execution", default="sequential", choices=["sequential", "parallel"])
    parser.add_argument("--ort-no-spinning", action="store_true", help="onnxruntime threads sleep instead of spinning")
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting and the matmul-rate floor")
    parser.add_argument("--profile", action="store_true", help="profile the decoder (onnxruntime and torch) on the "
                        "longest sentence")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory marks")
    parser.add_argument("--json", help="write the results here")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; torch's global grad mode and thread count are restored afterwards."""
    import torch

    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    args = build_parser().parse_args(argv)
    try:
        return run_guarded("rtf.py", lambda: _main(args, argv), debug=args.debug)
    finally:
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)


def check_arguments(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """(backends, sentence names) of the command line; an RtfError, before any work, for a setting
    the run could not use."""
    backends_wanted = parse_backends(args.backends)
    if args.upstream:
        check_upstream(args)
        backends_wanted.append(("upstream", "fp32"))
    if args.model and any(name in ("eager", "torch") for name, _ in backends_wanted):
        raise RtfError("torch and eager backends need the torch model: use --checkpoint or --random-init")
    names = [s.strip() for s in args.sentences.split(",") if s.strip()]
    unknown = [s for s in names if s not in SENTENCES]
    if unknown or not names:
        raise RtfError(f"--sentences {args.sentences!r}: give some of {', '.join(SENTENCES)} (comma-separated)")
    for option, value, least in (("--repeats", args.repeats, 1), ("--threads", args.threads, 1),
                                 ("--warmup", args.warmup, 0)):
        if value < least:
            raise RtfError(f"{option} must be at least {least}, got {value}")
    check_speed(args)
    check_json(args.json)
    return backends_wanted, names


def check_upstream(args: argparse.Namespace) -> None:
    if not (Path(args.upstream) / "models.py").is_file():
        raise RtfError(f"{args.upstream} is not an upstream StyleTTS2 checkout (no models.py)")
    config = Path(args.upstream_config or Path(args.upstream) / "Configs" / "config.yml")
    if not config.is_file():
        raise RtfError(f"--upstream-config: no file {config} (the upstream config.yml of the model)")
    if args.model:
        raise RtfError("the upstream backend needs the torch model: use --checkpoint or --random-init")


def check_speed(args: argparse.Namespace) -> None:
    """A number --speed is at least the runtime's lowest (0 or NaN failed inside onnxruntime, a negative
    speed gave one frame per token); no upper bound: random-init models are timed at 5-10 on purpose
    (their ~25 frames per token). 'auto' calibrates on the torch model."""
    if args.speed == "auto":
        if args.model:
            raise RtfError("--speed auto needs the torch model (--checkpoint or --random-init)")
        return
    if args.speed is None:
        return
    try:
        speed = float(args.speed)
    except ValueError:
        raise RtfError(f"--speed is 'auto' or a number, got {args.speed!r}") from None
    lowest = OPTION_RANGES["speed"][0]
    if not (math.isfinite(speed) and speed >= lowest):
        raise RtfError(f"--speed must be 'auto' or a finite number of at least {lowest:g}, got {args.speed}")


def check_json(json_path: str | None) -> None:
    """--json and the markdown table written beside it (its name with .md), checked before any work."""
    if json_path is None:
        return
    path = Path(json_path)
    if path.suffix.lower() == ".md":
        raise RtfError(f"--json {path}: the markdown table is written beside the JSON as {path.name}, which "
                       f"would overwrite it; give a .json name such as {path.with_suffix('.json')}")
    for target in (path, path.with_suffix(".md")):
        if target.is_dir():
            raise RtfError(f"--json {path}: {target} is a folder; give a file name such as {target / 'rtf.json'}")
    problem = folder_problem(path.parent)
    if problem:
        raise RtfError(f"--json {path}: cannot write there, {problem}")


def _main(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    backends_wanted, names = check_arguments(args)

    import torch

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from styletts2.runtime.mel import LogMel
    from styletts2.runtime.model_dir import read_model_json

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(args.export_dir or tmp)
        model = None
        if args.model:
            model_dir = Path(args.model)
        else:
            model, model_dir = export_model(args, export_dir)
        config = read_model_json(model_dir)
        if config.multispeaker:
            raise RtfError("the benchmark sentences run without a reference clip: single-speaker models only")
        feeds = sentence_feeds(args, names, config, model)
        backends = make_backends(args, backends_wanted, config, model, model_dir, export_dir / "int8", feeds)
        reference = QUALITY_REFERENCE if any(b.label == QUALITY_REFERENCE for b in backends) else None
        try:
            times, memory, outputs = benchmark(backends, feeds, args.repeats, args.warmup, config.sample_rate,
                                               not args.no_memory)
        finally:
            for backend in backends:
                if hasattr(backend, "close"):
                    backend.close()
        rows = make_rows(backends, times, memory, outputs, config.sample_rate, LogMel(**config.mel))
        result = {"machine": machine_record(args.threads),
                  "settings": {"source": args.model or args.checkpoint or f"random-init:{args.random_init}",
                               "backends": [b.label for b in backends], "repeats": args.repeats,
                               "warmup": args.warmup, "diffusion_steps": config.diffusion_steps,
                               "speed": {n: float(f["speed"]) for n, f in feeds.items()},
                               "onnxruntime_session": ort_settings(args), "reference_backend": reference,
                               "command": "python bench/rtf.py " + " ".join(argv if argv is not None else sys.argv[1:])},
                  "rows": rows}
        add_floor_and_profile(result, args, backends, feeds, outputs, config, model)
    write_report(result, args)
    return 0


def ort_settings(args: argparse.Namespace) -> dict:
    return {"optimization": args.ort_optimization, "execution": args.ort_execution,
            "spinning": not args.ort_no_spinning}


def sentence_feeds(args: argparse.Namespace, names: list[str], config, model) -> dict[str, dict[str, np.ndarray]]:
    """Each sentence's graph inputs; its speed makes the decoder render the sentence's target length
    (`--speed auto`, calibrated on the eager graphs) or is the given number."""
    from styletts2.bench.backends import eager_backend

    speed_arg = args.speed or ("auto" if args.random_init else "1.0")
    tokens = sentence_tokens(names)
    width = 2 * config.style_dim
    feeds = {n: base_feeds(tokens[n], width, config.diffusion_steps, args.seed + i) for i, n in enumerate(names)}
    frames_per_second = config.sample_rate / config.hop_length
    if speed_arg == "auto" and model is None:  # check_speed tells the command line
        raise RtfError("--speed auto needs the torch model (--checkpoint or --random-init)")
    calibrator = eager_backend(model, config.diffusion_steps) if speed_arg == "auto" else None
    for n, feed in feeds.items():
        speed = (calibrate_speed(calibrator, feed, round(SENTENCES[n][1] * frames_per_second))
                 if calibrator else float(speed_arg))
        feed["speed"] = np.array(speed, dtype=np.float32)
    print("sentences: " + ", ".join(f"{n} ({feeds[n]['tokens'].shape[1]} tokens, speed {float(feeds[n]['speed']):.3g})"
                                    for n in names), flush=True)
    return feeds


def make_backends(args: argparse.Namespace, wanted: list[tuple[str, str]], config, model, model_dir: Path,
                  int8_dir: Path, feeds: dict) -> list:
    """The executors to time, in the order asked for (see styletts2/bench/backends.py)."""
    from styletts2.bench.backends import decoder_precision, eager_backend, int8_decoder, onnx_backend, \
        session_options, torchscript_backend, upstream_backend
    from styletts2.torch_executor import TorchExecutor

    graphs = [*COMPONENTS, *([UNGUIDED] if config.has_graph(UNGUIDED) else [])]
    options = session_options(args.threads, **ort_settings(args))
    backends = []
    for name, precision in wanted:
        if name == "torch":
            backends.append(TorchExecutor.fidelity(unprepared_model(args), config.diffusion_steps, "cpu"))
        elif name == "eager":
            backends.append(eager_backend(model, config.diffusion_steps, precision))
        elif name == "upstream":
            backends.append(upstream_backend(unprepared_model(args), args, config.diffusion_steps,
                                             int8_dir.parent / "upstream_weights.pth"))
        elif name == "torchscript":
            backends.append(torchscript_backend(model_dir / "torchscript" if model is not None else model_dir))
        elif precision == "fp32":  # an export made with --int8-decoder is int8 already
            backends.append(onnx_backend(config, graphs, options, decoder_precision(config)))
        else:
            if decoder_precision(config) == "int8":
                raise RtfError("this export's decoder is int8 already: ask for the onnxruntime backend")
            files = {"decoder": int8_decoder(model_dir, config, int8_dir, feeds)}
            backends.append(onnx_backend(config, graphs, options, "int8", files))
    return backends


def add_floor_and_profile(result: dict, args: argparse.Namespace, backends: list, feeds: dict, outputs: dict,
                          config, model) -> None:
    """The compute floor (counted FLOPs over the measured matmul rate) and, with --profile, where the
    decoder's time goes."""
    from styletts2.bench.backends import eager_backend
    from styletts2.runtime.executor import OnnxExecutor

    reference = result["settings"]["reference_backend"]
    if not args.no_flops and reference is not None:
        from styletts2.bench.matmul_rate import measure

        eager = next(b for b in backends if b.label == reference)
        result["flops"] = count_model_flops(eager, feeds, outputs[reference], config.sample_rate)
        result["matmul_gflops"] = measure(args.threads)
        result["floor"] = floor_rows(result["flops"], result["matmul_gflops"])
    if args.profile and model is not None:
        longest = max(feeds, key=lambda n: feeds[n]["tokens"].shape[1])
        # graph-level inputs (t_en, d_en, style) from a backend that runs the exported graphs
        source = next(b.label for b in backends if "t_en" in outputs[b.label][longest])
        decoders = {b.label: b.graph_file("decoder") for b in backends if isinstance(b, OnnxExecutor)}
        result["profile"] = profile_decoder(decoders, eager_backend(model, config.diffusion_steps),
                                            outputs[source][longest], args.threads, ort_settings(args))


def write_report(result: dict, args: argparse.Namespace) -> None:
    table = markdown(result["rows"], result.get("floor", []), result.get("flops"))
    print()
    print(table)
    if "profile" in result:
        print()
        print(profile_text(result["profile"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        Path(args.json).with_suffix(".md").write_text(table + "\n")
        print(f"\nwrote {args.json}")


def profile_text(profile: dict) -> str:
    lines = []
    for backend, entry in profile.items():
        for key in ("by_op_type", "by_op", "by_scope"):
            if key in entry:
                lines.append(f"decoder profile, {backend}, {key}: "
                             + ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in entry[key][:8]))
    return "\n".join(lines)


def unprepared_model(args):
    """A second copy of the model as the library loads it (no export preparation), same weights."""
    import torch

    from styletts2.export.common import build_random_model
    from styletts2.model import load_model

    if args.checkpoint:
        return load_model(args.checkpoint, args.config, args.gin_param)[0]
    model = build_random_model(args.random_init, args.config, args.gin_param, args.seed)
    if args.f0_bias:
        with torch.no_grad():
            model.predictor.F0_proj.bias += args.f0_bias
    return model


def export_model(args, export_dir: Path):
    """Build/load the torch model, export it (ONNX; TorchScript too) into export_dir; returns
    (prepared torch model, directory of the ONNX export)."""
    from styletts2.export.common import load_for_export
    from styletts2.export.to_onnx import export_onnx
    from styletts2.export.to_torchscript import export_torchscript

    namespace = argparse.Namespace(checkpoint=args.checkpoint, random_init=args.random_init, config=args.config,
                                   gin_param=args.gin_param, steps=args.steps, seed=args.seed)
    loaded = load_for_export(namespace)
    if args.random_init and args.f0_bias:
        import torch

        with torch.no_grad():
            loaded.model.predictor.F0_proj.bias += args.f0_bias
    if args.reuse_export and (export_dir / "model.json").is_file():
        print(f"reusing the graphs in {export_dir}", flush=True)
        return loaded.model, export_dir
    export_onnx(loaded, export_dir, args.steps, verify=False)
    if any(name == "torchscript" for name, _ in parse_backends(args.backends)):
        export_torchscript(loaded, export_dir / "torchscript", args.steps, verify=False)
    return loaded.model, export_dir


if __name__ == "__main__":
    sys.exit(main())
