"""Losses and alignments against values locked from upstream StyleTTS2
(tests/parity/make_fixtures_losses.py writes the fixture; upstream is not needed here).

Tolerances: the mel, feature-matching and alignment-search values run the same operations in the
same order, so they are asserted (near) exactly; sums that we accumulate in another order (the
GAN totals, the vectorised Gaussian alignment versus upstream's grouped conv1d) get 1e-5."""
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import WavLMConfig, WavLMModel

from styletts2.alignment import differentiable_alignment, mask_from_lens, maximum_path
from styletts2.losses import (DiscriminatorLoss, GeneratorLoss, MultiResolutionSTFTLoss, WavLMLoss,
                              feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss,
                              tprls_discriminator_loss, tprls_generator_loss)

FIXTURE = Path(__file__).parent / "fixtures" / "parity_losses.pt"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=False)


def max_err(a, b) -> float:
    return (a - b).abs().max().item()


def test_mel_loss_value_and_gradient(fixture):
    data = fixture["mel"]
    fake = data["fake"].clone().requires_grad_(True)
    value = MultiResolutionSTFTLoss()(fake, data["real"])
    value.backward()
    assert max_err(value, data["value"]) < 1e-6
    # 1e-5 of the gradient's scale: other CPUs' FFT kernels differ by 3e-6 of it (an Intel Xeon
    # against the fixture's AMD EPYC)
    assert max_err(fake.grad, data["grad"]) < 1e-5 * data["grad"].abs().max().item()


class StoredDiscriminator(nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, real, fake):
        return self.outputs


def with_grad(outputs):
    real_scores, fake_scores, real_fmaps, fake_fmaps = outputs
    return (real_scores, [t.clone().requires_grad_(True) for t in fake_scores], real_fmaps,
            [[t.clone().requires_grad_(True) for t in layers] for layers in fake_fmaps])


def test_gan_losses(fixture):
    data = fixture["gan"]
    mpd, msd = data["mpd"], data["msd"]
    parts = data["parts"]
    assert max_err(feature_matching_loss(mpd[2], mpd[3]), parts["feature"]) < 1e-6
    assert max_err(lsgan_discriminator_loss(mpd[0], mpd[1]), parts["disc"]) < 1e-5
    assert max_err(lsgan_generator_loss(mpd[1]), parts["gen"]) < 1e-6
    assert max_err(tprls_discriminator_loss(mpd[0], mpd[1]), parts["tprls_disc"]) < 1e-7
    assert max_err(tprls_generator_loss(mpd[0], mpd[1]), parts["tprls_gen"]) < 1e-7

    g_mpd, g_msd = with_grad(mpd), with_grad(msd)
    generator = GeneratorLoss(StoredDiscriminator(g_mpd), StoredDiscriminator(g_msd))(None, None)
    generator.backward()
    assert max_err(generator, data["generator"]) < 1e-5
    for outputs, (score_grads, fmap_grads) in ((g_mpd, data["grad_mpd"]), (g_msd, data["grad_msd"])):
        for t, g in zip(outputs[1], score_grads):
            assert max_err(t.grad, g) < 1e-6
        for layers, grads in zip(outputs[3], fmap_grads):
            for t, g in zip(layers, grads):
                assert max_err(t.grad, g) < 1e-7
    discriminator = DiscriminatorLoss(StoredDiscriminator(mpd), StoredDiscriminator(msd))(None, None)
    assert max_err(discriminator, data["discriminator"]) < 1e-5


def test_wavlm_losses(fixture):
    data = fixture["slm"]
    wavlm = WavLMModel(WavLMConfig(**data["config"]))
    wavlm.load_state_dict(data["wavlm_state"], strict=True)
    wd = nn.Sequential(nn.Conv1d(48, 4, 1), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3, padding=1), nn.Flatten(1))
    wd.load_state_dict(data["wd_state"], strict=True)
    loss = WavLMLoss(wavlm, wd)
    real, fake = data["real"], data["fake"].clone().requires_grad_(True)
    value = loss(real, fake.unsqueeze(1))
    value.backward()
    assert max_err(value, data["feature"]) < 1e-6
    assert max_err(fake.grad, data["feature_grad"]) < 1e-5 * data["feature_grad"].abs().max().item()
    assert max_err(loss.generator(data["fake"]), data["generator"]) < 1e-6
    assert max_err(loss.discriminator(real, data["fake"]), data["discriminator"]) < 1e-6
    assert max_err(loss.discriminator_forward(real), data["discriminator_forward"]) < 1e-6


def test_soft_alignment_value_and_gradient(fixture):
    data = fixture["soft_alignment"]
    logits = data["logits"].clone().requires_grad_(True)
    attn, n_frames = differentiable_alignment(logits, data["lengths"], data["sigma"])
    assert attn.shape == data["attn"].shape
    assert max_err(attn, data["attn"]) < 1e-5
    (attn * data["weights"]).sum().backward()
    assert max_err(logits.grad, data["grad"]) < 1e-5


def test_maximum_path_equals_upstream_kernel(fixture):
    if "paths" not in fixture:
        pytest.skip("fixture was made without upstream's alignment kernel")
    data = fixture["paths"]
    mask = mask_from_lens(data["scores"], data["text_lengths"], data["mel_lengths"])
    assert torch.equal(maximum_path(data["scores"], mask), data["path"])
