"""Structure and behaviour of the training helper networks: text aligner (ASRCNN), pitch
extractor (JDCNet) and the discriminators. Numerical parity with upstream: test_parity_aux.py."""
import copy
from pathlib import Path

import gin
import numpy as np
import pytest
import scipy.fft
import torch

from styletts2.manifest import manifest_rows, read_manifest
from styletts2.modules.aligner import ASRCNN, dct_ii_matrix
from styletts2.modules.discriminators import (MultiPeriodDiscriminator,
                                              MultiResSpecDiscriminator, WavLMDiscriminator)
from styletts2.modules.pitch import JDCNet

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
SMALL_ALIGNER = dict(hidden_dim=16, n_token=24, n_layers=2, token_embedding_dim=16)


@pytest.fixture(scope="module")
def full_size():
    """The modules at their released sizes (built once: MPD alone has 41M parameters)."""
    torch.manual_seed(0)
    return {"text_aligner": ASRCNN(), "pitch_extractor": JDCNet().eval(),
            "mpd": MultiPeriodDiscriminator(), "msd": MultiResSpecDiscriminator(),
            "wd": WavLMDiscriminator()}


@pytest.mark.parametrize("config", ["ljspeech", "libritts"])
@pytest.mark.parametrize("name", ["text_aligner", "pitch_extractor", "mpd", "msd", "wd"])
def test_state_dict_matches_reference_manifest(full_size, config, name):
    reference = [r for r in read_manifest(REFERENCE / f"upstream_{config}_state_dict.tsv")
                 if r[0] == name]
    assert reference, f"no {name} rows in the {config} manifest"
    assert manifest_rows({name: full_size[name]}) == reference


def test_dct_matrix_is_orthonormal_dct_ii():
    basis = dct_ii_matrix(40, 80)
    assert basis.shape == (80, 40)
    expected = scipy.fft.dct(np.eye(80), type=2, norm="ortho", axis=0)[:40].T
    np.testing.assert_allclose(basis.numpy(), expected, atol=1e-6)
    torch.testing.assert_close(basis.t() @ basis, torch.eye(40), atol=1e-5, rtol=0)


def _aligner_batch(n_frames=30, n_tokens=6, n_token=24):
    mel = torch.randn(2, 80, n_frames)
    frames = (n_frames + 1) // 2
    valid = torch.tensor([frames, frames - 5])
    mask = torch.arange(frames)[None] >= valid[:, None]
    text = torch.randint(4, n_token, (2, n_tokens))
    return mel, mask, text


def test_aligner_shapes_and_masked_attention():
    torch.manual_seed(0)
    model = ASRCNN(**SMALL_ALIGNER).eval()
    mel, mask, text = _aligner_batch()
    ctc, s2s, attn = model(mel, mask, text)
    assert ctc.shape == (2, 15, 24)
    assert s2s.shape == (2, 7, 24)          # <sos> + 6 tokens
    assert attn.shape == (2, 7, 15)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 7))
    assert torch.all(attn[1, :, -5:] == 0)  # padded frames get no attention
    assert model(mel).shape == ctc.shape    # no text: CTC logits only
    assert model.get_feature(mel.unsqueeze(1)).shape == (2, 8, 15)
    assert ASRCNN.n_down == 1


def test_aligner_randomness_only_in_training_or_on_request():
    torch.manual_seed(0)
    model = ASRCNN(**SMALL_ALIGNER)
    mel, mask, text = _aligner_batch()
    model.eval()
    first = model(mel, mask, text)[1]
    torch.testing.assert_close(model(mel, mask, text)[1], first, atol=0, rtol=0)
    # Upstream's eval-mode unk masking, on request: tokens change, so the prediction does.
    torch.manual_seed(3)
    unk = model(mel, mask, torch.randint(4, 24, (2, 40)), mask_unk=True)[1]
    torch.manual_seed(3)
    plain = model(mel, mask, torch.randint(4, 24, (2, 40)))[1]
    assert not torch.equal(unk, plain)
    model.train()
    assert not torch.equal(model(mel, mask, text)[1], model(mel, mask, text)[1])


@pytest.mark.parametrize("knob", [None, "dropout_p", "decoder_dropout_p", "unk_mask_p"])
def test_aligner_training_randomness_is_the_three_knobs(knob):
    """With its dropouts and unk masking at 0 the aligner in training mode is its eval self; each knob
    alone brings randomness back."""
    off = dict(dropout_p=0.0, decoder_dropout_p=0.0, unk_mask_p=0.0)
    if knob:
        off[knob] = 0.5
    torch.manual_seed(0)
    model = ASRCNN(**SMALL_ALIGNER, **off)
    mel, mask, text = _aligner_batch()
    model.eval()
    evaluated = model(mel, mask, text)[1]
    model.train()
    trained = model(mel, mask, text)[1]
    assert torch.equal(trained, evaluated) == (knob is None)


def test_aligner_rejects_bad_input():
    model = ASRCNN(**SMALL_ALIGNER)
    with pytest.raises(ValueError, match=r"\[B, 80, T\]"):
        model(torch.randn(80, 30))
    with pytest.raises(ValueError, match="multiple of 8"):
        ASRCNN(hidden_dim=20)


