"""Distances to reference audio of the same text: mel cepstral distortion, F0 error, duration ratio.

Both clips are resampled to 22.05 kHz and lose leading and trailing silence (30 dB below the
clip's peak, as the runtime trims reference clips) before anything is measured; a clip whose
peak stays below -60 dBFS counts as holding no sound (ValueError).

- Mel cepstra: per 1024-sample Hann frame (hop 256, 11.6 ms), the natural-log amplitude
  spectrum is read on the all-pass (mel) warped frequency axis (alpha 0.455, the usual value at
  22.05 kHz) and its cosine transform taken: the same coefficients as SPTK's `freqt` of the linear
  cepstrum. Coefficients 1..24 are kept (c0, the gain, is left out).
- MCD (dB) = 10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2), averaged over the frame pairs of a DTW
  path between the two cepstrum sequences (Euclidean cost, steps (1,1), (1,0), (0,1)).
  The cepstra are those of the raw log spectrum (no WORLD/STRAIGHT envelope), so absolute values
  run higher than papers that use SPTK `mcep` on WORLD spectra; compare systems with one tool.
- F0: librosa's pYIN (50-600 Hz) on the same frame grid; the error is the root mean square of
  1200 * log2(f0 / f0_ref) (cents) over the DTW path's frame pairs voiced in both clips.
- Duration ratio: trimmed synthesized length / trimmed reference length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio.io import resample

ANALYSIS_RATE = 22050
N_FFT = 1024
HOP = 256
ALPHA = 0.455          # all-pass warping constant approximating the mel scale at 22.05 kHz
CEPSTRUM_ORDER = 24    # c1..c24
TRIM_TOP_DB = 30.0
SILENT_PEAK = 1e-3     # -60 dBFS: a clip whose peak stays below this holds no sound at all
F0_MIN, F0_MAX = 50.0, 600.0
_LOG_FLOOR = 1e-6      # amplitude floor so digital silence does not give log(0)
_MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)


@dataclass(frozen=True)
class ReferenceScores:
    mcd: float                 # dB
    f0_cents: float | None     # None when no frame pair is voiced in both clips
    duration_ratio: float


def prepare(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at the analysis rate with leading and trailing silence trimmed."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty mono waveform, got shape {wave.shape}")
    wave = resample(wave, sample_rate, ANALYSIS_RATE).astype(np.float32, copy=False)
    if np.max(np.abs(wave)) < SILENT_PEAK:  # trimming is relative to the peak: check silence first
        return wave[:0]
    trimmed, _ = librosa.effects.trim(wave, top_db=TRIM_TOP_DB, frame_length=N_FFT, hop_length=HOP)
    return trimmed


def trimmed_duration(wave: np.ndarray, sample_rate: int) -> float:
    """Seconds of sound between the first and last non-silent frame."""
    return len(prepare(wave, sample_rate)) / ANALYSIS_RATE


def _warped_grid(n_bins: int, alpha: float) -> np.ndarray:
    """Linear frequencies (radians) at which a uniform grid of warped frequencies falls."""
    warped = np.linspace(0.0, np.pi, n_bins)
    # inverse of w~ = w + 2 atan(a sin w / (1 - a cos w)) is the same map with -a
    return warped + 2.0 * np.arctan(-alpha * np.sin(warped) / (1.0 + alpha * np.cos(warped)))


def mel_cepstrum(wave: np.ndarray, order: int = CEPSTRUM_ORDER, alpha: float = ALPHA) -> np.ndarray:
    """Mel cepstra [frames, order + 1] (c0..c_order) of a wave at the analysis rate."""
    import scipy.fft
    import librosa

    magnitude = np.abs(librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, window="hann", center=True))
    log_amplitude = np.log(np.maximum(magnitude, _LOG_FLOOR))          # [bins, frames]
    bins = log_amplitude.shape[0]
    linear = np.linspace(0.0, np.pi, bins)
    grid = _warped_grid(bins, alpha)
    # read each frame's log spectrum on the warped axis (linear interpolation between bins)
    index = np.interp(grid, linear, np.arange(bins))
    low = np.floor(index).astype(int).clip(0, bins - 2)
    frac = (index - low)[:, None]
    warped = log_amplitude[low] * (1.0 - frac) + log_amplitude[low + 1] * frac
    # cepstrum c_m = (1/pi) * integral_0^pi L(w) cos(m w) dw, by the trapezoid rule (DCT-I)
    cepstrum = scipy.fft.dct(warped, type=1, axis=0) / (2.0 * (bins - 1))
    cepstrum[0] /= 2.0  # c0 is the mean log amplitude, not twice it
    return cepstrum[: order + 1].T


def dtw_path(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic time warping of [n, d] and [m, d] sequences with Euclidean cost and steps
    (1,1), (1,0), (0,1). Returns the aligned index arrays (i, j), from (0, 0) to (n-1, m-1)."""
    from scipy.spatial.distance import cdist

    cost = cdist(x, y)  # Euclidean, [n, m]
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        # from above or the diagonal: vectorised; from the left: a running minimum over prefix sums,
        # since D[i,j] = min_k<=j (a_k + C[i,k+1] + ... + C[i,j])
        diagonal = np.concatenate(([np.inf], acc[i - 1, :-1]))
        a = cost[i] + np.minimum(acc[i - 1], diagonal)
        prefix = np.cumsum(cost[i])
        acc[i] = prefix + np.minimum.accumulate(a - prefix)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]))
            i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
        path.append((i, j))
    path = np.array(path[::-1])
    return path[:, 0], path[:, 1]


