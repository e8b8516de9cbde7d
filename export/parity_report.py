"""Parity of exported graphs (TorchScript, onnxruntime) against torch eager, as a table.

    python export/parity_report.py --random-init gin/model/ljspeech.gin --tokens 10 50 200
    python export/parity_report.py --random-init gin/model/libritts.gin --out /tmp/libritts_export

Exports the model (ONNX and TorchScript, into --out or a temporary directory), then for token
sequences of each length: every graph fed identical inputs (max abs error per output against eager;
durations must be equal), and the whole chain run in each backend (waveform SNR in dB against the
eager chain). Also reports the eager export wrappers against the eager `TorchSynthesizer` pipeline.

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
import copy
import math
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

if __package__ in (None, ""):  # run as a script: make `export` and `styletts2` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from export.common import add_arguments, build_random_model, graphs_for, io_spec, load_for_export
from export.to_onnx import export_onnx, ort_session
from export.to_torchscript import export_torchscript
from export.wrappers import noise_direction, source_noise
from styletts2.errors import run_guarded
from styletts2.synthesis_limits import default_tail_frames

GRAPH_ORDER = ("style_encoder", "text_encoder", "diffusion_sampler", "diffusion_sampler_unguided", "decoder")


class EagerBackend:
    name = "eager"

    def __init__(self, graphs: dict[str, torch.nn.Module]):
        self.graphs = graphs

    @torch.no_grad()
    def run(self, graph: str, inputs: tuple) -> tuple:
        out = self.graphs[graph](*inputs)
        return out if isinstance(out, tuple) else (out,)


class Float64Backend(EagerBackend):
    """The eager graphs copied to float64 (float inputs widened, float outputs rounded to float32):
    the reference that float32 backends are measured against."""
    name = "eager-fp64"

    def __init__(self, graphs: dict[str, torch.nn.Module]):
        # one deep copy of the whole dict: the modules the graphs share (e.g. the diffusion model of
        # both samplers) are copied once and stay shared
        super().__init__({name: graph.double() for name, graph in copy.deepcopy(graphs).items()})

    def run(self, graph: str, inputs: tuple) -> tuple:
        inputs = tuple(x.double() if x.is_floating_point() else x for x in inputs)
        return tuple(o.float() if o.is_floating_point() else o for o in super().run(graph, inputs))


def one_ulp(x: torch.Tensor, seed: int) -> torch.Tensor:
    """x with every element moved by about one float32 rounding step (relative 2^-24, random sign)."""
    sign = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x * (1 + sign * 2.0 ** -24)


class TorchScriptBackend(EagerBackend):
    name = "torchscript"

    def __init__(self, directory: Path, names):
        super().__init__({n: torch.jit.load(str(directory / f"{n}.pt")) for n in names})


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, directory: Path, spec: dict, threads: int | None = None):
        self.spec = spec
        self.sessions = {n: ort_session(directory / f"{n}.onnx", threads) for n in spec}

    def run(self, graph: str, inputs: tuple) -> tuple:
        io = self.spec[graph]
        feed = {t["name"]: x.numpy() for t, x in zip(io["inputs"], inputs)}
        return tuple(torch.from_numpy(o) for o in self.sessions[graph].run([t["name"] for t in io["outputs"]], feed))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return math.inf
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    if reference.shape != other.shape:
        return -math.inf
    noise = float(((reference.double() - other.double()) ** 2).sum())
    signal = float((reference.double() ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def frames_off(reference: torch.Tensor, other: torch.Tensor, hop: int, threshold: float = 1e-2) -> str:
    """'k/n': how many of the n duration frames (hop samples) differ somewhere by more than threshold
    (localised bursts, e.g. a source-phase bin flipped by 2 pi, versus an error spread everywhere)."""
    if reference.shape != other.shape:
        return "shape differs"
    error = (reference - other).abs()
    n = math.ceil(error.numel() / hop)
    error = torch.nn.functional.pad(error, (0, n * hop - error.numel())).view(n, hop).amax(dim=1)
    return f"{int((error > threshold).sum())}/{n}"


def batch_tokens(id_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists (no pad) -> tokens [B, T] ([0] + ids, zero-padded) and lengths [B]."""
    lengths = torch.tensor([len(ids) + 1 for ids in id_lists])
    tokens = torch.zeros(len(id_lists), int(lengths.max()), dtype=torch.long)
    for i, ids in enumerate(id_lists):
        tokens[i, 1:len(ids) + 1] = torch.tensor(ids)
    return tokens, lengths


