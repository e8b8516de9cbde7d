"""The iSTFTNet's short-time Fourier transform pair (periodic Hann window, win_length = n_fft,
center=True with reflect padding: the settings of `torch.stft` / `torch.istft` that upstream uses).

Two interchangeable backends, chosen by `backend`:
- "torch": complex `torch.stft` / `torch.istft` (eager reference, what upstream runs);
- "conv": the same transforms written as a Conv1d (analysis) and a ConvTranspose1d (overlap-add
  synthesis) with fixed DFT bases. Complex STFT ops do not export to ONNX; these do. The two
  agree to about 1e-6.
Neither backend has state-dict entries (upstream's window is a plain attribute), so the bases and
the window are non-persistent buffers.

Both directions compute in float32 at least (float64 stays float64): under mixed precision the
decoder hands in half-precision tensors, which `torch.polar` refuses (it needs one dtype, and has no
bf16 kernel), cuFFT only takes for power-of-two sizes, and the overlap-add would lose the waveform's
low bits to.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("torch", "conv")


def at_least_float32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors in one dtype, float32 at least: half precision goes up to float32, float64 (the
    precise parity path) stays float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(dtype) for t in tensors)


def _dft_bases(n_fft: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis kernels [2 * n_bins, 1, n_fft] (cosine rows, then sine rows)."""
    n_bins = n_fft // 2 + 1
    k = torch.arange(n_bins, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(n_fft, dtype=torch.float64).unsqueeze(0)
    angle = 2 * math.pi * ((k * n) % n_fft) / n_fft  # reduced before scaling: exact multiples of 2pi/N
    cos, sin = torch.cos(angle), torch.sin(angle)
    # DC and Nyquist are real: a one-sided inverse ignores their imaginary parts.
    sin[0] = 0
    if n_fft % 2 == 0:
        sin[-1] = 0
    win = window.to(torch.float64)
    analysis = torch.cat([cos * win, -sin * win])
    # Inverse real DFT of one frame: bins other than DC/Nyquist stand for a conjugate pair.
    weight = torch.full((n_bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1
    if n_fft % 2 == 0:
        weight[-1] = 1
    synthesis = torch.cat([cos * weight, -sin * weight]) * win / n_fft
    return analysis.float().unsqueeze(1), synthesis.float().unsqueeze(1)


class STFT(nn.Module):
    """transform(x [B, T]) -> (magnitude, phase) [B, n_fft // 2 + 1, T // hop + 1];
    inverse(magnitude, phase) -> waveform [B, 1, hop * (frames - 1)]."""

    def __init__(self, n_fft: int, hop_length: int, backend: str = "torch"):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.backend = backend
        # Periodic Hann (scipy's get_window('hann', fftbins=True)), computed in float64 like scipy.
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        analysis, synthesis = _dft_bases(n_fft, window)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("analysis_basis", analysis, persistent=False)
        self.register_buffer("synthesis_basis", synthesis, persistent=False)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"STFT backend must be one of {BACKENDS}, got {value!r}")
        self._backend = value

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, = at_least_float32(x)
        if self.backend == "torch":
            spec = torch.stft(x, self.n_fft, self.hop_length, self.n_fft, window=self.window, return_complex=True)
            return spec.abs(), spec.angle()
        pad = self.n_fft // 2
        frames = F.conv1d(F.pad(x.unsqueeze(1), (pad, pad), mode="reflect"), self.analysis_basis,
                          stride=self.hop_length)
        real, imag = frames.chunk(2, dim=1)
        return torch.sqrt(real * real + imag * imag), torch.atan2(imag, real)

    def inverse(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        magnitude, phase = at_least_float32(magnitude, phase)
        if self.backend == "torch":
            spec = torch.polar(magnitude, phase)
            wav = torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, window=self.window)
            return wav.unsqueeze(1)
        spec = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        wav = F.conv_transpose1d(spec, self.synthesis_basis, stride=self.hop_length)
        # Overlap-added squared window: what each output sample has to be divided by.
        ones = torch.ones_like(magnitude[:1, :1])
        envelope = F.conv_transpose1d(ones, self.window.square().view(1, 1, -1), stride=self.hop_length)
        pad = self.n_fft // 2
        return (wav / envelope)[..., pad:-pad]
