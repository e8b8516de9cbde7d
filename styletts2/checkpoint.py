"""Checkpoint I/O in upstream's layout, loaded strictly.

Layout (upstream's, which its own loader reads): `{'net': {module: state_dict}, 'optimizer', 'epoch',
'iters', 'val_loss'}`. We add `gin_config` (the operative config, so a checkpoint rebuilds its own model),
`sigma_data`, `espeak_version` and whatever the trainer stores under other keys.

Upstream loads with `strict=False`, so a `module.` prefix mismatch silently loads nothing. Here every
key must land: prefixes, the duplicated diffusion entries, `parametrizations.*` names and the one
legacy ALBERT buffer are normalised, and anything else that does not match raises `CheckpointError`
listing the missing and unexpected keys per module.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from styletts2.errors import UserError
from styletts2.file_modes import give_ordinary_mode

# Constant 0..511 buffer that transformers < 5 kept in ALBERT's state dict; the only key we drop.
_LEGACY_BERT_BUFFER = "embeddings.position_ids"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint does not match the model; the message lists every offending key."""


class UnreadableCheckpoint(CheckpointError):
    """The file is not a torch checkpoint at all (truncated, overwritten, another format)."""


def torch_load(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # Upstream checkpoints hold plain tensors and numbers, but some carry numpy scalars
        # (val_loss) that the weights-only unpickler rejects.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise UnreadableCheckpoint(f"{path}: cannot be read as a torch checkpoint ({exc})") from exc


def net_entry(state: Any, path: str | os.PathLike) -> Mapping[str, Mapping[str, torch.Tensor]]:
    """checkpoint['net'] ({module: state_dict}), or a CheckpointError saying the file is not a model checkpoint."""
    net = state.get("net") if isinstance(state, Mapping) else None
    if not isinstance(net, Mapping):
        found = sorted(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(f"{path}: not a StyleTTS2 checkpoint (no 'net' entry of module weights; found {found})")
    return net


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _legacy_norm_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map `torch.nn.utils.parametrizations` names onto the legacy hook names our modules use."""
    out = {}
    for key, value in state.items():
        if ".parametrizations." in key:
            head, tail = key.split(".parametrizations.", 1)
            name, rest = tail.split(".", 1)
            legacy = {"original0": f"{name}_g", "original1": f"{name}_v",  # weight norm
                      "original": f"{name}_orig", "0._u": f"{name}_u", "0._v": f"{name}_v"}.get(rest)
            if legacy is not None:
                key = f"{head}.{legacy}"
        out[key] = value
    return out


def _fill_diffusion_twins(state: dict[str, torch.Tensor], expected: Iterable[str]) -> dict[str, torch.Tensor]:
    """The diffusion network is stored twice (`diffusion.net.*` and `unet.*`); accept either copy alone."""
    expected = set(expected)
    for key in list(state):
        for src, dst in (("diffusion.net.", "unet."), ("unet.", "diffusion.net.")):
            if key.startswith(src):
                twin = dst + key[len(src):]
                if twin in expected and twin not in state:
                    state[twin] = state[key]
    return state


def normalise_module_state(name: str, state: Mapping[str, torch.Tensor],
                           expected_keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """Bring one module's saved state dict to our key names (see the module docstring)."""
    expected_keys = list(expected_keys)
    state = _strip_prefix(state, "module.")
    state = _legacy_norm_names(state)
    if name == "bert":
        state.pop(_LEGACY_BERT_BUFFER, None)
    if name == "diffusion":
        state = _fill_diffusion_twins(state, expected_keys)
    return state


Problems = tuple[list[str], list[str], list[str]]


def _compare(module: nn.Module, state: Mapping[str, torch.Tensor]) -> Problems:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    return missing, unexpected, shapes


def _mismatch_report(problems: Mapping[str, Problems], limit: int = 20) -> str:
    lines = ["checkpoint does not match the model:"]
    for name, (missing, unexpected, shapes) in problems.items():
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
                lines.append(f"  {name}: {len(keys)} {label}: {shown}")
    return "\n".join(lines)


def load_module_state(name: str, module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load one module strictly; on mismatch raise CheckpointError naming the keys that differ."""
    load_net_state({name: module}, {name: state})


def load_net_state(modules: Mapping[str, nn.Module], net: Mapping[str, Mapping[str, torch.Tensor]],
                   only: Iterable[str] | None = None, skip: Iterable[str] = (),
                   allow_absent: Iterable[str] = ()) -> list[str]:
    """Load `net` (checkpoint['net']) into `modules` strictly; returns the names loaded.

    only: restrict to these module names (default: every module of the model).
    skip: module names deliberately left as they are (e.g. re-initialised in stage 2).
    allow_absent: module names that may be missing from the checkpoint (not loaded).
    Every problem across modules is checked before anything is loaded, and raised together.
    """
    skip, allow_absent = set(skip), set(allow_absent)
    names = [n for n in (only if only is not None else modules.keys()) if n not in skip]
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise CheckpointError(f"model has no module(s) {unknown}; it has {sorted(modules)}")
    absent = [n for n in names if n not in net and n not in allow_absent]
    if absent:
        raise CheckpointError(f"checkpoint lacks module(s) {absent} (it has {sorted(net)})")
    states, problems = {}, {}
    for name in (n for n in names if n in net):
        states[name] = normalise_module_state(name, net[name], modules[name].state_dict().keys())
        found = _compare(modules[name], states[name])
        if any(found):
            problems[name] = found
    if problems:
        raise CheckpointError(_mismatch_report(problems))
    for name, state in states.items():
        modules[name].load_state_dict(state, strict=True)
    return list(states)


def atomic_save(obj: Any, path: str | os.PathLike, previous: str | os.PathLike | None = None) -> Path:
    """torch.save to a temp file in the same directory, then rename: a crash never leaves half a file.

    previous: keep the file being replaced under this name (one generation), so a `path` that was
    damaged after it was written still has a fallback. A crash between the two renames leaves
    `previous` and no `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        give_ordinary_mode(tmp)  # mkstemp's 0600 would hide a shared run folder's checkpoints from its group
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def make_checkpoint(modules: Mapping[str, nn.Module], *, epoch: int = 0, iters: int = 0,
                    val_loss: float = 0.0, optimizer: Any = None, **extra: Any) -> dict:
    """A checkpoint dict in upstream's layout plus our extra keys."""
    state = {"net": {name: m.state_dict() for name, m in modules.items()},
             "optimizer": optimizer, "epoch": epoch, "iters": iters, "val_loss": val_loss}
    clash = set(extra) & set(state)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with upstream's: {sorted(clash)}")
    state.update(extra)
    return state


def _unwrap(state: Mapping[str, Any], key: str, path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    if key not in state:
        raise CheckpointError(f"{path}: expected the weights under [{key!r}], found keys {sorted(state)}")
    return state[key]


def pretrained_part_state(state: Mapping[str, Any], key: str, part: str,
                          path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    """The weights of one pretrained `part` in a file: a stage-0 training checkpoint of this project
    keeps them under ['net'][part] (its module name); upstream's releases under [key]."""
    net = state.get("net") if isinstance(state, Mapping) else None
    if isinstance(net, Mapping) and isinstance(net.get(part), Mapping):
        return net[part]
    return _unwrap(state, key, path)


def load_aligner_weights(aligner: nn.Module, path: str | os.PathLike) -> None:
    """The ASR aligner release (`epoch_00080.pth`) keeps its weights under ['model'] (so do the
    stage-0 aligner checkpoints here, beside their ['net'])."""
    load_module_state("text_aligner", aligner, pretrained_part_state(torch_load(path), "model", "text_aligner", path))


def load_pitch_weights(pitch: nn.Module, path: str | os.PathLike) -> None:
    """The JDC pitch extractor release (`bst.t7`) keeps its weights under ['net']; a stage-0 pitch
    checkpoint here under ['net']['pitch_extractor']."""
    load_module_state("pitch_extractor", pitch,
                      pretrained_part_state(torch_load(path), "net", "pitch_extractor", path))
