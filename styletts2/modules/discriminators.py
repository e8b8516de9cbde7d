"""Adversarial discriminators used in StyleTTS2 training.

* MultiPeriodDiscriminator (HiFi-GAN MPD): the waveform folded into [T/p, p] images, periods
  2, 3, 5, 7, 11.
* MultiResSpecDiscriminator: 2-D convs over linear STFT magnitudes at three resolutions.
* WavLMDiscriminator: 1-D convs over the stacked hidden states of a frozen WavLM.

All convolutions are weight-normed with the legacy hook (`weight_g`/`weight_v` keys, as in
upstream checkpoints). The multi-discriminators return (real outputs, fake outputs, real feature
maps, fake feature maps), each a list with one entry per sub-discriminator; every output is
flattened to [B, n] and every feature-map list ends with the final (pre-flatten) score map.
"""
from collections.abc import Sequence

import gin
import torch
import torch.nn.functional as F
from torch import nn

from .norms import spectral_norm, weight_norm

LRELU_SLOPE = 0.1


class PeriodDiscriminator(nn.Module):
    """Folds [B, 1, T] into [B, 1, T/p, p] (reflect-padding T up to a multiple of p) and applies
    stride-3 convs along the folded time axis only. `channels`: the strided convs' widths
    (upstream's 32, 128, 512, 1024); the last width is kept by one more, unstrided conv."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3,
                 channels: Sequence[int] = (32, 128, 512, 1024)):
        super().__init__()
        self.period = period
        pad = ((kernel_size - 1) // 2, 0)
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=pad))
             for c_in, c_out in zip(widths[:-1], widths[1:])]
            + [weight_norm(nn.Conv2d(widths[-1], widths[-1], (kernel_size, 1), 1, padding=pad))])
        self.conv_post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = x.shape
        if length % self.period:
            n_pad = self.period - length % self.period
            x = F.pad(x, (0, n_pad), mode="reflect")
            length += n_pad
        x = x.view(batch, channels, length // self.period, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class SpectrogramDiscriminator(nn.Module):
    """2-D convs over the STFT magnitude laid out as an image [B, 1, frames, bins]; the strided
    convs downsample the frequency axis only."""

    def __init__(self, fft_size: int = 1024, shift_size: int = 120, win_length: int = 600,
                 window: str = "hann_window"):
        super().__init__()
        self.fft_size = fft_size
        self.shift_size = shift_size
        self.win_length = win_length
        # Not a checkpoint entry; a buffer only so that it follows the module's device.
        self.register_buffer("window", getattr(torch, window)(win_length), persistent=False)
        self.discriminators = nn.ModuleList([
            weight_norm(nn.Conv2d(1, 32, kernel_size=(3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(32, 32, kernel_size=(3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(32, 32, kernel_size=(3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(32, 32, kernel_size=(3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(32, 32, kernel_size=(3, 3), padding=(1, 1))),
        ])
        self.out = weight_norm(nn.Conv2d(32, 1, kernel_size=3, padding=1))

    def magnitude(self, y: torch.Tensor) -> torch.Tensor:
        """[B, T] -> |STFT| [B, frames, fft_size/2 + 1] (centred frames, reflect padding)."""
        spec = torch.stft(y, self.fft_size, self.shift_size, self.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        return spec.abs().transpose(1, 2)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.magnitude(y.squeeze(1)).unsqueeze(1)
        fmap = []
        for conv in self.discriminators:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.out(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class _DiscriminatorBank(nn.Module):
    """Runs every sub-discriminator on the real and the generated waveform [B, 1, T]."""

    discriminators: nn.ModuleList

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """-> (real_outs, fake_outs, real_fmaps, fake_fmaps), one entry per sub-discriminator."""
        for name, wav in (("y", y), ("y_hat", y_hat)):
            if wav.dim() != 3 or wav.shape[1] != 1:
                raise ValueError(f"{type(self).__name__} expects waveforms [B, 1, T]; "
                                 f"{name} has shape {tuple(wav.shape)}")
        real_outs, fake_outs, real_fmaps, fake_fmaps = [], [], [], []
        for disc in self.discriminators:
            out, fmap = disc(y)
            real_outs.append(out)
            real_fmaps.append(fmap)
            out, fmap = disc(y_hat)
            fake_outs.append(out)
            fake_fmaps.append(fmap)
        return real_outs, fake_outs, real_fmaps, fake_fmaps


@gin.configurable
class MultiPeriodDiscriminator(_DiscriminatorBank):
    """channels: each period discriminator's conv widths (upstream's by default, which checkpoints
    hold); their last two convs are nearly all of its cost, so narrower ones suit a CPU budget."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024)):
        super().__init__()
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"channels must be one or more positive widths, got {tuple(channels)}")
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels=channels) for p in periods)


@gin.configurable
class MultiResSpecDiscriminator(_DiscriminatorBank):
    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512),
                 hop_sizes: Sequence[int] = (120, 240, 50),
                 win_lengths: Sequence[int] = (600, 1200, 240), window: str = "hann_window"):
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
            raise ValueError("fft_sizes, hop_sizes and win_lengths need one entry per resolution, "
                             f"got {len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}")
        self.discriminators = nn.ModuleList(
            SpectrogramDiscriminator(n_fft, hop, win, window)
            for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths))


@gin.configurable
class WavLMDiscriminator(nn.Module):
    """Scores WavLM hidden states stacked over layers: x [B, slm_hidden * slm_layers, frames]
    (layer-major channels, as `torch.stack(hidden_states, 1).transpose(-1, -2).flatten(1, 2)`)
    -> [B, frames]."""

    def __init__(self, slm_hidden: int = 768, slm_layers: int = 13, initial_channel: int = 64,
                 use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        self.in_channels = slm_hidden * slm_layers
        c = initial_channel
        self.pre = norm(nn.Conv1d(self.in_channels, c, kernel_size=1))
        self.convs = nn.ModuleList([
            norm(nn.Conv1d(c, c * 2, kernel_size=5, padding=2)),
            norm(nn.Conv1d(c * 2, c * 4, kernel_size=5, padding=2)),
            norm(nn.Conv1d(c * 4, c * 4, kernel_size=5, padding=2)),
        ])
        self.conv_post = norm(nn.Conv1d(c * 4, 1, kernel_size=3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"WavLMDiscriminator expects [B, {self.in_channels}, frames], "
                             f"got {tuple(x.shape)}")
        # No activation after `pre`, as upstream.
        x = self.pre(x)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
        return torch.flatten(self.conv_post(x), 1, -1)
