"""wav I/O: float32 mono reading, channel averaging, resampling, clear errors, writing."""
import numpy as np
import pytest
import soundfile as sf

from styletts2.audio.io import AudioReadError, load_wav, resample, save_wav
from styletts2.audio.trim import trim_silence


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
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder: give an audio file"):
        load_wav(tmp_path)
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


# The runtime's numpy-only versions against librosa's (which training and the evaluator use) -------

@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_resample_is_librosas_soxr_hq(rate):
    librosa = pytest.importorskip("librosa")
    wave = np.random.default_rng(rate).standard_normal(rate // 3 + 7).astype(np.float32)
    want = librosa.resample(wave, orig_sr=rate, target_sr=24000, res_type="soxr_hq")
    have = resample(wave, rate, 24000)
    assert have.dtype == want.dtype and np.array_equal(have, want)
    stereo = np.stack([wave, -wave]).astype(np.float64)
    assert np.array_equal(resample(stereo, rate, 24000),
                          librosa.resample(stereo, orig_sr=rate, target_sr=24000, res_type="soxr_hq"))


def test_trim_silence_is_librosas_trim():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(100, 40000))
        burst = np.exp(-(((np.arange(n) - rng.integers(0, n)) / (n / rng.uniform(2, 20))) ** 2))
        wave = (rng.standard_normal(n) * burst).astype(np.float32)
        wave[:rng.integers(0, n)] *= rng.uniform(0, 0.01)  # a quiet lead-in, sometimes under the threshold
        for top_db in (30, 60):
            want, want_span = librosa.effects.trim(wave, top_db=top_db)
            have, have_span = trim_silence(wave, top_db=top_db)
            assert have_span == tuple(want_span) and np.array_equal(have, want)


def test_trim_silence_edges():
    assert trim_silence(np.zeros(5000, np.float32))[1] == (0, 5000)  # uniform: nothing is quieter
    tone = np.sin(np.arange(24000) / 5).astype(np.float32)
    padded = np.concatenate([np.zeros(12000, np.float32), tone, np.zeros(12000, np.float32)])
    _, (start, end) = trim_silence(padded, top_db=30)
    assert 12000 - 2048 <= start <= 12000 and 36000 <= end <= 36000 + 2048
    with pytest.raises(ValueError, match="mono"):
        trim_silence(np.zeros((2, 100)))

