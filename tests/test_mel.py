"""Mel front-end: against an independent float64 numpy computation of the same definition, the
frame-count contract, filterbank identity with librosa's HTK filters, log_norm, shapes and errors."""
import functools

import gin
import librosa
import numpy as np
import pytest
import torch

from styletts2.audio.mel import LogMelSpectrogram, log_mel_spectrogram, log_norm, mel_filterbank, n_mel_frames


@functools.cache
def _reference_filterbank() -> np.ndarray:
    """[1025, 80] HTK triangles, written out filter by filter in float64."""
    n_freqs, n_mels, nyquist = 1025, 80, 8000.0
    mel_max = 2595.0 * np.log10(1.0 + nyquist / 700.0)
    edges = [700.0 * (10.0 ** (mel_max * i / (n_mels + 1) / 2595.0) - 1.0) for i in range(n_mels + 2)]
    fb = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lower, centre, upper = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_freqs):
            freq = k * nyquist / (n_freqs - 1)
            fb[k, m] = max(0.0, min((freq - lower) / (centre - lower), (upper - freq) / (upper - centre)))
    return fb


def _reference_log_mel(wave: np.ndarray) -> np.ndarray:
    """Explicit reflect padding, framing, centred periodic Hann window, rfft, power, mel, log-norm."""
    n_fft, win_length, hop = 2048, 1200, 300
    wave = wave.astype(np.float64)
    padded = np.concatenate([wave[1:n_fft // 2 + 1][::-1], wave, wave[-n_fft // 2 - 1:-1][::-1]])
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset:offset + win_length] = hann
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # [frames, 1025]
    mel = (power @ _reference_filterbank()).T  # [80, frames]
    return (np.log(1e-5 + mel) + 4.0) / 4.0


def _test_wave(n_samples: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 24000.0
    wave = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 5000.0 * t)
    wave += 0.05 * rng.standard_normal(n_samples)
    wave[: n_samples // 5] *= 1e-3  # a quiet stretch, where the 1e-5 offset matters
    return torch.from_numpy(wave.astype(np.float32))


@pytest.mark.parametrize("n_samples", [24000, 31337])
def test_matches_independent_reference(n_samples):
    wave = _test_wave(n_samples)
    ours = LogMelSpectrogram()(wave)
    ref = _reference_log_mel(wave.numpy())
    assert ours.shape == ref.shape == (80, n_samples // 300 + 1)
    assert np.abs(ours.numpy() - ref).max() < 1e-5


def test_filterbank_is_the_htk_definition():
    fb = mel_filterbank()
    assert fb.shape == (1025, 80) and fb.dtype == torch.float32
    assert np.abs(fb.numpy() - _reference_filterbank()).max() < 1e-5
    # librosa's HTK filters without normalisation are the same definition (computed in float64)
    librosa_fb = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=80, fmin=0.0, fmax=8000.0, htk=True, norm=None)
    assert np.abs(fb.numpy() - librosa_fb.T).max() < 1e-5


@pytest.mark.parametrize("n_samples", [1025, 1200, 23999, 24000, 24299, 24300, 24301])
def test_frame_count_contract(n_samples):
    mel = log_mel_spectrogram(torch.zeros(n_samples))
    assert mel.shape == (80, n_mel_frames(n_samples)) == (80, n_samples // 300 + 1)


def test_batched_equals_single_and_function_equals_module():
    waves = torch.stack([_test_wave(12000, seed=1), _test_wave(12000, seed=2)])
    front_end = LogMelSpectrogram()
    batched = front_end(waves)
    assert batched.shape == (2, 80, 41)
    for i in range(2):
        assert torch.equal(batched[i], front_end(waves[i]))
    assert torch.equal(log_mel_spectrogram(waves), batched)
    assert torch.equal(front_end(waves.double()), batched)  # float64 input is computed in float32


def test_silence_maps_to_the_floor():
    mel = log_mel_spectrogram(torch.zeros(3000))
    assert torch.allclose(mel, torch.full_like(mel, (np.log(1e-5) + 4) / 4))


def test_log_norm():
    x = log_mel_spectrogram(_test_wave(6000)).unsqueeze(0)  # [1, 80, frames]
    expected = np.log(np.linalg.norm(np.exp(x.double().numpy() * 4.0 - 4.0), axis=1))
    got = log_norm(x)
    assert got.shape == (1, x.shape[-1])
    assert np.abs(got.double().numpy() - expected).max() < 1e-5
    assert torch.equal(log_norm(x.unsqueeze(1), dim=2).squeeze(1), got)  # upstream's call shape


def test_buffers_stay_out_of_the_state_dict():
    front_end = LogMelSpectrogram()
    assert dict(front_end.state_dict()) == {}
    assert {name for name, _ in front_end.named_buffers()} == {"window", "mel_basis"}


def test_gin_configurable():
    with gin.unlock_config():
        gin.bind_parameter("LogMelSpectrogram.n_mels", 40)
    try:
        assert LogMelSpectrogram()(torch.zeros(2400)).shape == (40, 9)
    finally:
        gin.clear_config()


@pytest.mark.parametrize("wave, error, match", [
    (torch.zeros(1024), ValueError, "too short"),
    (torch.zeros(2, 2, 4000), ValueError, "waveform"),
    (torch.zeros(4000, dtype=torch.int16), TypeError, "floating-point"),
])
def test_bad_input(wave, error, match):
    with pytest.raises(error, match=match):
        LogMelSpectrogram()(wave)
