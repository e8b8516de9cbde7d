"""Band-limited resampling with a Hann-windowed sinc filter, equal to torchaudio's
``transforms.Resample(orig_freq, new_freq)`` with its defaults (lowpass_filter_width 6, rolloff 0.99,
"sinc_interp_hann"), which upstream uses to feed 24 kHz audio to the 16 kHz WavLM.

With ``g = gcd(orig, new)``, ``p = orig / g`` input samples map to ``q = new / g`` output samples, so
output sample ``k * q + j`` is a dot product of one of ``q`` fixed filters with the input around
sample ``k * p``: a strided ``conv1d`` with ``q`` output channels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinc_resample_kernel(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                         rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """Filters ``[q, 1, 2 * width + p]`` (float32) and the one-sided ``width`` in input samples."""
    g = math.gcd(orig_freq, new_freq)
    p, q = orig_freq // g, new_freq // g
    cutoff = min(p, q) * rolloff                 # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * p / cutoff)
    taps = torch.arange(-width, width + p, dtype=torch.float64) / p              # input times
    # Output phase offsets are formed in float32 before joining the float64 taps, as torchaudio does.
    phases = (torch.arange(0, -q, -1) / q).to(torch.float64)
    t = (phases[:, None, None] + taps[None, None, :]) * cutoff
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * (window * (cutoff / p))).to(torch.float32), width


class SincResample(nn.Module):
    """``[..., T] -> [..., ceil(T * new / orig)]``; the input is treated as zero beyond its ends."""

    def __init__(self, orig_freq: int = 24000, new_freq: int = 16000, lowpass_filter_width: int = 6,
                 rolloff: float = 0.99):
        super().__init__()
        if orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_freq} -> {new_freq}")
        g = math.gcd(orig_freq, new_freq)
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.in_step, self.out_step = orig_freq // g, new_freq // g
        kernel, self.width = sinc_resample_kernel(orig_freq, new_freq, lowpass_filter_width, rolloff)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.orig_freq == self.new_freq:
            return wave
        length = wave.shape[-1]
        flat = F.pad(wave.reshape(-1, 1, length), (self.width, self.width + self.in_step))
        out = F.conv1d(flat, self.kernel.to(wave.dtype), stride=self.in_step)   # [N, q, blocks]
        out = out.transpose(1, 2).reshape(flat.shape[0], -1)
        out = out[:, : math.ceil(self.out_step * length / self.in_step)]
        return out.reshape(wave.shape[:-1] + out.shape[-1:])
