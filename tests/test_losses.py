"""Training losses (styletts2.losses): known values, independent references, falling losses."""
import math

import gin
import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import WavLMConfig, WavLMModel

from styletts2.losses import (DiscriminatorLoss, DurationLoss, F0ReconstructionLoss, GeneratorLoss,
                              MelSpectralConvergenceLoss, MonotonicAlignmentLoss, MultiResolutionSTFTLoss,
                              NormReconstructionLoss, S2SCrossEntropyLoss, SincResample,
                              StyleReconstructionLoss, WavLMLoss, feature_matching_loss,
                              lsgan_discriminator_loss, lsgan_generator_loss, ordinal_targets,
                              tprls_discriminator_loss, tprls_generator_loss)

RESOLUTIONS = [(1024, 120, 600), (2048, 240, 1200), (512, 50, 240)]


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- mel spectral convergence -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Empty filters")
@pytest.mark.parametrize("n_fft,hop,win", RESOLUTIONS)
def test_mel_spectrogram_equals_librosa(n_fft, hop, win):
    wave = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    # 128 HTK filters over 0 .. 12 kHz at the true 24 kHz rate, power 2, centred reflect-padded frames.
    ours = MelSpectralConvergenceLoss(n_fft, hop, win).to_mel.power_mel(torch.from_numpy(wave)).numpy()
    theirs = librosa.feature.melspectrogram(y=wave.astype(np.float64), sr=24000, n_fft=n_fft, hop_length=hop,
                                            win_length=win, window="hann", center=True, pad_mode="reflect",
                                            power=2.0, n_mels=128, htk=True, norm=None)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5 * theirs.max())


def test_stft_loss_known_values_and_shapes():
    loss = MultiResolutionSTFTLoss()
    assert loss.weight == 5.0 and len(loss.stft_losses) == 3
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2, 2400, generator=gen) * 0.1
    fake = real + 0.02 * torch.randn(2, 2400, generator=gen)
    assert loss(real, real).item() == 0.0
    value = loss(fake, real)
    assert 0 < value.item() < 1
    torch.testing.assert_close(loss(fake.unsqueeze(1), real.unsqueeze(1)), value)
    torch.testing.assert_close(loss(fake.unsqueeze(1), real), value)
    with pytest.raises(ValueError, match="batches differ"):
        loss(fake[:1], real)


def test_stft_loss_is_the_mean_of_normalised_log_mel_l1_ratios():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.rand(1, 2400, generator=gen) - 0.5, torch.rand(1, 2400, generator=gen) - 0.5
    ratios = []
    for n_fft, hop, win in RESOLUTIONS:
        mel = MelSpectralConvergenceLoss(n_fft, hop, win).to_mel.power_mel
        x = (torch.log(1e-5 + mel(fake)) + 4) / 4
        y = (torch.log(1e-5 + mel(real)) + 4) / 4
        ratios.append((y - x).abs().sum() / y.abs().sum())
    torch.testing.assert_close(MultiResolutionSTFTLoss()(fake, real), sum(ratios) / 3)


def test_stft_loss_falls_when_optimised():
    gen = torch.Generator().manual_seed(2)
    real = torch.randn(1, 2400, generator=gen) * 0.1
    fake = nn.Parameter(torch.randn(1, 2400, generator=gen) * 0.1)
    loss = MultiResolutionSTFTLoss()
    optimizer = torch.optim.Adam([fake], lr=5e-3)
    first = loss(fake, real).item()
    for _ in range(15):
        optimizer.zero_grad()
        value = loss(fake, real)
        value.backward()
        optimizer.step()
    assert value.item() < 0.7 * first


# ---- resampling ---------------------------------------------------------------------------------

def direct_windowed_sinc(wave: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99):
    """y[j] = sum_i x[i] * h(i / orig - j / new) with a Hann-windowed sinc of cutoff rolloff * min rate."""
    cutoff = min(orig, new) * rolloff
    n_out = math.ceil(len(wave) * new / orig)
    i = np.arange(len(wave))
    out = np.zeros(n_out)
    for j in range(n_out):
        t = np.clip((i / orig - j / new) * cutoff, -width, width)
        window = np.cos(t * np.pi / width / 2) ** 2
        out[j] = np.sum(wave * np.sinc(t) * window) * cutoff / orig
    return out