def test_aligner_is_gin_configurable():
    with gin.unlock_config():
        gin.parse_config(["ASRCNN.hidden_dim = 32", "ASRCNN.n_layers = 1"])
    try:
        model = ASRCNN()
        assert model.init_cnn.conv.out_channels == 32 and len(model.cnns) == 1
    finally:
        gin.clear_config()


def test_pitch_extractor_shapes_and_batch_one_squeeze(full_size):
    model = full_size["pitch_extractor"]
    with torch.no_grad():
        f0, gan_feature, pooled = model(torch.randn(2, 1, 80, 20))
    assert f0.shape == (2, 20) and torch.all(f0 >= 0)
    assert gan_feature.shape == (2, 256, 10, 20)
    assert pooled.shape == (2, 256, 20, 2)
    # Upstream squeezes the F0 output: a batch of one loses its batch axis.
    with torch.no_grad():
        f0_single, _, _ = model(torch.randn(1, 1, 80, 20))
    assert f0_single.shape == (20,)


def test_pitch_extractor_train_mode_uses_batch_statistics(full_size):
    model = copy.deepcopy(full_size["pitch_extractor"])
    mel = torch.randn(2, 1, 80, 16)
    before = model.pool_block[0].running_mean.clone()
    with torch.no_grad():
        train_f0 = model.train()(mel)[0]
        eval_f0 = model.eval()(mel)[0]
    assert not torch.equal(model.pool_block[0].running_mean, before)
    assert model.pool_block[0].num_batches_tracked.item() == 1
    assert not torch.allclose(train_f0, eval_f0)


def test_pitch_extractor_rejects_bad_input(full_size):
    with pytest.raises(ValueError, match=r"\[B, 1, n_mels, T\]"):
        full_size["pitch_extractor"](torch.randn(2, 80, 20))


@pytest.mark.parametrize("length", [1200, 1201])  # 1201: reflect-padded up to each period
def test_period_discriminator_outputs(full_size, length):
    mpd = full_size["mpd"]
    y, y_hat = torch.randn(2, 1, length), torch.randn(2, 1, length)
    with torch.no_grad():
        real, fake, real_fmaps, fake_fmaps = mpd(y, y_hat)
    assert len(real) == len(fake) == len(real_fmaps) == len(fake_fmaps) == 5
    for out, fmaps, disc in zip(real, real_fmaps, mpd.discriminators):
        assert out.dim() == 2 and out.shape[0] == 2
        assert len(fmaps) == 6 and fmaps[-1].shape[-1] == disc.period
        assert out.shape[1] == fmaps[-1][0].numel()
    assert not torch.equal(real[0], fake[0])


def test_spectrogram_discriminator_outputs(full_size):
    msd = full_size["msd"]
    assert all("window" not in k for k in msd.state_dict())
    with torch.no_grad():
        real, fake, real_fmaps, _ = msd(torch.randn(2, 1, 2400), torch.randn(2, 1, 2400))
    assert len(real) == len(fake) == 3
    # frames = 1 + T // hop; the strided convs halve the frequency bins three times.
    for fmaps, hop, n_fft in zip(real_fmaps, (120, 240, 50), (1024, 2048, 512)):
        assert len(fmaps) == 6
        bins = n_fft // 2 + 1
        for _ in range(3):
            bins = (bins + 1) // 2
        assert fmaps[-1].shape == (2, 1, 1 + 2400 // hop, bins)
    with pytest.raises(ValueError, match="one entry per resolution"):
        MultiResSpecDiscriminator(fft_sizes=(1024, 512))


def test_period_discriminator_widths_are_configurable_and_default_to_upstreams():
    default = MultiPeriodDiscriminator(periods=(2,)).state_dict()
    assert default["discriminators.0.convs.4.weight_v"].shape == (1024, 1024, 5, 1)
    assert default["discriminators.0.conv_post.weight_v"].shape == (1, 1024, 3, 1)
    narrow = MultiPeriodDiscriminator(periods=(2, 3), channels=(8, 16))
    assert [tuple(c.weight_v.shape[:2]) for c in narrow.discriminators[1].convs] == [(8, 1), (16, 8), (16, 16)]
    real_outs, fake_outs, _, fake_fmaps = narrow(torch.randn(2, 1, 2400), torch.randn(2, 1, 2400))
    assert [f.shape[1] for f in fake_fmaps[0]] == [8, 16, 16, 1] and len(real_outs) == len(fake_outs) == 2
    with pytest.raises(ValueError, match="positive widths"):
        MultiPeriodDiscriminator(channels=(16, 0))


def test_discriminators_reject_bad_waveforms():
    with pytest.raises(ValueError, match=r"y_hat has shape \(2, 2400\)"):
        MultiPeriodDiscriminator(periods=(2,))(torch.randn(2, 1, 2400), torch.randn(2, 2400))


def test_wavlm_discriminator():
    torch.manual_seed(0)
    wd = WavLMDiscriminator(slm_hidden=16, slm_layers=3, initial_channel=8)
    assert wd(torch.randn(2, 48, 30)).shape == (2, 30)
    with pytest.raises(ValueError, match=r"\[B, 48, frames\]"):
        wd(torch.randn(2, 47, 30))
    spectral = WavLMDiscriminator(slm_hidden=16, slm_layers=3, initial_channel=8,
                                  use_spectral_norm=True)
    assert "pre.weight_orig" in spectral.state_dict()
