"""Where the clips to score come from: a folder of wavs, an exported model, or a training checkpoint.

All three read a text list: `name|text` lines, or LJSpeech `metadata.csv` lines
(`id|text|normalized text`, the normalized text used when present). `name` is a wav file name in
the folder, with or without `.wav`. Reference audio, when given, is a folder of wavs with the same
names. Every problem (missing folder, a listed clip without its wav, a malformed line) is an
`InputError` that names the file and line.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import load_wav, save_wav
from .scores import EvalItem


class InputError(ValueError):
    """Bad evaluation input: a missing file or folder, a malformed or mismatched text list."""


@dataclass(frozen=True)
class TextEntry:
    name: str
    text: str
    where: str  # "file:line", for messages


def read_texts(path: str | os.PathLike) -> list[TextEntry]:
    """Entries of a `name|text` / LJSpeech metadata.csv text list, in file order."""
    from ..data.readers import read_ljspeech

    path = Path(path)
    if not path.is_file():
        raise InputError(f"text list not found: {path}")
    try:
        records = read_ljspeech(path, wav_dir=path.parent)
    except ValueError as err:  # CorpusFormatError names the file and line
        raise InputError(str(err)) from err
    entries, seen = [], {}
    for record in records:
        # the id as written, less ".wav" ("a.wav|..." lists too); it may name a subfolder
        name = record.wav.relative_to(path.parent).as_posix().removesuffix(".wav").removesuffix(".wav")
        if not record.text:
            raise InputError(f"{record.where}: empty text for {name!r}")
        if name in seen:
            raise InputError(f"{record.where}: {name!r} is listed twice (first at {seen[name]})")
        seen[name] = record.where
        entries.append(TextEntry(name, record.text, record.where))
    if not entries:
        raise InputError(f"{path} lists no clips")
    return entries


def _folder(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{what} folder not found: {path}")
    return path


def _wav(folder: Path, entry: TextEntry, what: str) -> tuple[np.ndarray, int]:
    path = folder / f"{entry.name}.wav"
    if not path.is_file():
        raise InputError(f"{entry.where}: {entry.name!r} has no {what} wav {path}")
    try:
        return load_wav(path)
    except ValueError as err:  # AudioReadError names the file
        raise InputError(str(err)) from err


def load_folder(texts: str | os.PathLike, wav_dir: str | os.PathLike,
                reference_dir: str | os.PathLike | None = None) -> list[EvalItem]:
    """Items for the wavs in `wav_dir` named by the text list (and their references)."""
    entries = read_texts(texts)
    wav_dir = _folder(wav_dir, "wav")
    references = _folder(reference_dir, "reference") if reference_dir is not None else None
    items = []
    for entry in entries:
        wave, rate = _wav(wav_dir, entry, "audio")
        reference, reference_rate = _wav(references, entry, "reference") if references else (None, None)
        items.append(_item(entry, wave, rate, reference, reference_rate))
    return items


def _item(entry: TextEntry, wave, rate, reference, reference_rate) -> EvalItem:
    try:
        return EvalItem(entry.name, wave, rate, entry.text, reference, reference_rate)
    except ValueError as err:
        raise InputError(f"{entry.where}: {err}") from err


def synthesize_items(texts: str | os.PathLike, synthesize: Callable[[str], np.ndarray], sample_rate: int,
                     reference_dir: str | os.PathLike | None = None,
                     save_dir: str | os.PathLike | None = None,
                     progress: Callable[[str], None] | None = None) -> list[EvalItem]:
    """Items made by `synthesize(text) -> float32 wave at sample_rate` for each listed text;
    the wavs are written to `save_dir/<name>.wav` when it is given."""
    entries = read_texts(texts)
    references = _folder(reference_dir, "reference") if reference_dir is not None else None
    # read every reference before synthesizing, so a missing one fails fast
    reference_waves = {e.name: _wav(references, e, "reference") for e in entries} if references else {}
    items = []
    for entry in entries:
        if progress:
            progress(f"synthesizing {entry.name}")
        try:
            wave = np.asarray(synthesize(entry.text), dtype=np.float32)
        except ValueError as err:
            raise InputError(f"{entry.where}: cannot synthesize {entry.text!r}: {err}") from err
        if save_dir is not None:
            save_wav(Path(save_dir) / f"{entry.name}.wav", np.clip(wave, -1.0, 1.0), sample_rate)
        items.append(_item(entry, wave, sample_rate, *reference_waves.get(entry.name, (None, None))))
    return items


def runtime_synthesizer(model_dir: str | os.PathLike, voice: str | None = None, seed: int = 0,
                        threads: int | None = None) -> tuple[Callable[[str], np.ndarray], int]:
    """(text -> wave, sample rate) with an exported model on onnxruntime (styletts2.runtime).
    voice: a reference wav for the voice (multispeaker models need one)."""
    from ..runtime import ModelDirError, Synthesizer

    _folder(model_dir, "exported model")
    try:
        synth = Synthesizer(model_dir, providers="cpu", threads=threads)
    except ModelDirError as err:
        raise InputError(str(err)) from err
    return (lambda text: synth.synthesize(text, voice, seed)), synth.sample_rate


def checkpoint_synthesizer(checkpoint: str | os.PathLike, configs: list[str] = (), bindings: list[str] = (),
                           voice: str | None = None, seed: int = 0, device: str | None = None,
                           steps: int | None = None) -> tuple[Callable[[str], np.ndarray], int]:
    """(text -> wave, sample rate) with a training checkpoint on the torch synthesizer
    (styletts2.inference). configs: model gin files / upstream config.yml (upstream checkpoints)."""
    from ..checkpoint import CheckpointError
    from ..inference import DEFAULT_STEPS, TorchSynthesizer
    from ..model import load_model

    if not Path(checkpoint).is_file():
        raise InputError(f"checkpoint not found: {checkpoint}")
    try:
        model, _ = load_model(str(checkpoint), list(configs), list(bindings))
    except CheckpointError as err:
        raise InputError(str(err)) from err
    synth = TorchSynthesizer(model, steps=steps or DEFAULT_STEPS, device=device or "cpu")
    return (lambda text: synth.synthesize(text, reference=voice, seed=seed)), synth.sample_rate
