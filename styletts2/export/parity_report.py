"""Parity of exported graphs (TorchScript, onnxruntime) against torch eager, as a table.

    python export/parity_report.py --random-init gin/model/ljspeech.gin --tokens 10 50 200
    python export/parity_report.py --random-init gin/model/libritts.gin --out /tmp/libritts_export

Exports the model (ONNX and TorchScript, into --out or a temporary directory), then for token
sequences of each length: every graph fed identical inputs (max abs error per output against eager;
durations must be equal), and the whole chain run in each backend (waveform SNR in dB against the
eager chain). Also reports the eager export wrappers against upstream's exact path (`styletts2.fidelity`).

The waveform is ill-conditioned in float32: the NSF source integrates the predicted F0 into a phase,
and the iSTFTNet reads the raw STFT phase of that source, which jumps by 2 pi where a bin crosses
the negative real axis. So two float32 computations of the same function differ measurably, in
short local bursts. Each row therefore also gives the scale of float32 itself: the eager chain against
the same chain in float64 (`eager_fp64_snr_db`), the eager decoder with its inputs moved by one
float32 rounding step (`eager_1ulp_snr_db`), and this backend against float64 (`fp64_snr_db`): a
backend as accurate as eager scores about what eager scores against float64.
Random weights: --speed scales the random predictor's ~25 frames per token down to speech rates.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from styletts2.export.common import add_arguments, build_random_model, graphs_for, load_for_export
from styletts2.export.to_onnx import export_onnx
from styletts2.export.to_torchscript import export_torchscript
from styletts2.errors import run_guarded
from styletts2.graph_contract import GRAPH_OUTPUTS
from styletts2.graphs import noise_direction, source_noise
from styletts2.runtime.executor import Executor, OnnxExecutor
from styletts2.runtime.model_dir import read_model_json
from styletts2.runtime.synthesizer import SynthesisOptions, mix_styles
from styletts2.synthesis_limits import default_tail_frames
from styletts2.torch_executor import TorchExecutor

GRAPH_ORDER = ("style_encoder", "text_encoder", "diffusion_sampler", "diffusion_sampler_unguided", "decoder")
SAMPLED_STYLE = "sampled_style"  # a chain's sampler output (its "style" is what the decoder got)


def one_ulp(x: np.ndarray, seed: int) -> np.ndarray:
    """x with every element moved by about one float32 rounding step (relative 2^-24, random sign)."""
    sign = np.random.default_rng(seed).integers(0, 2, x.shape) * 2 - 1
    return (x * (1 + sign * 2.0 ** -24)).astype(np.float32)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    if reference.shape != other.shape:
        return -math.inf
    noise = float(((reference.astype(np.float64) - other.astype(np.float64)) ** 2).sum())
    signal = float((reference.astype(np.float64) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def frames_off(reference: np.ndarray, other: np.ndarray, hop: int, threshold: float = 1e-2) -> str:
    """'k/n': how many of the n duration frames (hop samples) differ somewhere by more than threshold
    (localised bursts, e.g. a source-phase bin flipped by 2 pi, versus an error spread everywhere)."""
    if reference.shape != other.shape:
        return "shape differs"
    error = np.abs(reference - other)
    n = math.ceil(error.size / hop)
    error = np.pad(error, (0, n * hop - error.size)).reshape(n, hop).max(axis=1)
    return f"{int((error > threshold).sum())}/{n}"


def batch_tokens(id_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists (no pad) -> tokens [B, T] ([0] + ids, zero-padded) and lengths [B], int64."""
    lengths = np.array([len(ids) + 1 for ids in id_lists], dtype=np.int64)
    tokens = np.zeros((len(id_lists), int(lengths.max())), dtype=np.int64)
    for i, ids in enumerate(id_lists):
        tokens[i, 1:len(ids) + 1] = ids
    return tokens, lengths


def chain_feeds(tokens: np.ndarray, lengths: np.ndarray, noise: np.ndarray, step_noises: np.ndarray,
                scale: float, speed: float, seed: int, mel: np.ndarray | None = None,
                tail_frames: int = 0) -> dict[str, np.ndarray]:
    """The inputs of one whole synthesis by the contract's names (`mel`: a reference clip's)."""
    feeds = {"tokens": tokens, "token_lengths": lengths, "noise": noise, "step_noises": step_noises,
             "embedding_scale": np.array(scale, np.float32), "speed": np.array(speed, np.float32),
             "noise_seed": np.array(seed, np.int64), "tail_frames": np.array(tail_frames, np.int64)}
    return feeds if mel is None else {**feeds, "mel": mel}