@pytest.mark.parametrize("orig,new", [(24000, 16000), (16000, 24000), (48000, 16000)])
def test_resampler_matches_the_windowed_sinc_formula(orig, new):
    wave = np.random.default_rng(3).standard_normal(301)
    ours = SincResample(orig, new)(torch.from_numpy(wave).float()).numpy()
    expected = direct_windowed_sinc(wave, orig, new)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=2e-6)


def test_resampler_keeps_a_low_tone_and_batch_shape():
    t = torch.arange(24000) / 24000
    out = SincResample(24000, 16000)(torch.sin(2 * math.pi * 440 * t).repeat(2, 1, 1))
    assert out.shape == (2, 1, 16000)
    expected = torch.sin(2 * math.pi * 440 * torch.arange(16000) / 16000)
    assert (out[0, 0, 200:-200] - expected[200:-200]).abs().max() < 1e-3
    same = torch.randn(3, 100)
    assert SincResample(16000, 16000)(same) is same


# ---- waveform GAN losses ------------------------------------------------------------------------

def test_lsgan_and_feature_matching_known_values():
    ones, zeros = [torch.ones(2, 3)] * 2, [torch.zeros(2, 3)] * 2
    assert lsgan_generator_loss(ones).item() == 0 and lsgan_generator_loss(zeros).item() == 2
    assert lsgan_discriminator_loss(ones, zeros).item() == 0
    assert lsgan_discriminator_loss(zeros, ones).item() == 4
    real = [[torch.zeros(2, 4), torch.zeros(3)], [torch.zeros(5)]]
    fake = [[torch.full((2, 4), 0.5), torch.full((3,), -1.0)], [torch.full((5,), 0.25)]]
    assert feature_matching_loss(real, fake).item() == pytest.approx(2 * (0.5 + 1 + 0.25))


def test_tprls_known_values():
    real = [torch.tensor([0.0, 0.1, 0.2, 0.3, 0.35])]
    fake = [torch.zeros(5)]
    # gaps 0 .1 .2 .3 .35, median .2; below it: 0 and .1 -> mean((-.2)^2, (-.1)^2) = .025 < tau
    assert tprls_discriminator_loss(real, fake).item() == pytest.approx(0.025, rel=1e-5)
    # generator swaps the roles: gaps 0 -.1 -.2 -.3 -.35, median -.2; below: -.3, -.35 -> .01625
    assert tprls_generator_loss(real, fake).item() == pytest.approx(0.01625, rel=1e-5)
    assert tprls_discriminator_loss([real[0] * 10], fake).item() == pytest.approx(0.04)  # capped at tau
    assert tprls_discriminator_loss([torch.ones(4)], [torch.zeros(4)]).item() == 0.0  # no point below


def test_tprls_reads_nothing_on_the_host():
    """No `if` on a tensor and no boolean indexing: a GPU step does not wait for the device here."""
    from styletts2.train.syncs import count_syncs
    # small scores, so the deviation stays under tau and gradients flow
    real = [(0.05 * torch.randn(2, 50)).requires_grad_()]
    fake = [(0.05 * torch.randn(2, 50)).requires_grad_()]
    with count_syncs() as syncs:
        loss = tprls_discriminator_loss(real, fake) + tprls_generator_loss(real, fake)
        loss.backward()
    assert syncs.total == 0, syncs.table()
    assert torch.isfinite(real[0].grad).all() and real[0].grad.abs().sum() > 0


class TinyDiscriminator(nn.Module):
    """Two sub-discriminators of two conv layers each, in the MPD/MSD calling convention."""

    def __init__(self):
        super().__init__()
        self.subs = nn.ModuleList(nn.ModuleList([nn.Conv1d(1, 4, 5, 2), nn.Conv1d(4, 1, 3)]) for _ in range(2))

    def _run(self, sub, x):
        fmaps = []
        for layer in sub:
            x = F.leaky_relu(layer(x), 0.1)
            fmaps.append(x)
        return x.flatten(1), fmaps

    def forward(self, real, fake):
        outs = [(self._run(s, real), self._run(s, fake)) for s in self.subs]
        return ([r[0] for r, _ in outs], [f[0] for _, f in outs], [r[1] for r, _ in outs], [f[1] for _, f in outs])


