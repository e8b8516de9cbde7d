"""Reading and writing wav files (soundfile) and resampling (soxr 'HQ').

`load_wav` returns float32 mono: channels are averaged, as `librosa.load` (used by upstream's
inference demos) does; upstream's training loader kept the first channel only, which differs for
the rare stereo clip. Resampling is what `librosa.resample(res_type="soxr_hq")` computes (the
resampler upstream's `librosa.resample` calls by default in librosa >= 0.10), with soxr called
directly: the runtime installs without librosa. This module does not import torch.
"""
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import folder_problem


class AudioReadError(ValueError):
    """An audio file exists but cannot be decoded, or holds no samples."""


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """`wave` (float, [..., samples]) resampled from `orig_sr` to `target_sr` with soxr HQ."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return wave
    import soxr  # imported here: only needed when rates differ

    wave = np.asarray(wave)
    out = np.apply_along_axis(soxr.resample, -1, wave, orig_sr, target_sr, quality="HQ")
    # librosa's length: ceil(samples * ratio), zero-padded or cut to it
    samples = int(np.ceil(wave.shape[-1] * float(target_sr) / orig_sr))
    if out.shape[-1] < samples:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, samples - out.shape[-1])])
    return np.asarray(out[..., :samples], dtype=wave.dtype)


def load_wav(path: str | os.PathLike, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono in [-1, 1]; resample to `target_sr` if given.

    Returns (wave [samples], sample_rate). Raises FileNotFoundError for a missing file,
    IsADirectoryError for a folder and AudioReadError (naming the file) for one that cannot be
    decoded or is empty.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioReadError(f"cannot read audio file {path}: {err}") from err
    if wave.shape[0] == 0:
        raise AudioReadError(f"audio file {path} holds no samples")
    wave = wave.mean(axis=1, dtype=np.float32)
    if target_sr is not None and target_sr != sr:
        wave = resample(wave, sr, target_sr).astype(np.float32, copy=False)
        sr = target_sr
    return wave, sr


def save_wav(path: str | os.PathLike, wave: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono `wave` ([samples], float in [-1, 1]) as a wav file, creating parent folders.

    Integer subtypes cannot hold values beyond [-1, 1]: such samples are clipped, with a warning
    saying how many.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [samples], got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"waveform for {path} holds NaN or infinite samples")
    if subtype.startswith("PCM"):
        n_clipped = int(np.count_nonzero(np.abs(wave) > 1.0))
        if n_clipped:
            warnings.warn(f"{n_clipped} samples beyond [-1, 1] clipped while writing {path}", stacklevel=2)
            wave = np.clip(wave, -1.0, 1.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(path, wave, sample_rate, subtype=subtype)
    except (sf.LibsndfileError, TypeError, ValueError) as err:  # TypeError: no format for the name
        raise OSError(f"cannot write {path}: {err}") from err


@contextmanager
def wav_writer(path: str | os.PathLike, sample_rate: int, subtype: str = "PCM_16") -> Iterator[sf.SoundFile]:
    """A mono sound file to write piece by piece, creating parent folders as `save_wav` does. It is
    written under a temporary name beside `path`, which it replaces when the block ends; an error or
    Ctrl-C removes it, so `path` is never left half written and an existing file survives a failed run."""
    target = Path(os.path.realpath(path))  # a link to the output: replace the file it names, not the link
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial{target.suffix}")  # same format
    try:
        with sf.SoundFile(partial, "w", samplerate=sample_rate, channels=1, subtype=subtype) as out:
            yield out
        os.replace(partial, target)
    except sf.LibsndfileError as err:
        partial.unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {err}") from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def check_audio_out(path: str | os.PathLike, subtype: str = "PCM_16") -> Path:
    """The output file of a command, checked before any work is done: a name whose extension
    soundfile writes in `subtype` (.wav, .flac...), not a folder, under a folder that is (or can be
    made) writable. Raises ValueError with one line saying what to give instead."""
    if str(path) in ("", "-"):
        raise ValueError("give an output file name such as out.wav (writing to stdout is not supported)")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give an output file name such as {path / 'out.wav'}")
    kind = path.suffix[1:].upper()
    if kind not in sf.available_formats() or not sf.check_format(kind, subtype):
        raise ValueError(f"cannot write {path}: give a .wav or .flac file name ({subtype} audio)")
    problem = folder_problem(path.parent)
    if problem:
        raise ValueError(f"cannot write {path}: {problem}")
    return path
