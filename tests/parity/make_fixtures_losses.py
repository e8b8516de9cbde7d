"""Regenerate tests/fixtures/parity_losses.pt from upstream StyleTTS2's loss code (run by hand):

    STYLETTS2_UPSTREAM=/path/to/StyleTTS2 python tests/parity/make_fixtures_losses.py [--full]

What is locked (all small, random inputs, fixed seeds):
- mel: upstream losses.MultiResolutionSTFTLoss (through the harness's MelSpectrogram stand-in, i.e.
  OUR mel; the filterbank itself is checked against librosa in tests/test_losses.py), value + gradient.
- gan: upstream GeneratorLoss / DiscriminatorLoss and their helper functions on stored discriminator
  outputs (stub discriminators return them), values + gradients with respect to the fake outputs.
- slm: upstream WavLMLoss (built without its __init__, which downloads WavLM and needs torchaudio's
  Resample: it gets a tiny random transformers WavLMModel, a tiny
  stand-in discriminator (two convs) and OUR SincResample), all four entry points, values + gradient.
- soft_alignment: the differentiable alignment inside upstream's SLMAdversarialLoss.forward, captured
  by running it on mock sub-models (the predictor mock records the alignment it is handed).
- paths: upstream's utils.maximum_path kernel (resemble-ai monotonic_align `core.maximum_path_c`,
  laid out [B, T_text, T_mel]) when MAS_UPSTREAM_KERNEL names a directory holding a build of that
  kernel as module `resemble_core`; skipped otherwise.
With --full, also prints the errors at full size (real MPD/MSD, WavLM-base-plus shapes), not stored.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "parity")]

from upstream_harness import import_upstream  # noqa: E402

from styletts2 import alignment  # noqa: E402
from styletts2.losses import (DiscriminatorLoss, GeneratorLoss, MultiResolutionSTFTLoss,  # noqa: E402
                              SincResample, WavLMLoss)

TINY_WAVLM = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  conv_dim=(8, 8, 8, 8, 8, 8, 8), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                  conv_kernel=(10, 3, 3, 3, 3, 2, 2), num_conv_pos_embeddings=8,
                  num_conv_pos_embedding_groups=2, num_buckets=16, max_bucket_distance=50)


def tiny_wd() -> nn.Module:
    """Small stand-in WavLM discriminator on the 3 x 16 stacked hidden states (rebuilt by the test)."""
    return nn.Sequential(nn.Conv1d(48, 4, 1), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3, padding=1), nn.Flatten(1))


class StoredDiscriminator(nn.Module):
    """Returns fixed outputs whatever the audio: (real_scores, fake_scores, real_fmaps, fake_fmaps)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, real, fake):
        return self.outputs


def random_disc_outputs(gen, n_sub, score_len, fmap_shapes):
    def rand(*shape):
        return torch.randn(*shape, generator=gen)
    real_scores = [rand(2, score_len) for _ in range(n_sub)]
    fake_scores = [rand(2, score_len) for _ in range(n_sub)]
    real_fmaps = [[rand(*s) for s in fmap_shapes] for _ in range(n_sub)]
    fake_fmaps = [[rand(*s) for s in fmap_shapes] for _ in range(n_sub)]
    return real_scores, fake_scores, real_fmaps, fake_fmaps


def with_grad(outputs):
    real_scores, fake_scores, real_fmaps, fake_fmaps = outputs
    fake_scores = [t.clone().requires_grad_(True) for t in fake_scores]
    fake_fmaps = [[t.clone().requires_grad_(True) for t in layers] for layers in fake_fmaps]
    return real_scores, fake_scores, real_fmaps, fake_fmaps


def grads_of(outputs):
    _, fake_scores, _, fake_fmaps = outputs
    return [t.grad.clone() for t in fake_scores], [[t.grad.clone() for t in layers] for layers in fake_fmaps]


def upstream_wavlm_loss(losses_mod, wavlm, wd):
    loss = losses_mod.WavLMLoss.__new__(losses_mod.WavLMLoss)
    nn.Module.__init__(loss)
    loss.wavlm, loss.wd, loss.resample = wavlm, wd, SincResample(24000, 16000)
    return loss


