"""Export a StyleTTS2 model to TorchScript (traced): text_encoder.pt, diffusion_sampler.pt,
diffusion_sampler_unguided.pt, decoder.pt (and style_encoder.pt for multispeaker models) plus
model.json and a README.md model card.

    python export/to_torchscript.py --checkpoint runs/ljspeech/stage2/last.pth --out exported/ljspeech_ts
    python export/to_torchscript.py --random-init gin/model/tiny.gin --out exported/tiny_ts

The graphs are the same wrappers as the ONNX export (styletts2/graphs.py), with the same inputs and
outputs; load one with `torch.jit.load(path)` and call it positionally in model.json's input order.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from styletts2.export.common import ExportError, add_arguments, load_for_export, staged_export, write_graphs
from styletts2.export.model_card import write_model_card
from styletts2.errors import run_guarded


def trace_graph(graph: torch.nn.Module, inputs: tuple) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings about Python-side shape checks: those checks guard, they do not compute.
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(graph, inputs, check_trace=False))


@torch.no_grad()
def compare(graph: torch.nn.Module, traced: torch.jit.ScriptModule, spec: dict, inputs: tuple) -> dict[str, float]:
    expected, got = graph(*inputs), traced(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    errors = {}
    for t, want, have in zip(spec["outputs"], expected, got):
        if want.shape != have.shape:
            raise ExportError(f"{t['name']}: traced graph gives shape {tuple(have.shape)}, eager {tuple(want.shape)}")
        errors[t["name"]] = float((want.double() - have.double()).abs().max()) if want.numel() else 0.0
    return errors


def export_torchscript(loaded, out_dir: Path, steps: int = 5, verify: bool = True) -> dict:
    """Trace and save every graph and the model card; returns model.json's content. Written into a
    staging folder that replaces out_dir at the end only."""
    with staged_export(Path(out_dir)) as staging:
        info = _export_into(loaded, staging, steps, verify)
    print(f"wrote {out_dir / 'model.json'} and {out_dir / 'README.md'}")
    return info


def _export_into(loaded, out_dir: Path, steps: int, verify: bool) -> dict:
    def save(graph, inputs, spec, path):
        trace_graph(graph, inputs).save(str(path))

    def check(graph, spec, inputs, path):
        return compare(graph, torch.jit.load(str(path)), spec, inputs)

    spec, verification = write_graphs(loaded.model, steps, out_dir, ".pt", "TorchScript", save, check if verify else None)
    return write_model_card(out_dir, loaded, steps, spec, "pt", None, "TorchScript", verification or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_guarded("to_torchscript.py", lambda: _export(args), debug=args.debug)


def _export(args: argparse.Namespace) -> int:
    loaded = load_for_export(args)
    export_torchscript(loaded, Path(args.out), args.steps, verify=not args.no_verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
