"""F0 labels for training the pitch extractor: a DSP tracker's F0 per mel frame, cached beside the data.

They are made as yl4579/PitchExtractor makes them: pyworld's harvest (dio instead when harvest
finds fewer than 5 voiced frames) or dio, refined by stonemask, one value per mel hop (12.5 ms at
24 kHz), 0 Hz = unvoiced. They are tracked on the wave the dataset feeds the model, resampled and
edge-padded (`SpeechDataset`: 5000 zeros each side), so label i belongs to mel frame i of that wave
(centred framing: `samples // hop + 1` frames, pyworld's count for frame period = hop).

Cache: one `.npz` per clip in `<corpus list folder>/.f0/<key>/`, where the key names the tracker,
its settings, the rate, hop, padding and the pyworld version, so a changed setting never reuses old
labels. An entry records its clip's size and mtime; one whose clip changed, that cannot be read, or
whose length does not fit the clip is recomputed. Entries are written atomically, by worker
processes when there are many to make. This module imports no torch.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from math import ceil
from pathlib import Path

import gin
import numpy as np
import soundfile as sf
from tqdm import tqdm

from styletts2.audio.io import load_wav
from styletts2.audio.mel_params import HOP_LENGTH
from styletts2.file_modes import give_ordinary_mode

METHODS = ("harvest", "dio")


def pyworld():
    """The pyworld extension (the `pyworld-prebuilt` wheel: pyworld itself ships no Python 3.11 wheel)."""
    import pyworld as pw

    return pw


@dataclass(frozen=True)
class F0Tracker:
    """A DSP F0 tracker and its settings (see `f0_tracker` for their meaning)."""

    method: str = "harvest"
    f0_floor: float = 71.0
    f0_ceil: float = 800.0
    fallback_min_voiced: int = 5

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown F0 tracker {self.method!r}; choose from {METHODS}")
        if not 0 < self.f0_floor < self.f0_ceil:
            raise ValueError(f"need 0 < f0_floor < f0_ceil, got {self.f0_floor}, {self.f0_ceil}")

    def __call__(self, wave: np.ndarray, sample_rate: int, hop_length: int) -> np.ndarray:
        """F0 in Hz (0 = unvoiced) every `hop_length` samples of `wave`, frame i at sample i * hop."""
        pw = pyworld()
        x = np.ascontiguousarray(wave, dtype=np.float64)
        period = hop_length * 1000 / sample_rate
        dio = partial(pw.dio, x, sample_rate, f0_floor=self.f0_floor, f0_ceil=self.f0_ceil, frame_period=period)
        if self.method == "harvest":
            f0, times = pw.harvest(x, sample_rate, f0_floor=self.f0_floor, f0_ceil=self.f0_ceil, frame_period=period)
            if np.count_nonzero(f0) < self.fallback_min_voiced:  # harvest failed on this clip (upstream's rule)
                f0, times = dio()
        else:
            f0, times = dio()
        return pw.stonemask(x, f0, times, sample_rate).astype(np.float32)


@gin.configurable
def f0_tracker(method: str = "harvest", f0_floor: float = 71.0, f0_ceil: float = 800.0,
               fallback_min_voiced: int = 5) -> F0Tracker:
    """The tracker the labels come from (then stonemask).

    method: 'harvest' (PitchExtractor's; about 0.25 s of CPU per second of audio) or 'dio' (about
        15 times faster, coarser).
    f0_floor, f0_ceil: search range in Hz (pyworld's defaults, which PitchExtractor uses).
    fallback_min_voiced: harvest finding fewer voiced frames than this falls back to dio.
    """
    return F0Tracker(method, float(f0_floor), float(f0_ceil), int(fallback_min_voiced))


@dataclass(frozen=True)
class LabelSpec:
    """Everything a label depends on besides the clip: the tracker and the wave/mel framing."""

    tracker: F0Tracker
    sample_rate: int = 24000
    hop_length: int = HOP_LENGTH
    edge_padding: int = 5000

    @property
    def key(self) -> str:
        t = self.tracker
        return (f"{t.method}-floor{t.f0_floor:g}-ceil{t.f0_ceil:g}-fallback{t.fallback_min_voiced}"
                f"-sr{self.sample_rate}-hop{self.hop_length}-pad{self.edge_padding}-pyworld{pyworld_version()}")

    def frames(self, samples: int) -> int:
        """Mel frames (= labels) of a clip of `samples` samples at the spec's rate, once padded."""
        return (samples + 2 * self.edge_padding) // self.hop_length + 1


def pyworld_version() -> str:
    return pyworld().__version__


def entry_path(cache_root: str | Path, wav: str | Path, spec: LabelSpec) -> Path:
    """Where the label of `wav` is cached: `<cache_root>/.f0/<key>/<stem>.<hash of its path>.npz`."""
    wav = Path(wav)
    digest = hashlib.sha1(str(wav.resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(cache_root) / ".f0" / spec.key / f"{wav.stem}.{digest}.npz"


def _fingerprint(wav: Path) -> tuple[int, int]:
    stat = wav.stat()
    return stat.st_size, stat.st_mtime_ns


def _expected_frames(wav: Path, spec: LabelSpec) -> int:
    """From the header alone; a resampled clip has ceil(n * new / old) samples (librosa's resample)."""
    info = sf.info(str(wav))
    if info.samplerate == spec.sample_rate:
        return spec.frames(info.frames)
    return spec.frames(ceil(info.frames * spec.sample_rate / info.samplerate))


def read_entry(path: Path, wav: Path, spec: LabelSpec) -> np.ndarray | None:
    """The cached label of `wav`, or None when missing, unreadable or not matching the clip."""
    try:
        with np.load(path) as entry:
            f0, size, mtime_ns = entry["f0"], int(entry["size"]), int(entry["mtime_ns"])
    except (OSError, ValueError, KeyError, EOFError):
        return None
    try:
        if (size, mtime_ns) != _fingerprint(wav) or len(f0) != _expected_frames(wav, spec):
            return None
    except (OSError, RuntimeError, sf.LibsndfileError):
        return None
    return f0 if f0.ndim == 1 and np.isfinite(f0).all() else None


def compute_label(wav: str | Path, spec: LabelSpec) -> np.ndarray:
    """Track the F0 of `wav` as the dataset sees it (resampled, edge-padded): one value per mel frame."""
    wave, _ = load_wav(wav, spec.sample_rate)
    wave = np.pad(wave, (spec.edge_padding, spec.edge_padding))
    n_frames = len(wave) // spec.hop_length + 1
    f0 = spec.tracker(wave, spec.sample_rate, spec.hop_length)
    # pyworld counts int(1000 * n / sr / period) + 1 frames: at most one off through rounding. The
    # frames at either end lie in the zero padding, so an extra one is 0 Hz.
    if abs(len(f0) - n_frames) > 1:
        raise RuntimeError(f"{wav}: tracker gave {len(f0)} frames for {n_frames} mel frames")
    f0 = np.pad(f0, (0, max(0, n_frames - len(f0))))[:n_frames]
    if not np.isfinite(f0).all():
        raise ValueError(f"{wav}: the F0 tracker returned non-finite values")
    return f0


def write_entry(path: Path, wav: Path, f0: np.ndarray, fingerprint: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic replace: an interrupted run (or a second rank) never sees half an entry.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, f0=f0.astype(np.float32), size=fingerprint[0], mtime_ns=fingerprint[1], wav=str(wav))
        give_ordinary_mode(tmp)  # a cache beside a shared corpus: readable as an ordinary file is
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_entry(job: tuple[Path, Path], spec: LabelSpec) -> str | None:
    """Compute and cache one label (in a worker process); the error message if the clip fails."""
    wav, path = job
    try:
        fingerprint = _fingerprint(wav)  # before reading: a clip changed meanwhile is seen as stale
        write_entry(path, wav, compute_label(wav, spec), fingerprint)
    except Exception as err:  # noqa: BLE001 - one bad clip is reported, never the run's end
        return f"{type(err).__name__}: {err}".strip()
    return None


@dataclass(frozen=True)
class LabelStatus:
    """One clip's label: its cache entry and voiced-frame count, or why there is none."""

    wav: Path
    entry: Path
    voiced: int = 0
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.voiced > 0


def prepare_labels(wavs: Sequence[str | Path], cache_roots: Sequence[str | Path], spec: LabelSpec,
                   workers: int | None = None, share: tuple[int, int] = (0, 1),
                   progress: bool = True) -> list[LabelStatus]:
    """Make sure every clip's label is cached; return the status of each (in order).

    cache_roots: the folder each clip's cache lives under (the corpus list's folder).
    workers: processes that track F0 (None: one per CPU, at most 16; 0 or 1: this process).
    share: (rank, world size): compute only the missing labels at positions rank::world (DDP ranks
        split the work); the statuses of the others report what their cache holds now.
    """
    if len(wavs) != len(cache_roots):
        raise ValueError("one cache root per clip")
    wavs = [Path(w) for w in wavs]
    paths = [entry_path(root, wav, spec) for root, wav in zip(cache_roots, wavs)]
    labels = [read_entry(path, wav, spec) for wav, path in zip(wavs, paths)]
    rank, world = share
    missing = [i for i, f0 in enumerate(labels) if f0 is None and i % world == rank]
    errors: dict[int, str] = {}
    if missing:
        jobs = [(wavs[i], paths[i]) for i in missing]
        make = partial(_make_entry, spec=spec)
        workers = min(16, os.cpu_count() or 1) if workers is None else workers
        bar = tqdm(total=len(jobs), desc=f"F0 labels ({spec.tracker.method})", unit="clip", disable=not progress,
                   dynamic_ncols=True)
        with bar:
            if workers <= 1 or len(jobs) < 4:
                results = []
                for job in jobs:
                    results.append(make(job))
                    bar.update()
            else:
                # spawn, not fork: the parent holds torch's threads, which a forked child must not inherit
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    results = []
                    for result in pool.map(make, jobs, chunksize=4):
                        results.append(result)
                        bar.update()
        for i, error in zip(missing, results):
            if error is not None:
                errors[i] = error
            else:
                labels[i] = read_entry(paths[i], wavs[i], spec)
    statuses = []
    for i, (wav, path, f0) in enumerate(zip(wavs, paths, labels)):
        if i in errors:
            statuses.append(LabelStatus(wav, path, error=errors[i]))
        elif f0 is None:
            # another rank's share (not made yet), or a clip changed while it was tracked
            statuses.append(LabelStatus(wav, path, error="no valid cached label"))
        else:
            statuses.append(LabelStatus(wav, path, voiced=int(np.count_nonzero(f0))))
    return statuses


def load_label(path: str | Path) -> np.ndarray:
    """A cached label's F0 values (float32, Hz per mel frame)."""
    with np.load(path) as entry:
        return entry["f0"]


def summary(statuses: Sequence[LabelStatus], examples: int = 3) -> str:
    """'N of M clips have F0 labels' plus the reasons and a few clips for those that do not."""
    failed = [s for s in statuses if s.error is not None]
    unvoiced = [s for s in statuses if s.error is None and s.voiced == 0]
    lines = [f"F0 labels: {len(statuses) - len(failed) - len(unvoiced)} of {len(statuses)} clips usable"]
    for reason, found in (("label_failed", failed), ("no_voiced_frames", unvoiced)):
        if found:
            lines.append(f"  {reason}: {len(found)}")
            lines += [f"    {s.wav}" + (f": {s.error}" if s.error else "") for s in found[:examples]]
    return "\n".join(lines)