@torch.no_grad()
def chain(backend, tokens, lengths, noise, step_noises, scale, speed, seed, mel=None, alpha=0.3, beta=0.7,
          tail_frames: int = 0):
    """The whole synthesis in one backend; returns every graph's outputs."""
    out = {"text_encoder": backend.run("text_encoder", (tokens, lengths))}
    t_en, bert, d_en = out["text_encoder"]
    sampler_in = (bert, noise, step_noises, scale)
    reference = None
    if mel is not None:
        out["style_encoder"] = backend.run("style_encoder", (mel,))
        reference = out["style_encoder"][0]
        sampler_in += (reference,)
    out["diffusion_sampler"] = backend.run("diffusion_sampler", sampler_in)
    style = out["diffusion_sampler"][0]
    if reference is not None:
        half = style.shape[1] // 2
        style = torch.cat([alpha * style[:, :half] + (1 - alpha) * reference[:, :half],
                           beta * style[:, half:] + (1 - beta) * reference[:, half:]], dim=1)
    out["decoder"] = backend.run("decoder", (t_en, d_en, style, speed, lengths, seed, torch.tensor(tail_frames)))
    return out


def item_waves(wave: torch.Tensor, durations: torch.Tensor, hop: int, trim: int) -> list[torch.Tensor]:
    """Each batch item's own samples."""
    return [wave[i, :int(durations[i].sum()) * hop - trim] for i in range(wave.shape[0])]


@torch.no_grad()
def synthesizer_reference(model, ids: list[int], noise, noise_generator_seed: int, steps: int, scale: float,
                          speed: float, seed: int, reference=None, tail_frames: int = 0) -> torch.Tensor:
    """The eager `TorchSynthesizer.synthesize_tokens` waveform with the graphs' noises: the sampler's step
    noises drawn from a generator seeded `noise_generator_seed` (see `step_noises_from`), the decoder's
    source noise (drawn by `torch.randn_like` in SineGen) replaced by `source_noise(seed)`."""
    from styletts2.inference import TorchSynthesisOptions, TorchSynthesizer

    direction = noise_direction(model.decoder)

    def randn_like(x):
        return source_noise(torch.tensor(seed), x.shape[0], x.shape[1], direction)

    syn = TorchSynthesizer(model, phonemizer=object(), device="cpu")
    options = TorchSynthesisOptions(diffusion_steps=steps, embedding_scale=scale, speed=speed, tail_frames=tail_frames)
    deterministic = model.decoder.deterministic
    model.decoder.deterministic = False  # draw (i.e. take) the patched noise
    try:
        with mock.patch("torch.randn_like", randn_like):
            return syn.synthesize_tokens(ids, options, reference=reference, noise=noise,
                                         generator=torch.Generator().manual_seed(noise_generator_seed)).wave
    finally:
        model.decoder.deterministic = deterministic