def chain(executor: Executor, feeds: dict[str, np.ndarray], alpha: float = 0.3, beta: float = 0.7) -> dict:
    """The whole synthesis in one executor, the graphs fed by name: `feeds` (see `chain_feeds`) plus
    every graph's outputs; the sampler's style is `SAMPLED_STYLE`, "style" the decoder's (mixed with
    the reference's, where `mel` gives one, as the runtime mixes it)."""
    out = dict(feeds)
    out.update(executor.run("text_encoder", out))
    if "mel" in out:
        out.update(executor.run("style_encoder", out))
    out[SAMPLED_STYLE] = executor.run("diffusion_sampler", out)["style"]
    options = SynthesisOptions(alpha=alpha, beta=beta)
    out["style"] = mix_styles(out[SAMPLED_STYLE], None, out.get("reference_style"), options,
                              out[SAMPLED_STYLE].shape[1] // 2)
    out.update(executor.run("decoder", out))
    return out


def graph_outputs(graph: str, out: dict) -> dict[str, np.ndarray]:
    """A graph's outputs as a `chain` recorded them."""
    return {name: out[SAMPLED_STYLE if name == "style" and graph.startswith("diffusion") else name]
            for name in GRAPH_OUTPUTS[graph]}


def item_waves(out: dict, hop: int, trim: int) -> list[np.ndarray]:
    """Each batch item's own samples of a chain's waveform."""
    wave, durations = out["waveform"], out["durations"]
    return [wave[i, :int(durations[i].sum()) * hop - trim] for i in range(wave.shape[0])]


@torch.no_grad()
def fidelity_reference(model, feeds: dict[str, np.ndarray], steps: int, seed: int) -> np.ndarray:
    """Upstream's exact path (`styletts2.fidelity`, what `TorchSynthesizer` runs) on the eager chain's
    own feeds, with the decoder's source noise (drawn by `torch.randn_like` in SineGen) replaced by
    the export graphs' `source_noise(seed)`: its waveform, tail trimmed."""
    direction = noise_direction(model.decoder)

    def randn_like(x):
        return source_noise(torch.tensor(seed), x.shape[0], x.shape[1], direction)

    deterministic = model.decoder.deterministic
    model.decoder.deterministic = False  # draw (i.e. take) the patched noise
    try:
        with mock.patch("torch.randn_like", randn_like):
            return chain(TorchExecutor.fidelity(model, steps, "cpu"), feeds)["waveform"][0]
    finally:
        model.decoder.deterministic = deterministic


def step_noises_from(seed: int, steps: int, shape: tuple[int, ...]) -> np.ndarray:
    """The sampler's step noises as `sample` draws them from a generator seeded `seed`, one per step."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(shape, generator=gen) for _ in range(steps - 1)]).numpy()


def random_case(n: int, rng: np.random.Generator, style_width: int, steps: int, multispeaker: bool,
                n_symbols: int = 178) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray | None]:
    """Random token ids, the sampler's noises and (multispeaker) a reference mel for `n` tokens."""
    ids = rng.integers(1, n_symbols, n).tolist()
    noise = rng.standard_normal((1, 1, style_width), dtype=np.float32)
    step_noises = rng.standard_normal((steps - 1, 1, 1, style_width), dtype=np.float32)
    mel = (rng.standard_normal((1, 80, 160), dtype=np.float32) - 4) if multispeaker else None
    return ids, noise, step_noises, mel


def parity_rows(model, graphs, executors, token_counts, steps, speed, seed=0, scale=1.0):
    """One row per (token count, executor): max abs error per graph output with the eager graph's
    inputs, durations equal, end-to-end SNR."""
    rng = np.random.default_rng(seed)
    hop, trim, tail = model.hop_length, model.tail_trim, default_tail_frames(model.multispeaker)
    eager = TorchExecutor(graphs, model.multispeaker)
    fp64 = TorchExecutor.float64(graphs, model.multispeaker)
    rows = []
    for n in token_counts:
        ids, noise, step_noises, mel = random_case(n, rng, 2 * model.style_dim, steps, model.multispeaker)
        feeds = chain_feeds(*batch_tokens([ids]), noise, step_noises, scale, speed, seed + n, mel, tail)
        start = time.perf_counter()
        ref = chain(eager, feeds)
        eager_s = time.perf_counter() - start
        ref_wave = item_waves(ref, hop, trim)[0]
        exact_wave = item_waves(chain(fp64, feeds), hop, trim)[0]
        moved = eager.run("decoder", {**ref, **{k: one_ulp(ref[k], i) for i, k in enumerate(("t_en", "d_en", "style"))}})
        floor = {"eager_fp64_snr_db": snr_db(exact_wave, ref_wave),
                 "eager_1ulp_snr_db": snr_db(ref_wave, item_waves(moved, hop, trim)[0])}
        for executor in executors:
            row = {"tokens": n, "backend": executor.name, "seconds_audio": ref_wave.size / model.sample_rate}
            # Each graph on the eager chain's inputs.
            for graph in GRAPH_ORDER:
                if graph not in graphs or (graph == "style_encoder" and mel is None):
                    continue
                want = graph_outputs(graph, ref) if graph != "diffusion_sampler_unguided" else eager.run(graph, ref)
                got = executor.run(graph, ref)
                for name in GRAPH_OUTPUTS[graph]:
                    row[f"{graph}.{name}"] = max_abs(want[name], got[name])
            start = time.perf_counter()
            out = chain(executor, feeds)
            row["chain_seconds"] = time.perf_counter() - start
            row["eager_seconds"] = eager_s
            row["durations_equal"] = bool(np.array_equal(out["durations"], ref["durations"]))
            wave = item_waves(out, hop, trim)[0]
            row["e2e_snr_db"] = snr_db(ref_wave, wave)
            row["e2e_frames_off"] = frames_off(ref_wave, wave, hop)
            row["fp64_snr_db"] = snr_db(exact_wave, wave)
            rows.append({**row, **floor})
    return rows


def format_table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k not in ("tokens", "backend")]
    lines = ["| tokens | backend | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for row in rows:
        cells = []
        for k in keys:
            v = row.get(k)
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append(f"| {row['tokens']} | {row['backend']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(out=None)
    for action in parser._actions:
        if action.dest == "out":
            action.required = False
    parser.add_argument("--tokens", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--speed", type=float, default=5.0, help="speed input (default 5: ~5 frames per token)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--f0-bias", type=float, default=150.0,
                        help="random models only: Hz added to the F0 projection's bias, so the harmonic source is "
                             "voiced (random F0 sits near 0 Hz, below the 10 Hz voicing threshold); default 150")
    parser.add_argument("--skip-reference", action="store_true", help="skip the comparison with upstream's exact path")
    args = parser.parse_args(argv)
    return run_guarded("parity_report.py", lambda: _report(args), debug=args.debug)


def _report(args: argparse.Namespace) -> int:
    torch.set_grad_enabled(False)
    loaded = load_for_export(args)
    model = loaded.model
    voice(model, args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        export_onnx(loaded, out / "onnx", args.steps, verify=False)
        export_torchscript(loaded, out / "torchscript", args.steps, verify=False)
        graphs = graphs_for(model, args.steps)
        executors = [TorchExecutor.torchscript(read_model_json(out / "torchscript")),
                     OnnxExecutor(read_model_json(out / "onnx"), "cpu", args.threads)]
        rows = parity_rows(model, graphs, executors, args.tokens, args.steps, args.speed, seed=args.seed)
    print(format_table(rows))
    if not args.skip_reference:
        print()
        print(reference_table(args, args.tokens, args.speed))
    return 0


def voice(model, args) -> None:
    """Random models: shift F0 up by --f0-bias Hz (see --help)."""
    if args.random_init and args.f0_bias:
        with torch.no_grad():
            model.predictor.F0_proj.bias += args.f0_bias


@torch.no_grad()
def reference_table(args, token_counts, speed) -> str:
    """Eager export wrappers vs the fidelity graphs on the unprepared model (torch STFT; harmonic phase in
    float64 and in upstream's float32): SNR in dB, durations equal, style max abs error."""
    from styletts2.model import load_model

    def fresh():
        if args.checkpoint:
            return load_model(args.checkpoint, args.config, args.gin_param)[0]
        model = build_random_model(args.random_init, args.config, args.gin_param, args.seed)
        voice(model, args)
        return model

    lines = ["| tokens | reference | wave SNR dB | durations equal |", "|---|---|---|---|"]
    loaded = load_for_export(args)
    voice(loaded.model, args)
    graphs = graphs_for(loaded.model, args.steps)
    eager = TorchExecutor(graphs, loaded.model.multispeaker)
    for precise in (True, False):
        model = fresh()
        model.decoder.generator.m_source.l_sin_gen.precise_phase = precise
        rng = np.random.default_rng(args.seed + 1)
        hop, trim, tail = model.hop_length, model.tail_trim, default_tail_frames(model.multispeaker)
        for n in token_counts:
            ids, noise, _, mel = random_case(n, rng, 2 * model.style_dim, args.steps, model.multispeaker)
            step_noises = step_noises_from(n, args.steps, (1, 1, 2 * model.style_dim))
            feeds = chain_feeds(*batch_tokens([ids]), noise, step_noises, 1.0, speed, n, mel, tail)
            out = chain(eager, feeds)
            want = fidelity_reference(model, feeds, args.steps, n)
            wave = item_waves(out, hop, trim)[0]
            label = "fidelity graphs, torch STFT, phase " + ("float64" if precise else "float32")
            lines.append(f"| {n} | {label} | {snr_db(want, wave):.1f} | {want.size == wave.size} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
