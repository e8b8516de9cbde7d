"""wav I/O: float32 mono reading, channel averaging, resampling, clear errors, writing."""
import numpy as np
import pytest
import soundfile as sf

from styletts2.audio.io import AudioReadError, load_wav, resample, save_wav


def test_load_averages_channels_to_float32_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    left, right = np.full(800, 0.5), np.full(800, -0.25)
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave, sr = load_wav(path)
    assert sr == 16000 and wave.dtype == np.float32 and wave.shape == (800,)
    assert np.allclose(wave, 0.125)


def test_load_resamples(tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(16000) / 16000
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
    wave, sr = load_wav(path, target_sr=24000)
    assert sr == 24000 and wave.dtype == np.float32 and wave.shape == (24000,)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(24000) / 24000)
    assert np.abs(wave[1000:-1000] - expected[1000:-1000]).max() < 1e-3  # away from the edges
    assert resample(wave, 24000, 24000) is wave


def test_missing_unreadable_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        load_wav(tmp_path / "nothing.wav")
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(b"this is not audio" * 20)
    with pytest.raises(AudioReadError, match="garbage.wav"):
        load_wav(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(AudioReadError, match="empty.wav.*no samples"):
        load_wav(empty)


def test_save_round_trip_and_clipping_warning(tmp_path):
    path = tmp_path / "out" / "x.wav"
    wave = np.linspace(-0.9, 0.9, 2400).astype(np.float32)
    save_wav(path, wave, 24000)
    back, sr = load_wav(path)
    assert sr == 24000 and np.abs(back - wave).max() < 1e-4
    with pytest.warns(UserWarning, match="2 samples beyond"):
        save_wav(path, np.array([0.0, 1.5, -2.0]), 24000)
    assert np.allclose(load_wav(path)[0], [0.0, 1.0, -1.0], atol=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        save_wav(path, np.array([0.0, np.nan]), 24000)
    with pytest.raises(ValueError, match="mono"):
        save_wav(path, np.zeros((2, 10)), 24000)