def test_generator_and_discriminator_losses_compose_the_parts():
    torch.manual_seed(0)
    mpd, msd = TinyDiscriminator(), TinyDiscriminator()
    real, fake = torch.randn(2, 1, 64), torch.randn(2, 1, 64)
    expected_g, expected_d = 0, 0
    for disc in (mpd, msd):
        rs, gs, rf, gf = disc(real, fake)
        expected_g = expected_g + lsgan_generator_loss(gs) + feature_matching_loss(rf, gf) + tprls_generator_loss(rs, gs)
        expected_d = expected_d + lsgan_discriminator_loss(rs, gs) + tprls_discriminator_loss(rs, gs)
    torch.testing.assert_close(GeneratorLoss(mpd, msd)(real, fake), expected_g)
    torch.testing.assert_close(DiscriminatorLoss(mpd, msd)(real, fake), expected_d)


def test_discriminator_loss_falls_when_the_discriminator_trains():
    torch.manual_seed(1)
    mpd, msd = TinyDiscriminator(), TinyDiscriminator()
    loss = DiscriminatorLoss(mpd, msd)
    real, fake = torch.randn(2, 1, 32) + 1, torch.randn(2, 1, 32)
    optimizer = torch.optim.Adam(loss.parameters(), lr=2e-2)
    first = loss(real, fake).item()
    for _ in range(20):
        optimizer.zero_grad()
        value = loss(real, fake)
        value.backward()
        optimizer.step()
    assert value.item() < 0.5 * first


# ---- WavLM losses -------------------------------------------------------------------------------

TINY_WAVLM = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  conv_dim=(8,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                  num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, num_buckets=16,
                  max_bucket_distance=50)


def tiny_wavlm_loss() -> WavLMLoss:
    torch.manual_seed(0)
    wd = nn.Sequential(nn.Conv1d(3 * 16, 4, 1), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3, padding=1), nn.Flatten(1))
    return WavLMLoss(WavLMModel(WavLMConfig(**TINY_WAVLM)), wd)


def test_wavlm_loss_terms():
    loss = tiny_wavlm_loss().train()
    assert not loss.wavlm.training and loss.wd.training
    assert not any(p.requires_grad for p in loss.wavlm.parameters())
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(2, 4800, generator=gen) * 0.1
    fake = (real + 0.05 * torch.randn(2, 4800, generator=gen)).requires_grad_(True)

    assert loss(real, real).item() == 0.0
    value = loss(real, fake.unsqueeze(1))  # [B, 1, T] as the decoder returns it
    value.backward()
    assert value.item() > 0 and fake.grad.abs().sum() > 0

    states = loss.hidden_states(real)
    assert len(states) == 3 and states[0].shape[0] == 2 and states[0].shape[-1] == 16
    features = loss.discriminator_features(real)
    assert features.shape == (2, 48, states[0].shape[1])
    torch.testing.assert_close(features[:, 16:32], states[1].transpose(1, 2))

    scores_real, scores_fake = loss.wd(features), loss.wd(loss.discriminator_features(fake.detach()))
    torch.testing.assert_close(loss.generator(fake.detach()), ((1 - scores_fake) ** 2).mean())
    torch.testing.assert_close(loss.discriminator(real, fake.detach()),
                               ((1 - scores_real) ** 2).mean() + (scores_fake ** 2).mean())
    torch.testing.assert_close(loss.discriminator_forward(real), scores_real)


def test_wavlm_discriminator_term_trains_only_the_discriminator():
    loss = tiny_wavlm_loss()
    real, fake = torch.randn(2, 4800) * 0.1, (torch.randn(2, 4800) * 0.1).requires_grad_(True)
    loss.discriminator(real, fake).backward()
    assert fake.grad is None
    assert all(p.grad is not None for p in loss.wd.parameters())


# ---- alignment and duration losses --------------------------------------------------------------

def test_monotonic_loss_known_value():
    soft, hard = torch.full((1, 2, 5), 0.2), torch.zeros(1, 2, 5)
    assert MonotonicAlignmentLoss()(soft, hard).item() == pytest.approx(2.0)


