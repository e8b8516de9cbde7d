"""State-dict manifests: `module  key  shape  dtype` rows, the format of the reference files."""
from collections.abc import Iterable, Mapping

import torch
from torch import nn

HEADER = ("module", "key", "shape", "dtype")


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) if t.dim() else "scalar"


def manifest_rows(modules: Mapping[str, nn.Module]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            rows.append((name, key, _shape(value), str(value.dtype).replace("torch.", "")))
    return rows


def format_manifest(rows: Iterable[tuple[str, str, str, str]]) -> str:
    return "\n".join("\t".join(r) for r in [HEADER, *rows]) + "\n"


def read_manifest(path: str) -> list[tuple[str, str, str, str]]:
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    if tuple(lines[0].split("\t")) != HEADER:
        raise ValueError(f"{path}: first line must be the header {HEADER}")
    return [tuple(line.split("\t")) for line in lines[1:]]
