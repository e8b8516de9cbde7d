"""iSTFTNet decoder (StyleTTS2's LJSpeech vocoder, upstream Modules/istftnet.py `Decoder`).

Same front end as the HiFi-GAN decoder (styletts2.modules.hifigan.StyleDecoder); the generator
stops upsampling early and predicts a small STFT (log-magnitude and phase, n_fft 20, hop 5) that an
inverse STFT turns into audio. The harmonic source enters as its own STFT (magnitude and phase
stacked on channels).

`stft_backend`: "torch" (complex torch.stft/istft, the eager reference) or "conv" (Conv1d DFT
bases, exportable to ONNX); switchable later with `decoder.stft_backend = ...`. The transforms
agree to ~1e-6, but the network reads the source's raw STFT angle, which is discontinuous at +-pi
and arbitrary where a bin is (numerically) zero or real, e.g. the reflect-padded edge frames and,
with zero noise, unvoiced stretches (a constant source). There two correct STFTs can hand the
network phases 2 pi apart, so decoder outputs of the two backends differ locally by far more
than 1e-6.
Source noise is controlled as for the HiFi-GAN decoder (`noise=`, `deterministic`).
"""
import math

import gin
import torch
import torch.nn.functional as F
from torch import nn

from .hifigan import HARMONIC_NUM, SAMPLING_RATE, VOICED_THRESHOLD, AdaINResBlock1, StyleDecoder, \
    multi_receptive_field
from .norms import weight_norm
from .nsf import SourceModuleHnNSF
from .stft import STFT, at_least_float32

LRELU_SLOPE = 0.1


class ISTFTNetGenerator(nn.Module):
    def __init__(self, style_dim: int, resblock_kernel_sizes, upsample_rates, upsample_initial_channel: int,
                 resblock_dilation_sizes, upsample_kernel_sizes, gen_istft_n_fft: int, gen_istft_hop_size: int,
                 sampling_rate: int = SAMPLING_RATE, precise_phase: bool = False, deterministic: bool = False,
                 stft_backend: str = "torch"):
        super().__init__()
        self.upsample_scale = math.prod(upsample_rates) * gen_istft_hop_size
        self.m_source = SourceModuleHnNSF(sampling_rate, self.upsample_scale, HARMONIC_NUM,
                                          voiced_threshold=VOICED_THRESHOLD, precise_phase=precise_phase,
                                          deterministic=deterministic)
        self.noise_convs = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        self.ups = nn.ModuleList()
        spec_channels = gen_istft_n_fft + 2  # n_fft / 2 + 1 magnitudes and as many phases
        channels = [upsample_initial_channel // 2 ** i for i in range(len(upsample_rates) + 1)]
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            self.ups.append(weight_norm(nn.ConvTranspose1d(channels[i], channels[i + 1], kernel, rate,
                                                           padding=(kernel - rate) // 2)))
            # The source spectrogram (at the STFT frame rate) is strided down to this stage's rate.
            if i + 1 < len(upsample_rates):
                stride = math.prod(upsample_rates[i + 1:])
                self.noise_convs.append(nn.Conv1d(spec_channels, channels[i + 1], kernel_size=2 * stride,
                                                  stride=stride, padding=(stride + 1) // 2))
                self.noise_res.append(AdaINResBlock1(channels[i + 1], 7, (1, 3, 5), style_dim))
            else:
                self.noise_convs.append(nn.Conv1d(spec_channels, channels[i + 1], kernel_size=1))
                self.noise_res.append(AdaINResBlock1(channels[i + 1], 11, (1, 3, 5), style_dim))
        self.resblocks = nn.ModuleList(
            AdaINResBlock1(ch, k, d, style_dim)
            for ch in channels[1:] for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes))
        self.conv_post = weight_norm(nn.Conv1d(channels[-1], spec_channels, 7, 1, padding=3))
        self.num_kernels = len(resblock_kernel_sizes)
        self.n_bins = gen_istft_n_fft // 2 + 1
        self.stft = STFT(gen_istft_n_fft, gen_istft_hop_size, stft_backend)

    def forward(self, x: torch.Tensor, s: torch.Tensor, F0_curve: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        # Upstream keeps the whole source path out of autograd (m_source's linear layer included).
        with torch.no_grad():
            f0 = F.interpolate(F0_curve.unsqueeze(1), scale_factor=float(self.upsample_scale), mode="nearest")
            source, _ = self.m_source(f0.transpose(1, 2), noise)
            magnitude, phase = self.stft.transform(source.squeeze(2))
            source_spec = torch.cat([magnitude, phase], dim=1)

        last = len(self.ups) - 1
        for i, (up, noise_conv, noise_res) in enumerate(zip(self.ups, self.noise_convs, self.noise_res)):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if i == last:
                # One more frame (the STFT has frames + 1): reflect-pad one sample on the left,
                # written as a concat so ONNX shape inference keeps the channel count.
                x = torch.cat([x[..., 1:2], x], dim=-1)
            x = x + noise_res(noise_conv(source_spec), s)
            stage = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = multi_receptive_field(stage, x, s)
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as upstream
        # float32 from here on: CUDA autocast would run exp in float32 but sin in half precision,
        # and the inverse STFT needs one dtype (see stft.py).
        x, = at_least_float32(x)
        magnitude = torch.exp(x[:, :self.n_bins])
        phase = torch.sin(x[:, self.n_bins:])
        return self.stft.inverse(magnitude, phase)


@gin.configurable
class ISTFTNetDecoder(StyleDecoder):
    """StyleTTS2's iSTFTNet decoder (LJSpeech config). `dim_out` is accepted for config
    compatibility and unused (as upstream)."""

    decoder_type = "istftnet"

    def __init__(self, dim_in: int = 512, style_dim: int = 128, dim_out: int = 80,
                 resblock_kernel_sizes=(3, 7, 11), upsample_rates=(10, 6), upsample_initial_channel: int = 512,
                 resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)), upsample_kernel_sizes=(20, 12),
                 gen_istft_n_fft: int = 20, gen_istft_hop_size: int = 5, sampling_rate: int = SAMPLING_RATE,
                 deterministic: bool = False, precise_phase: bool = False, stft_backend: str = "torch",
                 hidden_dim: int = 1024, asr_res_dim: int = 64):
        super().__init__(dim_in, style_dim, upsample_initial_channel, hidden_dim, asr_res_dim)
        self.generator = ISTFTNetGenerator(style_dim, resblock_kernel_sizes, upsample_rates, upsample_initial_channel,
                                           resblock_dilation_sizes, upsample_kernel_sizes, gen_istft_n_fft,
                                           gen_istft_hop_size, sampling_rate, precise_phase, deterministic,
                                           stft_backend)

    @property
    def stft_backend(self) -> str:
        return self.generator.stft.backend

    @stft_backend.setter
    def stft_backend(self, value: str) -> None:
        self.generator.stft.backend = value
