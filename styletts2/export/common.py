"""What both exporters share: the command line, loading the model, the graphs' I/O specification,
the example inputs the graphs are traced with, and the staging folder an export is written into."""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gin
import torch
from torch import Tensor, nn

from styletts2.graphs import build_graphs, has_style_encoders, prepare_for_export
from styletts2 import graph_contract
from styletts2.graph_contract import MODEL_JSON
from styletts2.errors import UserError, add_debug_flag
from styletts2.synthesis_limits import check_option


class ExportError(UserError, RuntimeError):
    """The export cannot go on; the message says why and what to do."""


# Staging ---------------------------------------------------------------------------------------------

STAGING_PREFIX = ".export-"  # sibling `.export-<pid>-<name>`: the export being written
RETIRED_PREFIX = ".retired-"  # sibling `.retired-<pid>-<name>`: the export it replaces, deleted right after


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(out_dir: Path) -> None:
    """Staging folders of exports into out_dir that were killed (their process is gone)."""
    for prefix in (STAGING_PREFIX, RETIRED_PREFIX):
        for leftover in out_dir.parent.glob(f"{prefix}*-{out_dir.name}"):
            pid = leftover.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and leftover.name == f"{prefix}{pid}-{out_dir.name}" and not _pid_alive(int(pid)):
                print(f"note: removing {leftover}, left by an export that was stopped", flush=True)
                shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staged_export(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh sibling folder of out_dir to write an export into; when the body succeeds it
    takes out_dir's place (two renames on one file system), so an export that is stopped or fails
    leaves out_dir as it was: never graphs of two exports side by side. An existing out_dir must be an
    export (model.json) or empty: it is replaced whole, and other files there would be lost."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"--out {out_dir} is a file; give a folder")
        if any(out_dir.iterdir()) and not (out_dir / MODEL_JSON).is_file():
            raise ExportError(f"--out {out_dir} holds files but no model.json: an export replaces its folder "
                              "whole, so give a new or empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    staging = out_dir.parent / f"{STAGING_PREFIX}{os.getpid()}-{out_dir.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        retired = out_dir.parent / f"{RETIRED_PREFIX}{os.getpid()}-{out_dir.name}"
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint to export (ours, or upstream's with --config)")
    source.add_argument("--random-init", metavar="GIN",
                        help="export a randomly initialised model built from this gin file (benchmarks, tests)")
    parser.add_argument("--config", action="append", default=[], metavar="GIN",
                        help="model gin file(s); required for upstream checkpoints (gin/model/ljspeech.gin or "
                             "gin/model/libritts.gin), overrides the config saved in ours (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--steps", type=int, default=5,
                        help="diffusion schedule length unrolled into the sampler graph (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed of --random-init weights (default 0)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip running the exported graphs against torch eager after the export")
    add_debug_flag(parser)


@dataclass
class LoadedModel:
    model: nn.Module
    source: str                      # checkpoint basename or "random-init:<gin>"
    gin_config: str                  # operative config the model was built from
    meta: dict = field(default_factory=dict)  # the checkpoint's non-weight entries

    @property
    def gin_config_sha256(self) -> str:
        return hashlib.sha256(self.gin_config.encode()).hexdigest()


def load_for_export(args: argparse.Namespace) -> LoadedModel:
    """Build/load the model the arguments name and prepare it (in place) for tracing."""
    from styletts2.checkpoint import CheckpointError
    from styletts2.model import load_model

    try:  # the runtime refuses an export outside the synthesizer's range: fail before any work
        check_option("diffusion_steps", args.steps)
    except ValueError as err:
        raise ExportError(f"--steps: {err}") from None
    for path in args.config + ([args.random_init] if args.random_init else []):
        if not Path(path).is_file():
            raise ExportError(f"gin config not found: {path}")
    try:
        if args.checkpoint:
            print(f"loading {args.checkpoint} ...", flush=True)
            model, meta = load_model(args.checkpoint, args.config, args.gin_param)
            source = Path(args.checkpoint).name
        else:
            print(f"building a random model from {args.random_init} (seed {args.seed}) ...", flush=True)
            model = build_random_model(args.random_init, args.config, args.gin_param, args.seed)
            meta, source = {}, f"random-init:{Path(args.random_init).name}"
    except (CheckpointError, FileNotFoundError) as err:
        raise ExportError(str(err)) from err
    except (ValueError, SyntaxError) as err:  # gin parse errors, unknown bindings, bad sizes
        raise ExportError(f"cannot build the model from its gin config: {err}") from err
    config = gin.config_str()
    missing = [n for n in ("bert", "bert_encoder", "predictor", "decoder", "text_encoder", "diffusion")
               if not hasattr(model, n)]
    if missing:
        raise ExportError(f"the model lacks the inference module(s) {missing}")
    if model.multispeaker and not has_style_encoders(model):
        raise ExportError("a multispeaker model needs style_encoder and predictor_encoder for its reference style")
    origin = "checkpoint" if "sigma_data" in meta else "gin config"
    print(f"sigma_data = {model.diffusion.sigma_data:.6g} (from the {origin})", flush=True)
    if args.checkpoint and origin == "gin config":
        print("  an upstream checkpoint keeps sigma_data in its config.yml: pass it with "
              "--gin_param 'build_style_diffusion.sigma_data = <value>'", flush=True)
    prepare_for_export(model)
    return LoadedModel(model, source, config, meta)


def build_random_model(gin_file: str, config_files=(), bindings=(), seed: int = 0) -> nn.Module:
    """A randomly initialised inference model (eval mode) whose spectral norms are converged.

    A fresh spectral-norm hook holds random power-iteration vectors, which only training refines;
    in eval its sigma is then far too small and the style encoders put out values around 1e10.
    Trained checkpoints carry converged vectors; a random model gets them here, so it runs in the
    numeric range of a trained one.
    """
    from styletts2.model import INFERENCE_MODULES, build_model_from_config

    torch.manual_seed(seed)
    model = build_model_from_config([gin_file, *config_files], bindings, modules=INFERENCE_MODULES)
    converge_spectral_norms(model)
    return model.eval()


@torch.no_grad()
def converge_spectral_norms(model: nn.Module, iterations: int = 50) -> None:
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if type(hook).__name__ == "SpectralNorm":
                for _ in range(iterations):
                    hook.compute_weight(module, do_power_iteration=True)
                setattr(module, hook.name, hook.compute_weight(module, do_power_iteration=False))


def graphs_for(model: nn.Module, steps: int) -> dict[str, nn.Module]:
    """The graphs to export. A single-speaker model's style_encoder is exported too: its sampler takes
    no reference, but the runtime can read a clip's styles with it (alpha / beta against a reference)."""
    return build_graphs(model, steps)


# I/O specification ---------------------------------------------------------------------------------

def io_spec(model: nn.Module, steps: int) -> dict[str, dict[str, list[dict]]]:
    """{graph: {"inputs": [...], "outputs": [...]}} with names, dtypes and shapes (axis names or sizes):
    the contract (`styletts2/graph_contract.py`) at this model's sizes."""
    return graph_contract.io_spec(style_width=2 * model.style_dim, channels=model.text_encoder.embedding.embedding_dim,
                                  bert_hidden=model.bert.config.hidden_size, steps=steps,
                                  multispeaker=model.multispeaker, style_encoder=has_style_encoders(model))


def dynamic_axes(spec: dict[str, list[dict]]) -> dict[str, dict[int, str]]:
    """torch.onnx's dynamic_axes for one graph's spec: every axis given by name."""
    axes = {}
    for tensor in spec["inputs"] + spec["outputs"]:
        named = {i: dim for i, dim in enumerate(tensor["shape"]) if isinstance(dim, str)}
        if named:
            axes[tensor["name"]] = named
    return axes


# Example inputs --------------------------------------------------------------------------------------

@torch.no_grad()
def example_inputs(model: nn.Module, graphs: dict[str, nn.Module], steps: int, lengths=(16, 11),
                   seed: int = 0, mel_frames: int = 97) -> dict[str, tuple[Tensor, ...]]:
    """Consistent inputs for every graph: a padded batch (so no axis is traced at size 1 and the
    masked paths are recorded), each graph fed the previous graphs' eager outputs. Speed 4 keeps the
    decoder's example short (tracing runs it); no value is baked into the graphs."""
    gen = torch.Generator().manual_seed(seed)
    batch, width = len(lengths), max(lengths)
    n_symbols = model.text_encoder.embedding.num_embeddings
    tokens = torch.randint(1, n_symbols, (batch, width), generator=gen)
    tokens[:, 0] = 0  # inference framing: [0] + ids
    token_lengths = torch.tensor(lengths, dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    S2 = 2 * model.style_dim
    inputs = {"text_encoder": (tokens, token_lengths)}
    t_en, bert, d_en = graphs["text_encoder"](tokens, token_lengths)
    noise = torch.randn(batch, 1, S2, generator=gen)
    step_noises = torch.randn(steps - 1, batch, 1, S2, generator=gen)
    scale = torch.tensor(1.0)
    sampler = (bert, noise, step_noises, scale)
    if "style_encoder" in graphs:
        mel = torch.randn(batch, 80, mel_frames, generator=gen) * 2 - 4
        inputs["style_encoder"] = (mel,)
        if model.multispeaker:
            sampler = sampler + (graphs["style_encoder"](mel),)
    inputs["diffusion_sampler"] = sampler
    inputs["diffusion_sampler_unguided"] = sampler[:3] + sampler[4:]  # without the scale
    style = graphs["diffusion_sampler"](*sampler)
    inputs["decoder"] = (t_en, d_en, style, torch.tensor(4.0), token_lengths, torch.tensor(1234, dtype=torch.long),
                         torch.tensor(5, dtype=torch.long))
    return inputs


# Writing every graph ---------------------------------------------------------------------------------

def write_graphs(model: nn.Module, steps: int, out_dir: Path, suffix: str, backend: str,
                 save: Callable[[nn.Module, tuple, dict, Path], None],
                 check: Callable[[nn.Module, dict, tuple, Path], dict[str, float]] | None,
                 leave_out: frozenset[str] = frozenset()) -> tuple[dict, dict[str, dict[str, float]]]:
    """Each graph of `model` (but those in `leave_out`) saved as out_dir/<name><suffix> by `save(graph,
    example inputs, spec, path)`, timed and sized; with `check`, its max abs errors against eager
    (`check(graph, spec, inputs, path)`) are printed and returned. Returns (io spec, {graph: errors})."""
    graphs = {name: graph for name, graph in graphs_for(model, steps).items() if name not in leave_out}
    spec = {name: io for name, io in io_spec(model, steps).items() if name not in leave_out}
    inputs = example_inputs(model, graphs, steps)
    verification = {}
    for name, graph in graphs.items():
        path = out_dir / f"{name}{suffix}"
        start = time.perf_counter()
        print(f"exporting {name} -> {path} ...", flush=True)
        save(graph, inputs[name], spec[name], path)
        print(f"  {path.stat().st_size / 2 ** 20:.1f} MiB in {time.perf_counter() - start:.1f} s", flush=True)
        if check is not None:
            errors = verification[name] = check(graph, spec[name], inputs[name], path)
            print(f"  {backend} vs eager, max abs error: " + ", ".join(f"{k} {v:.3g}" for k, v in errors.items()),
                  flush=True)
    return spec, verification