def _f0(wave: np.ndarray) -> np.ndarray:
    """F0 in Hz per frame (NaN where unvoiced), on the cepstra's frame grid."""
    import librosa

    f0, voiced, _ = librosa.pyin(wave, fmin=F0_MIN, fmax=F0_MAX, sr=ANALYSIS_RATE, frame_length=N_FFT,
                                 hop_length=HOP, center=True)
    return np.where(voiced, f0, np.nan)


def _aligned_cepstra(x: np.ndarray, y: np.ndarray):
    cx, cy = mel_cepstrum(x)[:, 1:], mel_cepstrum(y)[:, 1:]  # c0 (gain) left out
    i, j = dtw_path(cx, cy)
    mcd = float(np.mean(_MCD_SCALE * np.sqrt(((cx[i] - cy[j]) ** 2).sum(-1))))
    return mcd, i, j


def _prepare_pair(wave, sample_rate, reference, reference_rate) -> tuple[np.ndarray, np.ndarray]:
    x, y = prepare(wave, sample_rate), prepare(reference, reference_rate)
    for clip, name in ((x, "the clip"), (y, "the reference")):
        if len(clip) < HOP:
            raise ValueError(f"{name} holds no sound (silent after trimming)")
    return x, y


def mel_cepstral_distortion(wave: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int) -> float:
    """MCD in dB between a clip and a reference (DTW-aligned, silence trimmed)."""
    return _aligned_cepstra(*_prepare_pair(wave, sample_rate, reference, reference_rate))[0]


def compare(wave: np.ndarray, sample_rate: int, reference: np.ndarray, reference_rate: int,
            with_f0: bool = True) -> ReferenceScores:
    """MCD, F0 error (cents) and duration ratio of a clip against reference audio of the same text."""
    x, y = _prepare_pair(wave, sample_rate, reference, reference_rate)
    ratio = len(x) / len(y)
    mcd, i, j = _aligned_cepstra(x, y)
    cents = None
    if with_f0:
        fx, fy = _f0(x)[i], _f0(y)[j]
        both = ~np.isnan(fx) & ~np.isnan(fy)
        if both.any():
            cents = float(np.sqrt(np.mean((1200.0 * np.log2(fx[both] / fy[both])) ** 2)))
    return ReferenceScores(mcd=mcd, f0_cents=cents, duration_ratio=float(ratio))
