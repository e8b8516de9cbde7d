"""Prosody predictor: per-token durations and frame-level pitch (F0) and energy (N) curves,
all conditioned on the prosodic style vector.

Training uses `forward` (duration logits + aligned features) and `F0Ntrain`; inference uses
`encode` -> `durations` -> (caller builds the alignment) -> `prosody`.
"""
import gin
import torch
import torch.nn.functional as F
from torch import nn

from .adain import AdainResBlk1d
from .masks import length_to_mask, packed_lstm


class AdaLayerNorm(nn.Module):
    """LayerNorm over the last axis of [B, T, C] with scale and shift from the style:
    (1 + gamma(s)) * LN(x) + beta(s)."""

    def __init__(self, style_dim: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s).unsqueeze(1).chunk(2, dim=-1)  # each [B, 1, C]
        return (1 + gamma) * F.layer_norm(x, (self.channels,), eps=self.eps) + beta


class LinearNorm(nn.Module):
    """Linear layer with Xavier-uniform init (attribute `linear_layer`)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.linear_layer = nn.Linear(in_dim, out_dim, bias=bias)
        nn.init.xavier_uniform_(self.linear_layer.weight, gain=nn.init.calculate_gain("linear"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


class DurationEncoder(nn.Module):
    """Style-conditioned BiLSTM stack over the PL-BERT text features.

    `lstms` alternates BiLSTM and AdaLayerNorm (indices 0, 2, ... and 1, 3, ...). The style is
    appended to the features before the first LSTM and again after every norm, so the output has
    d_model + sty_dim channels.
    """

    def __init__(self, sty_dim: int, d_model: int, nlayers: int, dropout: float = 0.1):
        super().__init__()
        self.lstms = nn.ModuleList()
        for _ in range(nlayers):
            self.lstms.append(nn.LSTM(d_model + sty_dim, d_model // 2, num_layers=1, batch_first=True,
                                      bidirectional=True))
            self.lstms.append(AdaLayerNorm(sty_dim, d_model))
        self.dropout = dropout
        self.d_model = d_model
        self.sty_dim = sty_dim

    def forward(self, x: torch.Tensor, style: torch.Tensor, lengths: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """x: [B, d_model, T] (d_en); style: [B, sty_dim]; lengths: [B]; mask: [B, T] True at padding.
        Returns [B, T, d_model + sty_dim], zero at padding."""
        pad = mask.unsqueeze(-1)  # [B, T, 1]
        s = style.unsqueeze(1).expand(-1, x.shape[-1], -1)  # [B, T, sty_dim]
        h = torch.cat([x.transpose(1, 2), s], dim=-1).masked_fill(pad, 0.0)
        for lstm, norm in zip(self.lstms[0::2], self.lstms[1::2]):
            h = packed_lstm(lstm, h, lengths)
            h = F.dropout(h, p=self.dropout, training=self.training)
            h = torch.cat([norm(h, style), s], dim=-1).masked_fill(pad, 0.0)
        return h


def _prosody_branch(d_hid: int, style_dim: int, dropout: float) -> nn.ModuleList:
    # d_hid -> d_hid, then x2 upsampling to d_hid / 2, then d_hid / 2: curves at twice the frame rate
    return nn.ModuleList([
        AdainResBlk1d(d_hid, d_hid, style_dim, dropout_p=dropout),
        AdainResBlk1d(d_hid, d_hid // 2, style_dim, upsample="half", dropout_p=dropout),
        AdainResBlk1d(d_hid // 2, d_hid // 2, style_dim, dropout_p=dropout),
    ])


def frames_per_token(expected: torch.Tensor) -> torch.Tensor:
    """Upstream's rounding of expected durations (already divided by the speed) to whole frames:
    round half to even, at least 1 (long). Every synthesis path rounds through here."""
    return torch.round(expected).clamp(min=1).long()


def add_tail_frames(durations: torch.Tensor, tail_frames: int | torch.Tensor,
                    lengths: torch.Tensor | None = None) -> torch.Tensor:
    """durations [B, T] (long) with `tail_frames` more on each item's last token (index lengths - 1;
    T - 1 without lengths): upstream's LJSpeech notebook lengthens the last token of every sentence
    it synthesizes (`pred_dur[-1] += 5`; `styletts2.synthesis_limits.default_tail_frames`).
    A comparison with a position ramp rather than an indexed write, so that it exports to ONNX."""
    positions = torch.arange(durations.shape[1], device=durations.device).unsqueeze(0)
    last = durations.shape[1] - 1 if lengths is None else (lengths - 1).unsqueeze(1)
    return durations + (positions == last).long() * tail_frames


@gin.configurable
class ProsodyPredictor(nn.Module):
    """Durations (max_dur ordinal logits per token) and F0 / energy curves from text features.

    initial_duration: frames per token the untrained duration head predicts (its bias is set so that
        the max_dur sigmoids sum to it). None keeps the default init, which predicts about max_dur / 2
        (25 frames at upstream's 50, several times a typical phoneme): fine over upstream's tens of
        thousands of steps, slow to unlearn on a short budget.
    """

    def __init__(self, style_dim: int = 128, d_hid: int = 512, nlayers: int = 3, max_dur: int = 50,
                 dropout: float = 0.1, initial_duration: float | None = None):
        super().__init__()
        self.text_encoder = DurationEncoder(sty_dim=style_dim, d_model=d_hid, nlayers=nlayers, dropout=dropout)
        self.lstm = nn.LSTM(d_hid + style_dim, d_hid // 2, num_layers=1, batch_first=True, bidirectional=True)
        self.duration_proj = LinearNorm(d_hid, max_dur)
        if initial_duration is not None:
            if not 0 < initial_duration < max_dur:
                raise ValueError(f"initial_duration must lie in (0, max_dur = {max_dur}), got {initial_duration}")
            with torch.no_grad():
                self.duration_proj.linear_layer.bias.fill_(torch.logit(torch.tensor(initial_duration / max_dur)).item())
        self.shared = nn.LSTM(d_hid + style_dim, d_hid // 2, num_layers=1, batch_first=True, bidirectional=True)
        self.F0 = _prosody_branch(d_hid, style_dim, dropout)
        self.N = _prosody_branch(d_hid, style_dim, dropout)
        self.F0_proj = nn.Conv1d(d_hid // 2, 1, 1, 1, 0)
        self.N_proj = nn.Conv1d(d_hid // 2, 1, 1, 1, 0)

    def forward(self, texts: torch.Tensor, style: torch.Tensor, text_lengths: torch.Tensor,
                alignment: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass.

        texts: d_en [B, d_hid, T]; style: [B, style_dim]; alignment: [B, T, F] token-to-frame.
        Returns duration logits [B, T, max_dur] and en [B, d_hid + style_dim, F] (the encoded text
        spread over frames, the input of `F0Ntrain`).
        """
        d = self.encode(texts, style, text_lengths, mask)
        x = packed_lstm(self.lstm, d, text_lengths)
        logits = self.duration_proj(F.dropout(x, p=0.5, training=self.training))
        en = d.transpose(1, 2) @ alignment
        return logits, en

    def F0Ntrain(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: en [B, d_hid + style_dim, F]; s: [B, style_dim] -> F0 [B, 2F], N [B, 2F]."""
        h, _ = self.shared(x.transpose(1, 2))
        h = h.transpose(1, 2)
        f0, n = h, h
        for f0_block, n_block in zip(self.F0, self.N):
            f0 = f0_block(f0, s)
            n = n_block(n, s)
        return self.F0_proj(f0).squeeze(1), self.N_proj(n).squeeze(1)

    # Inference helpers -------------------------------------------------------------------------

    def encode(self, d_en: torch.Tensor, style: torch.Tensor, lengths: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """d_en [B, d_hid, T] -> d [B, T, d_hid + style_dim], the style-conditioned text encoding."""
        return self.text_encoder(d_en, style, lengths, mask)

    def durations(self, d: torch.Tensor, speed: float | torch.Tensor = 1.0,
                  lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Frames per token, as upstream inference computes them: round(sum(sigmoid(logits)) / speed),
        at least 1. d: [B, T, C] from `encode` -> long [B, T].

        Without `lengths` the LSTM reads the whole width, as upstream's single-utterance inference
        does. With `lengths` (padded batches) it reads each true length and padding gets 0 frames.
        A per-utterance `speed` tensor must broadcast against [B, T] (shape [B, 1]).
        """
        x = self.lstm(d)[0] if lengths is None else packed_lstm(self.lstm, d, lengths)
        frames = frames_per_token(self.expected_frames(x) / speed)
        if lengths is not None:
            frames = frames.masked_fill(length_to_mask(lengths, d.shape[1]).to(frames.device), 0)
        return frames

    def expected_frames(self, x: torch.Tensor) -> torch.Tensor:
        """The duration LSTM's output [B, T, d_hid] -> expected frames per token [B, T] (float):
        the sum of the ordinal head's sigmoids."""
        return torch.sigmoid(self.duration_proj(x)).sum(dim=-1)

    def prosody(self, en: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """en [B, d_hid + style_dim, F] (d aligned to frames) -> F0 [B, 2F], N [B, 2F]."""
        return self.F0Ntrain(en, style)