def step_noises_from(seed: int, steps: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The sampler's step noises as `sample` draws them from a generator seeded `seed`, one per step."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(shape, generator=gen) for _ in range(steps - 1)])


def random_ids(n: int, gen: torch.Generator, n_symbols: int = 178) -> list[int]:
    return torch.randint(1, n_symbols, (n,), generator=gen).tolist()


@torch.no_grad()
def parity_rows(model, graphs, backends, token_counts, steps, speed, seed=0, scale=1.0):
    """One row per (token count, backend): max abs error per graph output with the eager graph's inputs,
    durations equal, end-to-end SNR."""
    gen = torch.Generator().manual_seed(seed)
    S2 = 2 * model.style_dim
    hop, trim, tail = model.hop_length, model.tail_trim, default_tail_frames(model.multispeaker)
    eager, fp64 = EagerBackend(graphs), Float64Backend(graphs)
    rows = []
    for n in token_counts:
        tokens, lengths = batch_tokens([random_ids(n, gen)])
        noise = torch.randn(1, 1, S2, generator=gen)
        step_noises = torch.randn(steps - 1, 1, 1, S2, generator=gen)
        mel = (torch.randn(1, 80, 160, generator=gen) - 4) if model.multispeaker else None
        args = (tokens, lengths, noise, step_noises, torch.tensor(scale), torch.tensor(speed),
                torch.tensor(seed + n))
        start = time.perf_counter()
        ref = chain(eager, *args, mel=mel, tail_frames=tail)
        eager_s = time.perf_counter() - start
        ref_wave = item_waves(ref["decoder"][0], ref["decoder"][1], hop, trim)[0]
        exact = chain(fp64, *args, mel=mel, tail_frames=tail)
        exact_wave = item_waves(exact["decoder"][0], exact["decoder"][1], hop, trim)[0]
        t_en, d_en, style, *rest = _graph_inputs("decoder", ref, args, mel, tail)
        moved = eager.run("decoder", (one_ulp(t_en, 1), one_ulp(d_en, 2), one_ulp(style, 3), *rest))
        floor = {"eager_fp64_snr_db": snr_db(exact_wave, ref_wave),
                 "eager_1ulp_snr_db": snr_db(ref_wave, item_waves(*moved, hop, trim)[0])}
        for backend in backends:
            row = {"tokens": n, "backend": backend.name, "seconds_audio": ref_wave.numel() / model.sample_rate}
            # Each graph on the eager chain's inputs.
            for graph in GRAPH_ORDER:
                if graph not in graphs or (graph == "style_encoder" and mel is None):
                    continue
                inputs = _graph_inputs(graph, ref, args, mel, tail)
                want_all = ref[graph] if graph in ref else eager.run(graph, inputs)
                got = backend.run(graph, inputs)
                for t, want, have in zip(io_spec(model, steps)[graph]["outputs"], want_all, got):
                    row[f"{graph}.{t['name']}"] = max_abs(want, have)
            start = time.perf_counter()
            out = chain(backend, *args, mel=mel, tail_frames=tail)
            row["chain_seconds"] = time.perf_counter() - start
            row["eager_seconds"] = eager_s
            row["durations_equal"] = bool(torch.equal(out["decoder"][1], ref["decoder"][1]))
            wave = item_waves(out["decoder"][0], out["decoder"][1], hop, trim)[0]
            row["e2e_snr_db"] = snr_db(ref_wave, wave)
            row["e2e_frames_off"] = frames_off(ref_wave, wave, hop)
            row["fp64_snr_db"] = snr_db(exact_wave, wave)
            rows.append({**row, **floor})
    return rows


def _graph_inputs(graph: str, ref: dict, args: tuple, mel, tail_frames: int) -> tuple:
    tokens, lengths, noise, step_noises, scale, speed, seed = args
    t_en, bert, d_en = ref["text_encoder"]
    if graph == "text_encoder":
        return tokens, lengths
    if graph == "style_encoder":
        return (mel,)
    if graph.startswith("diffusion_sampler"):
        extra = (ref["style_encoder"][0],) if "style_encoder" in ref else ()
        return (bert, noise, step_noises) + ((scale,) if graph == "diffusion_sampler" else ()) + extra
    style = ref["diffusion_sampler"][0]
    if "style_encoder" in ref:  # the chain's mixed style
        reference, half = ref["style_encoder"][0], style.shape[1] // 2
        style = torch.cat([0.3 * style[:, :half] + 0.7 * reference[:, :half],
                           0.7 * style[:, half:] + 0.3 * reference[:, half:]], dim=1)
    return t_en, d_en, style, speed, lengths, seed, torch.tensor(tail_frames)


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
    parser.add_argument("--skip-reference", action="store_true", help="skip the TorchSynthesizer comparison")
    args = parser.parse_args(argv)
    return run_guarded("parity_report.py", lambda: _report(args), debug=args.debug, exit_code=1)


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
        backends = [TorchScriptBackend(out / "torchscript", graphs), OnnxBackend(out / "onnx", io_spec(model, args.steps),
                                                                              args.threads)]
        rows = parity_rows(model, graphs, backends, args.tokens, args.steps, args.speed, seed=args.seed)
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
    """Eager export wrappers vs eager TorchSynthesizer on the unprepared model (torch STFT; harmonic phase in
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
    eager = EagerBackend(graphs)
    for precise in (True, False):
        model = fresh()
        model.decoder.generator.m_source.l_sin_gen.precise_phase = precise
        gen = torch.Generator().manual_seed(args.seed + 1)
        S2 = 2 * model.style_dim
        hop, trim, tail = model.hop_length, model.tail_trim, default_tail_frames(model.multispeaker)
        for n in token_counts:
            ids = random_ids(n, gen)
            tokens, lengths = batch_tokens([ids])
            noise = torch.randn(1, 1, S2, generator=gen)
            step_noises = step_noises_from(n, args.steps, (1, 1, S2))
            mel = (torch.randn(1, 80, 160, generator=gen) - 4) if model.multispeaker else None
            out = chain(eager, tokens, lengths, noise, step_noises, torch.tensor(1.0), torch.tensor(speed),
                        torch.tensor(n), mel=mel, tail_frames=tail)
            reference = out["style_encoder"][0] if mel is not None else None
            want = synthesizer_reference(model, ids, noise, n, args.steps, 1.0, speed, n, reference, tail)
            wave = item_waves(out["decoder"][0], out["decoder"][1], hop, trim)[0]
            label = "TorchSynthesizer, torch STFT, phase " + ("float64" if precise else "float32")
            lines.append(f"| {n} | {label} | {snr_db(want, wave):.1f} | {want.numel() == wave.numel()} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
