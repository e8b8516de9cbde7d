"""Phoneme text encoder: embedding, a stack of masked 1-D convolutions, and a BiLSTM.

Produces t_en, the per-token acoustic text features the decoder reads after alignment.
"""
import gin
import torch
import torch.nn.functional as F
from torch import nn

from .masks import packed_lstm
from .norms import weight_norm


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a [B, C, T] tensor (parameters `gamma`, `beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, 2), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, 2)


@gin.configurable
class TextEncoder(nn.Module):
    """tokens [B, T] -> features [B, channels, T], zero at padding.

    Each conv block is `Sequential(conv, norm, LeakyReLU, Dropout)`, so its parameters sit at
    `cnn.<i>.0` (conv) and `cnn.<i>.1` (norm) as in upstream checkpoints.
    """

    def __init__(self, channels: int = 512, kernel_size: int = 5, depth: int = 3, n_symbols: int = 178):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, channels)
        self.cnn = nn.ModuleList(
            nn.Sequential(
                weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)),
                ChannelLayerNorm(channels),
                nn.LeakyReLU(0.2),
                nn.Dropout(0.2),
            )
            for _ in range(depth)
        )
        self.lstm = nn.LSTM(channels, channels // 2, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: [B, T] long; lengths: [B]; mask: [B, T] bool, True at padding."""
        pad = mask.unsqueeze(1)  # [B, 1, T]
        x = self.embedding(tokens).transpose(1, 2).masked_fill(pad, 0.0)
        for block in self.cnn:
            # re-zero the padding after every block: the convs would smear values into it
            x = block(x).masked_fill(pad, 0.0)
        x = packed_lstm(self.lstm, x.transpose(1, 2), lengths)
        return x.transpose(1, 2).masked_fill(pad, 0.0)