def capture_soft_alignment(slmadv_mod, logits, lengths, sigma):
    """Run upstream's SLMAdversarialLoss.forward on mocks; return the alignment it builds."""
    captured = {}

    class Predictor:
        calls = 0

        def __call__(self, d_en, s, lengths_, second, mask):
            Predictor.calls += 1
            if Predictor.calls == 1:
                return logits, None
            captured["attn"] = second
            return None, torch.zeros(len(lengths_), 4, second.shape[-1])

    class Model:
        bert = staticmethod(lambda text, attention_mask: torch.zeros(text.shape[0], text.shape[1], 8))
        bert_encoder = staticmethod(lambda x: x)
        text_encoder = staticmethod(lambda text, lengths_, mask: torch.zeros(text.shape[0], 4, text.shape[1]))
        predictor = Predictor()

    loss = slmadv_mod.SLMAdversarialLoss(Model(), None, None, min_len=400, max_len=500, sig=sigma)
    # use_ind=True plus a first numpy draw < 0.5 makes upstream take s_trg as the style (no sampler).
    seed = next(s for s in range(100) if np.random.RandomState(s).rand() < 0.5)
    np.random.seed(seed)
    text = torch.zeros(len(lengths), int(lengths.max()), dtype=torch.long)
    # Zero mel lengths make every clip too short, so forward returns None right after the alignment.
    out = loss(0, None, None, [np.zeros(10)] * len(lengths), torch.zeros(len(lengths)), text, lengths,
               True, torch.zeros(len(lengths), 256))
    assert out is None and "attn" in captured
    return captured["attn"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also print full-size errors")
    args = parser.parse_args()

    import_upstream()
    import losses as up  # upstream's losses.py (torchaudio stand-in already installed)
    from Modules import slmadv as up_slmadv
    from Modules.discriminators import WavLMDiscriminator
    from transformers import WavLMConfig, WavLMModel

    fixture = {}
    gen = torch.Generator().manual_seed(1234)

    # ---- mel spectral convergence --------------------------------------------------------------
    real = torch.randn(2, 1, 3000, generator=gen) * 0.1
    fake = (real + 0.05 * torch.randn(2, 1, 3000, generator=gen)).requires_grad_(True)
    value = up.MultiResolutionSTFTLoss()(fake, real)
    value.backward()
    fixture["mel"] = dict(real=real, fake=fake.detach(), value=value.detach(), grad=fake.grad.clone())
    ours = MultiResolutionSTFTLoss()(fake.detach(), real)
    print(f"mel: upstream {value.item():.6f} ours {ours.item():.6f} err {abs(value.item() - ours.item()):.2e}")

    # ---- MPD/MSD GAN losses --------------------------------------------------------------------
    mpd_out = random_disc_outputs(gen, 5, 12, [(2, 3, 6, 2), (2, 5, 3, 2)])
    msd_out = random_disc_outputs(gen, 3, 20, [(2, 4, 5, 6), (2, 4, 3, 6)])
    g_mpd, g_msd = with_grad(mpd_out), with_grad(msd_out)
    g_value = up.GeneratorLoss(StoredDiscriminator(g_mpd), StoredDiscriminator(g_msd))(None, None)
    g_value.backward()
    d_value = up.DiscriminatorLoss(StoredDiscriminator(mpd_out), StoredDiscriminator(msd_out))(None, None)
    parts = dict(
        feature=up.feature_loss(mpd_out[2], mpd_out[3]),
        disc=up.discriminator_loss(mpd_out[0], mpd_out[1])[0],
        gen=up.generator_loss(mpd_out[1])[0],
        tprls_disc=up.discriminator_TPRLS_loss(mpd_out[0], mpd_out[1]),
        tprls_gen=up.generator_TPRLS_loss(mpd_out[0], mpd_out[1]),
    )
    fixture["gan"] = dict(mpd=mpd_out, msd=msd_out, generator=g_value.detach(), discriminator=d_value.detach(),
                          grad_mpd=grads_of(g_mpd), grad_msd=grads_of(g_msd), parts=parts)
    ours_g = GeneratorLoss(StoredDiscriminator(mpd_out), StoredDiscriminator(msd_out))(None, None)
    ours_d = DiscriminatorLoss(StoredDiscriminator(mpd_out), StoredDiscriminator(msd_out))(None, None)
    print(f"gan: generator err {abs(ours_g - g_value).item():.2e}, discriminator err {abs(ours_d - d_value).item():.2e}")

    # ---- WavLM losses --------------------------------------------------------------------------
    torch.manual_seed(7)
    wavlm = WavLMModel(WavLMConfig(**TINY_WAVLM)).eval()
    wd = tiny_wd()
    real = torch.randn(2, 4800, generator=gen) * 0.1
    fake = (real + 0.05 * torch.randn(2, 4800, generator=gen)).requires_grad_(True)
    upl = upstream_wavlm_loss(up, wavlm, wd)
    slm = dict(config=TINY_WAVLM, wavlm_state=wavlm.state_dict(), wd_state=wd.state_dict(),
               real=real, fake=fake.detach())
    value = upl(real, fake.unsqueeze(1))
    value.backward()
    slm.update(feature=value.detach(), feature_grad=fake.grad.clone())
    slm["generator"] = upl.generator(fake.detach()).detach()
    slm["discriminator"] = upl.discriminator(real, fake.detach()).detach()
    slm["discriminator_forward"] = upl.discriminator_forward(real).detach()
    fixture["slm"] = slm
    ours = WavLMLoss(wavlm, wd)
    print(f"slm: feature err {abs(ours(real, fake.detach()) - slm['feature']).item():.2e}, "
          f"generator err {abs(ours.generator(fake.detach()) - slm['generator']).item():.2e}")

    # ---- differentiable (Gaussian) alignment ---------------------------------------------------
    lengths = torch.tensor([7, 5, 9])
    logits = (torch.randn(3, 9, 50, generator=gen) * 2 - 1.5).requires_grad_(True)
    attn = capture_soft_alignment(up_slmadv, logits, lengths, 1.5)
    weights = torch.randn(attn.shape, generator=gen)
    (attn * weights).sum().backward()
    fixture["soft_alignment"] = dict(logits=logits.detach(), lengths=lengths, sigma=1.5, attn=attn.detach(),
                                     weights=weights, grad=logits.grad.clone())
    ours, _ = alignment.differentiable_alignment(logits.detach(), lengths, 1.5)
    print(f"soft alignment: shape {tuple(attn.shape)}, err {(ours - attn).abs().max().item():.2e}")

    # ---- monotonic alignment search (upstream kernel, optional) --------------------------------
    kernel_dir = os.environ.get("MAS_UPSTREAM_KERNEL")
    if kernel_dir:
        sys.path.insert(0, kernel_dir)
        import resemble_core

        scores = torch.rand(4, 12, 40, generator=gen)
        text_lengths, mel_lengths = torch.tensor([12, 9, 5, 12]), torch.tensor([40, 31, 5, 12])
        mask = alignment.mask_from_lens(scores, text_lengths, mel_lengths)
        paths = np.zeros(scores.shape, dtype=np.int32)
        resemble_core.maximum_path_c(paths, scores.numpy().copy(),
                                     mask.sum(1)[:, 0].numpy().astype(np.int32),
                                     mask.sum(2)[:, 0].numpy().astype(np.int32))
        fixture["paths"] = dict(scores=scores, text_lengths=text_lengths, mel_lengths=mel_lengths,
                                path=torch.from_numpy(paths).float())
        ok = torch.equal(alignment.maximum_path(scores, mask), fixture["paths"]["path"])
        print(f"maximum_path equal to upstream kernel: {ok}")
    else:
        print("MAS_UPSTREAM_KERNEL not set: maximum_path fixture skipped")

    out = REPO / "tests" / "fixtures" / "parity_losses.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")

    if args.full:
        full_size_report(up, up_slmadv, WavLMDiscriminator, WavLMConfig, WavLMModel)


