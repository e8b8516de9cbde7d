"""Style encoder: a normalised log-mel spectrogram -> one style vector.

The model builds two of these with the same arguments: `style_encoder` (acoustic style, for the
decoder) and `predictor_encoder` (prosodic style, for the prosody predictor).
"""
import math

import gin
import torch
import torch.nn.functional as F
from torch import nn

from .norms import spectral_norm

_N_BLOCKS = 4  # downsampling residual blocks, each halving both axes
_HEAD_KERNEL = 5  # unpadded conv after the blocks
# The blocks leave ceil(T / 16) columns and the head conv needs 5 of them.
MIN_FRAMES = 2 ** _N_BLOCKS * (_HEAD_KERNEL - 1) + 1  # 65
# The mel axis is halved without padding, so it must divide by 16 and leave >= 5 rows.
MEL_MULTIPLE = 2 ** _N_BLOCKS
MIN_MELS = MEL_MULTIPLE * _HEAD_KERNEL  # 80


class HalfDownsample2d(nn.Module):
    """Learned x2 downsampling on both axes: depthwise 3x3 conv with stride 2 (attribute `conv`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = spectral_norm(nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def half_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd last column is first repeated so the width becomes ceil(T / 2),
    matching the strided conv on the residual path. The column is appended whatever the width:
    for an even width the pooling never reads it, and without a shape-dependent branch a traced
    (exported) graph is right for every width."""
    return F.avg_pool2d(F.pad(x, (0, 1, 0, 0), mode="replicate"), 2)


class DownResBlock2d(nn.Module):
    """Pre-activation residual block that halves height and width.

    residual: LeakyReLU -> conv3x3 -> learned downsample -> LeakyReLU -> conv3x3 (dim_in -> dim_out)
    shortcut: 1x1 conv when the width changes -> average pooling. Sum scaled by 1/sqrt(2).
    """

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.actv = nn.LeakyReLU(0.2)
        self.downsample_res = HalfDownsample2d(dim_in)
        self.conv1 = spectral_norm(nn.Conv2d(dim_in, dim_in, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(dim_in, dim_out, 3, 1, 1))
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = spectral_norm(nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False))

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.learned_sc:
            x = self.conv1x1(x)
        return half_avg_pool(x)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample_res(self.conv1(self.actv(x)))
        return self.conv2(self.actv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


@gin.configurable
class StyleEncoder(nn.Module):
    """mel [B, 1, n_mels, T] -> style [B, style_dim]; needs T >= 65 frames and n_mels a multiple
    of 16, at least 80."""

    def __init__(self, dim_in: int = 64, style_dim: int = 128, max_conv_dim: int = 512):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(1, dim_in, 3, 1, 1))]
        width = dim_in
        for _ in range(_N_BLOCKS):
            out = min(width * 2, max_conv_dim)
            layers.append(DownResBlock2d(width, out))
            width = out
        layers += [
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, width, _HEAD_KERNEL, 1, 0)),
            nn.AdaptiveAvgPool2d(1),
            nn.LeakyReLU(0.2),
        ]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.Linear(width, style_dim)

    @staticmethod
    def check_input(mel: torch.Tensor) -> None:
        if mel.dim() != 4 or mel.shape[1] != 1:
            raise ValueError(f"StyleEncoder expects a mel of shape [B, 1, n_mels, T], got {tuple(mel.shape)}")
        n_mels, frames = mel.shape[2], mel.shape[3]
        if frames < MIN_FRAMES:
            raise ValueError(f"StyleEncoder needs at least {MIN_FRAMES} mel frames, got {frames}")
        if n_mels < MIN_MELS or n_mels % MEL_MULTIPLE:
            raise ValueError(f"StyleEncoder needs n_mels a multiple of {MEL_MULTIPLE} and >= {MIN_MELS}, "
                             f"got {n_mels}")

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        self.check_input(mel)
        return self.unshared(self.shared(mel).flatten(1))
