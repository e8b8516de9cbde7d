"""Torch synthesis with a tiny random model: determinism, lengths, long text, knobs, errors, CLI."""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import build_tiny
from styletts2.checkpoint import atomic_save, make_checkpoint
from styletts2.inference import TorchSynthesisOptions, TorchSynthesizer
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
    result = synthesizer.synthesize_tokens(pieces[0], synthesizer.options, generator=torch.Generator().manual_seed(0))
    assert len(result.durations) == len(pieces[0]) + 1  # + the leading pad token
    assert (result.durations >= 1).all()
    assert result.wave.numel() == int(result.durations.sum()) * 600


def test_speed_divides_durations(synthesizer):
    ids = synthesizer.text_to_token_pieces("Speak faster please.")[0]
    noise = torch.randn(1, 1, synthesizer.style_dim * 2, generator=torch.Generator().manual_seed(3))
    slow = synthesizer.synthesize_tokens(ids, synthesizer.options, noise=noise,
                                         generator=torch.Generator().manual_seed(0))
    fast = synthesizer.synthesize_tokens(ids, synthesizer.options.replace(speed=2.0), noise=noise,
                                         generator=torch.Generator().manual_seed(0))
    assert fast.durations.sum() < slow.durations.sum()


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
    with pytest.raises(TypeError, match="unknown synthesis option"):
        synthesizer.synthesize("Hi.", temperature=2)


def test_multispeaker_needs_a_reference(synthesizer, monkeypatch):
    monkeypatch.setattr(synthesizer.model, "multispeaker", True)
    with pytest.raises(ValueError, match="reference"):
        synthesizer.synthesize("Hello there.")


def test_reference_style_mixing(synthesizer):
    wave = np.sin(np.arange(36000) * 2 * np.pi * 180 / 24000).astype(np.float32) * 0.5
    ref = synthesizer.reference_style(wave, 24000)
    assert ref.shape == (1, synthesizer.style_dim * 2)
    ids = synthesizer.text_to_token_pieces("Hello there.")[0]
    noise = torch.randn(1, 1, synthesizer.style_dim * 2)
    full_ref = synthesizer.synthesize_tokens(ids, TorchSynthesisOptions(alpha=0.0, beta=0.0), reference=ref,
                                             noise=noise, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(full_ref.style, ref)  # alpha = beta = 0: the reference's style alone


def test_cli_writes_a_wav(tmp_path, capsys):
    import gin

    model = build_tiny()
    ckpt = atomic_save(make_checkpoint(model.nets, gin_config=gin.operative_config_str()), tmp_path / "m.pth")
    out = tmp_path / "out.wav"
    assert synthesize_main(["--checkpoint", str(ckpt), "Hello world.", "-o", str(out), "--seed", "0"]) == 0
    wave, sr = sf.read(out)
    assert sr == 24000 and len(wave) > 0 and len(wave) % 600 == 0
    assert "RTF" in capsys.readouterr().out