def full_size_report(up, up_slmadv, WavLMDiscriminator, WavLMConfig, WavLMModel) -> None:
    from Modules.discriminators import MultiPeriodDiscriminator, MultiResSpecDiscriminator

    # Upstream's spectrogram discriminator moves its window to `y.get_device()`, which is -1 on CPU
    # (it only ever ran on GPU); let CPU tensors answer "cpu" for this report.
    get_device = torch.Tensor.get_device
    torch.Tensor.get_device = lambda t: "cpu" if t.device.type == "cpu" else get_device(t)
    gen = torch.Generator().manual_seed(99)
    torch.manual_seed(99)
    real = torch.randn(2, 1, 24000, generator=gen) * 0.1
    fake = real + 0.05 * torch.randn(2, 1, 24000, generator=gen)
    with torch.no_grad():
        err = (up.MultiResolutionSTFTLoss()(fake, real) - MultiResolutionSTFTLoss()(fake, real)).abs().item()
        print(f"[full] mel loss, 2 x 1 s: err {err:.2e}")
        mpd, msd = MultiPeriodDiscriminator(), MultiResSpecDiscriminator()
        g_up = up.GeneratorLoss(mpd, msd)(real, fake)
        g_ours = GeneratorLoss(mpd, msd)(real, fake)
        d_up = up.DiscriminatorLoss(mpd, msd)(real, fake)
        d_ours = DiscriminatorLoss(mpd, msd)(real, fake)
        print(f"[full] GeneratorLoss {g_up.item():.6f} err {(g_up - g_ours).abs().item():.2e}; "
              f"DiscriminatorLoss {d_up.item():.6f} err {(d_up - d_ours).abs().item():.2e}")
        wavlm = WavLMModel(WavLMConfig()).eval()  # wavlm-base-plus shapes, random weights
        wd = WavLMDiscriminator(768, 13, 64)
        upl, ours = upstream_wavlm_loss(up, wavlm, wd), WavLMLoss(wavlm, wd)
        for name in ("forward", "generator", "discriminator", "discriminator_forward"):
            a = getattr(upl, name)
            b = getattr(ours, name)
            call = (lambda f: f(real.squeeze(1), fake.squeeze(1))) if name in ("forward", "discriminator") \
                else (lambda f: f(fake.squeeze(1)))
            print(f"[full] WavLMLoss.{name}: err {(call(a) - call(b)).abs().max().item():.2e}")
        lengths = torch.tensor([60, 45])
        logits = torch.randn(2, 60, 50, generator=gen) * 2 - 1.5
        attn = capture_soft_alignment(up_slmadv, logits, lengths, 1.5)
        ours_attn, _ = alignment.differentiable_alignment(logits, lengths, 1.5)
        print(f"[full] soft alignment {tuple(attn.shape)}: err {(ours_attn - attn).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
