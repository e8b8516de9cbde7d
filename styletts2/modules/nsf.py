"""Neural source-filter excitation shared by both decoders: harmonic sines from an F0 contour
(`SineGen`), merged into one source signal (`SourceModuleHnNSF`).

Randomness. Upstream draws, per call and in this order, a random initial phase per harmonic
(`torch.rand`, the fundamental's forced to 0) and standard-normal additive noise
(`torch.randn_like`, shape of the sines). Both can be given explicitly, or switched off with
`deterministic=True` (zero offsets, no noise, no draws at all). When they are drawn, the draw order
and shapes equal upstream's, so the same seed gives the same excitation. Upstream's source module
draws one more noise tensor that no decoder ever uses; it is not drawn here (it came last, so the
stream of the draws that matter is unchanged). The initial phase only shifts the first sample's
phase increment, which the averaging down by `upsample_scale` never reads once the scale exceeds 2
(300 in both decoders): it is drawn to keep the random stream aligned with upstream, and exposed
as `phase_offsets` only at this level.

Phase precision. The phase is a running sum over the whole utterance; in float32 it loses
resolution as it grows (about 2e-2 rad, 2 % of the sine amplitude, at the 9th harmonic after 10 s). `precise_phase=True`
accumulates and evaluates it in float64; the default keeps upstream's float32 arithmetic. A half-
precision F0 (under autocast) is never the working precision: its sum overflows or drifts by
whole cycles, so the phase is computed in float32 at least.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class SineGen(nn.Module):
    """F0 [B, L, 1] in Hz at the audio rate -> (sines [B, L, harmonic_num + 1], uv [B, L, 1]).

    The phase increment is averaged down by `upsample_scale`, accumulated at that frame rate and
    linearly interpolated back up (upstream's scheme: it keeps the sum short and the sines smooth).
    Unvoiced samples (F0 <= voiced_threshold) carry only noise of std sine_amp / 3; voiced samples
    carry the sines plus noise of std `noise_std`.
    """

    def __init__(self, sampling_rate: int, upsample_scale: int, harmonic_num: int = 0, sine_amp: float = 0.1,
                 noise_std: float = 0.003, voiced_threshold: float = 0.0, precise_phase: bool = False,
                 deterministic: bool = False):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.upsample_scale = int(upsample_scale)
        self.harmonic_num = harmonic_num
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold
        self.precise_phase = precise_phase
        self.deterministic = deterministic

    def _phase_offsets(self, f0: torch.Tensor) -> torch.Tensor:
        if self.deterministic:
            return f0.new_zeros(f0.shape[0], self.dim)
        offsets = torch.rand(f0.shape[0], self.dim, device=f0.device)
        offsets[:, 0] = 0  # the fundamental starts at phase 0
        return offsets

    def _sines(self, f0: torch.Tensor, phase_offsets: torch.Tensor) -> torch.Tensor:
        work = torch.float64 if self.precise_phase else torch.promote_types(f0.dtype, torch.float32)
        orders = torch.arange(1, self.dim + 1, device=f0.device, dtype=work)
        # Cycles advanced per sample; whole cycles do not change the phase.
        increment = (f0.to(work) * orders / self.sampling_rate) % 1
        # The initial phase enters through the first sample's increment.
        first = increment[:, :1] + phase_offsets.to(work).unsqueeze(1)
        increment = torch.cat([first, increment[:, 1:]], dim=1).transpose(1, 2)  # [B, dim, L]

        scale = self.upsample_scale
        per_frame = F.interpolate(increment, scale_factor=1 / scale, mode="linear")
        phase = torch.cumsum(per_frame, dim=2) * 2 * math.pi
        # A frame spans `scale` samples, so the per-sample phase interpolates scale * frame phase.
        phase = F.interpolate(phase * scale, scale_factor=scale, mode="linear")
        return (torch.sin(phase) * self.sine_amp).to(f0.dtype).transpose(1, 2)

    def forward(self, f0: torch.Tensor, noise: torch.Tensor | None = None,
                phase_offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """noise: standard-normal draws [B, L, harmonic_num + 1] (scaled here by the voicing-
        dependent amplitude); phase_offsets: initial phases in cycles [B, harmonic_num + 1]."""
        if f0.dim() != 3 or f0.shape[2] != 1:
            raise ValueError(f"SineGen expects F0 of shape [batch, samples, 1], got {tuple(f0.shape)}")
        if phase_offsets is None:
            phase_offsets = self._phase_offsets(f0)
        sines = self._sines(f0, phase_offsets)
        uv = (f0 > self.voiced_threshold).to(f0.dtype)
        if noise is None and self.deterministic:
            return sines * uv, uv
        if noise is None:
            noise = torch.randn_like(sines)
        elif noise.shape != sines.shape:
            raise ValueError(f"source noise must have shape {tuple(sines.shape)}, got {tuple(noise.shape)}")
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        return sines * uv + noise_amp * noise, uv


class SourceModuleHnNSF(nn.Module):
    """Harmonic-plus-noise source: SineGen's harmonics merged by a learned linear layer and tanh.

    F0 [B, L, 1] -> (source [B, L, 1], uv [B, L, 1]). No gradient flows into the sine generator
    (it has no parameters, and upstream computes it under no_grad).
    """

    def __init__(self, sampling_rate: int, upsample_scale: int, harmonic_num: int = 8, sine_amp: float = 0.1,
                 add_noise_std: float = 0.003, voiced_threshold: float = 10.0, precise_phase: bool = False,
                 deterministic: bool = False):
        super().__init__()
        self.l_sin_gen = SineGen(sampling_rate, upsample_scale, harmonic_num, sine_amp, add_noise_std,
                                 voiced_threshold, precise_phase, deterministic)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    def forward(self, f0: torch.Tensor, noise: torch.Tensor | None = None,
                phase_offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            sines, uv = self.l_sin_gen(f0, noise, phase_offsets)
        return torch.tanh(self.l_linear(sines)), uv