def test_s2s_cross_entropy_is_the_mean_of_per_utterance_means():
    gen = torch.Generator().manual_seed(5)
    logits, tokens = torch.randn(3, 7, 11, generator=gen), torch.randint(0, 11, (3, 7), generator=gen)
    lengths = torch.tensor([7, 4, 2])
    expected = sum(F.cross_entropy(logits[b, :n], tokens[b, :n]) for b, n in enumerate(lengths)) / 3
    torch.testing.assert_close(S2SCrossEntropyLoss()(logits, tokens, lengths), expected)


def test_ordinal_targets():
    assert ordinal_targets(torch.tensor([0, 2, 5]), 4).tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def loop_duration_losses(logits, durations, lengths):
    """One utterance at a time, as upstream's training step computes them."""
    ce, dur = 0, 0
    for b, n in enumerate(lengths.tolist()):
        pred, target = logits[b, :n], durations[b, :n].long()
        ordinal = torch.zeros_like(pred)
        for token in range(n):
            ordinal[token, : target[token]] = 1
        dur = dur + F.l1_loss(torch.sigmoid(pred).sum(1)[1 : n - 1], target[1 : n - 1].float())
        ce = ce + F.binary_cross_entropy_with_logits(pred.flatten(), ordinal.flatten())
    return ce / len(lengths), dur / len(lengths)


def test_duration_loss_matches_the_per_utterance_definition():
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 9, 50, generator=gen) * 3
    durations = torch.randint(0, 60, (3, 9), generator=gen).float()  # some beyond the 50 bins
    lengths = torch.tensor([9, 3, 6])
    loss = DurationLoss()
    assert (loss.ce_weight, loss.dur_weight) == (20.0, 1.0)
    ce, dur = loss(logits, durations, lengths)
    expected_ce, expected_dur = loop_duration_losses(logits, durations, lengths)
    torch.testing.assert_close(ce, expected_ce)
    torch.testing.assert_close(dur, expected_dur)
    with pytest.raises(ValueError, match="text length >= 3"):
        loss(logits, durations, torch.tensor([9, 2, 6]))


def test_duration_loss_falls_when_optimised():
    gen = torch.Generator().manual_seed(7)
    logits = nn.Parameter(torch.randn(2, 8, 50, generator=gen))
    durations, lengths = torch.randint(1, 20, (2, 8), generator=gen), torch.tensor([8, 5])
    loss = DurationLoss()
    optimizer = torch.optim.Adam([logits], lr=0.1)
    first = sum(loss(logits, durations, lengths)).item()
    for _ in range(30):
        optimizer.zero_grad()
        ce, dur = loss(logits, durations, lengths)
        (loss.ce_weight * ce + loss.dur_weight * dur).backward()
        optimizer.step()
    assert (ce + dur).item() < 0.3 * first


# ---- prosody and style ------------------------------------------------------------------------

def test_prosody_and_style_known_values():
    f0_real, f0_fake = torch.tensor([100.0, 200.0]), torch.tensor([100.5, 190.0])
    # smooth L1 (beta 1): 0.5 * 0.5^2 = 0.125 and 10 - 0.5 = 9.5 -> mean 4.8125, / 10
    assert F0ReconstructionLoss()(f0_real, f0_fake).item() == pytest.approx(0.48125)
    assert NormReconstructionLoss()(f0_real, f0_fake).item() == pytest.approx(4.8125)
    target = torch.ones(2, 256, requires_grad=True)
    style = StyleReconstructionLoss()
    value = style(torch.zeros(2, 256), target)
    assert value.item() == 1.0 and not value.requires_grad


def test_losses_are_gin_configurable_with_upstream_defaults():
    assert MultiResolutionSTFTLoss().weight == 5.0 and DurationLoss().ce_weight == 20.0
    try:
        gin.parse_config(["MultiResolutionSTFTLoss.weight = 2.5", "DurationLoss.ce_weight = 3.0"])
        assert MultiResolutionSTFTLoss().weight == 2.5 and DurationLoss().ce_weight == 3.0
    finally:
        gin.clear_config()
