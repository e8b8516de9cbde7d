"""HiFi-GAN decoder (StyleTTS2's LibriTTS vocoder), plus the two pieces the iSTFTNet decoder shares
with it: the snake-activated AdaIN residual block and the decoder front end.

A decoder turns aligned text features, F0 and energy curves and a style vector into a waveform:
    asr [B, dim_in, F] (F alignment frames), F0_curve [B, 2F] (Hz), N [B, 2F], s [B, style_dim]
    -> waveform [B, 1, F * 600] (at the LJSpeech/LibriTTS rates: 600 samples per frame).
The front end (`StyleDecoder`) fuses the inputs at the frame rate and upsamples x2; the generator
turns that into audio, driven by a harmonic source built from F0 (styletts2.modules.nsf).

Source noise (see nsf.py): `forward(..., noise=...)` takes standard-normal draws of shape
`decoder.noise_shape(F0_curve)`; `deterministic=True` (constructor or attribute) makes a missing
noise zero and the initial harmonic phases zero, so the output is a pure function of the inputs.
"""
import math
import random

import gin
import torch
import torch.nn.functional as F
from torch import nn

from .adain import AdaIN1d, AdainResBlk1d
from .norms import weight_norm
from .nsf import SourceModuleHnNSF

SAMPLING_RATE = 24000
HARMONIC_NUM = 8
VOICED_THRESHOLD = 10.0


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Snake activation x + sin^2(alpha x) / alpha (periodic inductive bias for audio). The square is
    a product (torch computes ** 2 as one too, so eager is unchanged; exported, a Mul beats a Pow)."""
    sine = torch.sin(alpha * x)
    return x + (1 / alpha) * (sine * sine)


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class AdaINResBlock1(nn.Module):
    """HiFi-GAN ResBlock1 with AdaIN and snake activations: three dilated conv pairs, each a
    residual step AdaIN -> snake -> dilated conv -> AdaIN -> snake -> conv."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation=(1, 3, 5), style_dim: int = 64):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                  padding=_same_padding(kernel_size, d)))
            for d in dilation)
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, padding=_same_padding(kernel_size, 1)))
            for _ in dilation)
        self.adain1 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilation)
        self.adain2 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilation)
        self.alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilation)
        self.alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilation)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        for conv1, conv2, norm1, norm2, alpha1, alpha2 in zip(self.convs1, self.convs2, self.adain1,
                                                                self.adain2, self.alpha1, self.alpha2):
            h = conv1(snake(norm1(x, s), alpha1))
            x = x + conv2(snake(norm2(h, s), alpha2))
        return x


