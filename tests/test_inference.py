"""Torch synthesis with a tiny random model: determinism, lengths, long text, knobs, errors, CLI."""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import build_tiny
from styletts2.checkpoint import atomic_save, make_checkpoint
from styletts2.inference import TorchSynthesizer
from styletts2.synthesize import main as synthesize_main

TEXT = "The quick brown fox jumps over the lazy dog. It was not amused!"


@pytest.fixture(scope="module")
def synthesizer():
    return TorchSynthesizer(build_tiny(), device="cpu")


def test_same_seed_same_samples_and_lengths_follow_durations(synthesizer):
    a = synthesizer.synthesize(TEXT, seed=7)
    b = synthesizer.synthesize(TEXT, seed=7)
    c = synthesizer.synthesize(TEXT, seed=8)
    assert a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert not np.array_equal(a[: min(len(a), len(c))], c[: min(len(a), len(c))])

    pieces = synthesizer.text_to_token_pieces(TEXT)
    assert len(pieces) == 2  # two sentences
    result = synthesizer.synthesize_tokens(pieces[0], synthesizer.options, np.random.default_rng(0), 0)
    assert len(result.durations) == len(pieces[0]) + 1  # + the leading pad token
    assert (result.durations >= 1).all()
    assert result.wave.size == int(result.durations.sum()) * 600


def test_speed_divides_durations(synthesizer):
    ids = synthesizer.text_to_token_pieces("Speak faster please.")[0]
    slow = synthesizer.synthesize_tokens(ids, synthesizer.options, np.random.default_rng(3), 0)
    fast = synthesizer.synthesize_tokens(ids, synthesizer.options.replace(speed=2.0), np.random.default_rng(3), 0)
    assert fast.durations.sum() < slow.durations.sum()


def test_given_noises_replace_the_draws(synthesizer):
    ids = synthesizer.text_to_token_pieces("Hello there.")[0]
    rng = np.random.default_rng(9)
    width = 2 * synthesizer.style_dim
    noises = (rng.standard_normal((1, 1, width), dtype=np.float32),
              rng.standard_normal((synthesizer.config.diffusion_steps - 1, 1, 1, width), dtype=np.float32))
    drawn = synthesizer.synthesize_tokens(ids, synthesizer.options, np.random.default_rng(9), 0)
    given = synthesizer.synthesize_tokens(ids, synthesizer.options, None, 0, noises=noises)
    other = synthesizer.synthesize_tokens(ids, synthesizer.options, None, 0, noises=(noises[0] + 1, noises[1]))
    assert np.array_equal(drawn.sampled_style, given.sampled_style) and np.array_equal(drawn.wave, given.wave)
    assert not np.array_equal(given.sampled_style, other.sampled_style)


def test_long_text_is_split_not_truncated(synthesizer):
    words = " ".join(["banana"] * 150)  # one 'sentence' of ~1000 phoneme tokens
    pieces = synthesizer.text_to_token_pieces(words)
    assert len(pieces) >= 2 and all(len(p) + 1 <= 512 for p in pieces)
    joined = [t for p in pieces for t in p + [16]][:-1]
    direct = synthesizer.tokenizer.encode(synthesizer.phonemizer(words), add_bos=False, add_eos=False)
    assert joined == direct


def test_stream_yields_each_sentence(synthesizer):
    chunks = list(synthesizer.stream(TEXT, seed=1))
    assert len(chunks) == 2
    assert np.array_equal(np.concatenate(chunks), synthesizer.synthesize(TEXT, seed=1))


def test_bad_input(synthesizer):
    with pytest.raises(ValueError, match="empty"):
        synthesizer.synthesize("   ")
    with pytest.raises(TypeError, match="temperature"):
        synthesizer.synthesize("Hi.", temperature=2)


def test_multispeaker_needs_a_reference(monkeypatch):
    model = build_tiny()
    monkeypatch.setattr(model, "multispeaker", True)
    with pytest.raises(ValueError, match="reference"):
        TorchSynthesizer(model, device="cpu").synthesize("Hello there.")


def test_steps_and_modules_are_checked():
    with pytest.raises(ValueError, match="diffusion_steps"):
        TorchSynthesizer(build_tiny(), steps=1, device="cpu")
    model = build_tiny()
    del model.diffusion
    with pytest.raises(ValueError, match="diffusion"):
        TorchSynthesizer(model, device="cpu")


def test_a_non_finite_style_is_an_error(synthesizer, monkeypatch):
    sampler = synthesizer.executor.graphs["diffusion_sampler"]
    monkeypatch.setattr(sampler, "forward", lambda *args: torch.full((1, 2 * synthesizer.style_dim), float("nan")))
    with pytest.raises(FloatingPointError, match="not finite"):
        synthesizer.synthesize("Hello.", seed=0)


def test_reference_style_mixing(synthesizer):
    wave = np.sin(np.arange(36000) * 2 * np.pi * 180 / 24000).astype(np.float32) * 0.5
    assert synthesizer.reference_style(wave, 24000).shape == (1, synthesizer.style_dim * 2)
    # The random tiny style encoder reads this sine as a style of about 1e20, whose waveform is not
    # finite (the synthesizer refuses it): mix a moderate style instead.
    ref = np.linspace(-1, 1, 2 * synthesizer.style_dim, dtype=np.float32)[None]
    ids = synthesizer.text_to_token_pieces("Hello there.")[0]
    options = synthesizer.options.replace(alpha=0.0, beta=0.0)
    full_ref = synthesizer.synthesize_tokens(ids, options, np.random.default_rng(0), 0, reference_style=ref)
    assert np.allclose(full_ref.style, ref)  # alpha = beta = 0: the reference's style alone


def test_cli_writes_a_wav(tmp_path, capsys):
    import gin

    model = build_tiny()
    ckpt = atomic_save(make_checkpoint(model.nets, gin_config=gin.operative_config_str()), tmp_path / "m.pth")
    out = tmp_path / "out.wav"
    assert synthesize_main(["--checkpoint", str(ckpt), "Hello world.", "-o", str(out), "--seed", "0"]) == 0
    wave, sr = sf.read(out)
    assert sr == 24000 and len(wave) > 0 and len(wave) % 600 == 0
    assert "RTF" in capsys.readouterr().out