def multi_receptive_field(resblocks: nn.ModuleList, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Average of parallel residual blocks with different kernel sizes (HiFi-GAN's MRF)."""
    total = resblocks[0](x, s)
    for block in resblocks[1:]:
        total = total + block(x, s)
    return total / len(resblocks)


def _box_smooth(curve: torch.Tensor, width: int) -> torch.Tensor:
    kernel = torch.ones(1, 1, width, dtype=curve.dtype, device=curve.device)
    return F.conv1d(curve.unsqueeze(1), kernel, padding=width // 2).squeeze(1) / width


class StyleDecoder(nn.Module):
    """Front end shared by both decoders; subclasses set `self.generator`.

    encode: AdaIN residual block on [asr, F0, N] (F0/N brought to the frame rate by stride-2
    convs); then four blocks each re-fed [x, asr_res, F0, N], the last upsampling x2 to
    `upsample_initial_channel` channels. Upstream hard-codes the widths 1024 (`hidden_dim`) and
    64 (`asr_res_dim`); they are arguments here only so that tests can build small models.
    `asr_res` reads `dim_in` channels (upstream hard-codes 512, the same at upstream's sizes).

    What synthesis must know about a decoder, as class attributes (read through `StyleTTS2`):
    decoder_type: the name `model.json` records ("istftnet" / "hifigan").
    alignment_delay: frames by which the aligned inputs are shifted late before decoding (the HiFi-GAN
        models were trained on alignments one frame late).
    tail_trim: samples cut from the end of the waveform (the HiFi-GAN models' last samples click;
        upstream's LibriTTS demo cuts 50).
    """

    decoder_type = ""
    alignment_delay = 0
    tail_trim = 0

    def delay_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Aligned inputs [B, C, F] as this decoder was trained on them: `alignment_delay` frames
        late, the first frame repeated in front."""
        d = self.alignment_delay
        if not d:
            return x
        return torch.cat([x[..., :1]] * d + [x[..., :-d]], dim=-1)  # slices and a concat: exports as before

    def trim_tail(self, wave: torch.Tensor) -> torch.Tensor:
        """Cut `tail_trim` samples from the end of [..., samples]."""
        return wave[..., :-self.tail_trim] if self.tail_trim else wave

    def __init__(self, dim_in: int, style_dim: int, upsample_initial_channel: int, hidden_dim: int,
                 asr_res_dim: int):
        super().__init__()
        fused = hidden_dim + 2 + asr_res_dim
        self.decode = nn.ModuleList()  # registered first: its keys lead upstream's state dict
        self.encode = AdainResBlk1d(dim_in + 2, hidden_dim, style_dim)
        self.decode.extend(AdainResBlk1d(fused, hidden_dim, style_dim) for _ in range(3))
        self.decode.append(AdainResBlk1d(fused, upsample_initial_channel, style_dim, upsample=True))
        self.F0_conv = weight_norm(nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1))
        self.N_conv = weight_norm(nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1))
        self.asr_res = nn.Sequential(weight_norm(nn.Conv1d(dim_in, asr_res_dim, kernel_size=1)))

    @property
    def deterministic(self) -> bool:
        return self.generator.m_source.l_sin_gen.deterministic

    @deterministic.setter
    def deterministic(self, value: bool) -> None:
        self.generator.m_source.l_sin_gen.deterministic = value

    def noise_shape(self, F0_curve: torch.Tensor) -> tuple[int, int, int]:
        """Shape of the standard-normal source noise that `forward(..., noise=)` takes."""
        return (F0_curve.shape[0], F0_curve.shape[1] * self.generator.upsample_scale, HARMONIC_NUM + 1)

    def _check_inputs(self, asr, F0_curve, N, s) -> None:
        batch, _, frames = asr.shape
        for name, curve in (("F0_curve", F0_curve), ("N", N)):
            if curve.shape != (batch, 2 * frames):
                raise ValueError(f"{name} must have shape [batch, 2 * frames] = {[batch, 2 * frames]} "
                                 f"for asr of shape {list(asr.shape)}, got {list(curve.shape)}")
        if s.dim() != 2 or s.shape[0] != batch:
            raise ValueError(f"style must have shape [batch, style_dim] with batch {batch}, got {list(s.shape)}")

    def forward(self, asr: torch.Tensor, F0_curve: torch.Tensor, N: torch.Tensor, s: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(asr, F0_curve, N, s)
        if self.training:
            # Augmentation: blur the curves with a random box filter (width 0 = none), so the
            # decoder tolerates the predictor's smoother F0/N. Python's RNG, as upstream.
            f0_width = random.choice((0, 3, 7))
            n_width = random.choice((0, 3, 7, 15))
            if f0_width:
                F0_curve = _box_smooth(F0_curve, f0_width)
            if n_width:
                N = _box_smooth(N, n_width)

        f0 = self.F0_conv(F0_curve.unsqueeze(1))
        n = self.N_conv(N.unsqueeze(1))
        x = self.encode(torch.cat([asr, f0, n], dim=1), s)
        asr_res = self.asr_res(asr)
        for block in self.decode:
            x = block(torch.cat([x, asr_res, f0, n], dim=1), s)
        return self.generator(x, s, F0_curve, noise)


class HiFiGANGenerator(nn.Module):
    """Upsampling convs + MRF blocks at each stage, with the harmonic source injected at every
    stage through a strided conv and an AdaIN residual block; snake activations; tanh output."""

    def __init__(self, style_dim: int, resblock_kernel_sizes, upsample_rates, upsample_initial_channel: int,
                 resblock_dilation_sizes, upsample_kernel_sizes, sampling_rate: int = SAMPLING_RATE,
                 precise_phase: bool = False, deterministic: bool = False):
        super().__init__()
        self.upsample_scale = math.prod(upsample_rates)
        self.m_source = SourceModuleHnNSF(sampling_rate, self.upsample_scale, HARMONIC_NUM,
                                          voiced_threshold=VOICED_THRESHOLD, precise_phase=precise_phase,
                                          deterministic=deterministic)
        self.noise_convs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        channels = [upsample_initial_channel // 2 ** i for i in range(len(upsample_rates) + 1)]
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            # Padding chosen so each stage multiplies the length by exactly `rate`.
            self.ups.append(weight_norm(nn.ConvTranspose1d(channels[i], channels[i + 1], kernel, rate,
                                                           padding=rate // 2 + rate % 2, output_padding=rate % 2)))
            # The source (at the audio rate) is strided down to this stage's rate.
            if i + 1 < len(upsample_rates):
                stride = math.prod(upsample_rates[i + 1:])
                self.noise_convs.append(nn.Conv1d(1, channels[i + 1], kernel_size=2 * stride, stride=stride,
                                                  padding=(stride + 1) // 2))
                self.noise_res.append(AdaINResBlock1(channels[i + 1], 7, (1, 3, 5), style_dim))
            else:
                self.noise_convs.append(nn.Conv1d(1, channels[i + 1], kernel_size=1))
                self.noise_res.append(AdaINResBlock1(channels[i + 1], 11, (1, 3, 5), style_dim))
        self.resblocks = nn.ModuleList(
            AdaINResBlock1(ch, k, d, style_dim)
            for ch in channels[1:] for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes))
        self.alphas = nn.ParameterList(nn.Parameter(torch.ones(1, ch, 1)) for ch in channels)
        self.conv_post = weight_norm(nn.Conv1d(channels[-1], 1, 7, 1, padding=3))
        self.num_kernels = len(resblock_kernel_sizes)

    def forward(self, x: torch.Tensor, s: torch.Tensor, F0_curve: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        f0 = F.interpolate(F0_curve.unsqueeze(1), scale_factor=float(self.upsample_scale), mode="nearest")
        source, _ = self.m_source(f0.transpose(1, 2), noise)
        source = source.transpose(1, 2)
        for i, (up, noise_conv, noise_res) in enumerate(zip(self.ups, self.noise_convs, self.noise_res)):
            x = up(snake(x, self.alphas[i])) + noise_res(noise_conv(source), s)
            stage = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = multi_receptive_field(stage, x, s)
        x = self.conv_post(snake(x, self.alphas[-1]))
        return torch.tanh(x)


@gin.configurable
class HiFiGANDecoder(StyleDecoder):
    """StyleTTS2's HiFi-GAN decoder (upstream Modules/hifigan.py `Decoder`; LibriTTS config).

    `dim_out` is accepted for config compatibility and unused (as upstream).
    """

    decoder_type = "hifigan"
    alignment_delay = 1
    tail_trim = 50

    def __init__(self, dim_in: int = 512, style_dim: int = 128, dim_out: int = 80,
                 resblock_kernel_sizes=(3, 7, 11), upsample_rates=(10, 5, 3, 2),
                 upsample_initial_channel: int = 512,
                 resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 upsample_kernel_sizes=(20, 10, 6, 4), sampling_rate: int = SAMPLING_RATE,
                 deterministic: bool = False, precise_phase: bool = False,
                 hidden_dim: int = 1024, asr_res_dim: int = 64):
        super().__init__(dim_in, style_dim, upsample_initial_channel, hidden_dim, asr_res_dim)
        self.generator = HiFiGANGenerator(style_dim, resblock_kernel_sizes, upsample_rates, upsample_initial_channel,
                                          resblock_dilation_sizes, upsample_kernel_sizes, sampling_rate,
                                          precise_phase, deterministic)
