"""Text aligner (ASRCNN): an ASR model whose attention over mel frames gives StyleTTS2 its
text-to-speech alignment.

mel [B, 80, T] -> MFCC [B, 40, T] -> stride-2 CNN encoder -> memory [B, ceil(T/2), H/2], then
  * a CTC head: per-frame token logits;
  * ASRS2S, a location-sensitive attention LSTM decoder run with teacher forcing over the token
    sequence: per-step token logits and the attention weights (the alignment).

Attribute names follow the upstream checkpoint (`to_mfcc.dct_mat`, `init_cnn.conv`,
`cnns.N.0.blocks.M.K`, `ctc_linear.N.linear_layer`, `asr_s2s.*`), so the released
`Utils/ASR/epoch_00080.pth` loads key for key.

Training-time randomness (all off in eval): dropout 0.2 in the CNN blocks, dropout 0.5 before the
decoder's output projection, and unknown-token masking (each input token is replaced by `<unk>`
with probability 0.1 before embedding). Upstream applies the unknown-token masking in eval mode
too (its stage-2 aligner runs in eval); `forward(..., mask_unk=True)` reproduces that.
The random draws happen in upstream's order, so the same seed gives the same training-mode output.
"""
import math

import gin
import torch
import torch.nn.functional as F
from torch import nn


def dct_ii_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II basis laid out as (n_mels, n_mfcc), so `mel^T @ basis` gives MFCCs."""
    mel_index = torch.arange(n_mels, dtype=torch.float64) + 0.5
    coeff_index = torch.arange(n_mfcc, dtype=torch.float64).unsqueeze(1)
    basis = torch.cos(math.pi / n_mels * coeff_index * mel_index) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)  # the DC row of the orthonormal DCT-II has its own scale
    return basis.t().contiguous().float()


class MFCC(nn.Module):
    """Cepstral coefficients of an (already log-scaled) mel spectrogram via a fixed DCT matrix."""

    def __init__(self, n_mfcc: int = 40, n_mels: int = 80):
        super().__init__()
        self.register_buffer("dct_mat", dct_ii_matrix(n_mfcc, n_mels))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # [B, n_mels, T] -> [B, n_mfcc, T]
        return (mel.transpose(-1, -2) @ self.dct_mat).transpose(-1, -2)


class XavierConv1d(nn.Module):
    """Conv1d with Xavier-uniform weights; 'same' padding by default (odd kernels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, bias: bool = True,
                 w_init_gain: str = "linear"):
        super().__init__()
        if padding is None:
            if kernel_size % 2 == 0:
                raise ValueError(f"'same' padding needs an odd kernel, got {kernel_size}")
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, dilation=dilation, bias=bias)
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class XavierLinear(nn.Module):
    """Linear layer with Xavier-uniform weights."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, w_init_gain: str = "linear"):
        super().__init__()
        self.linear_layer = nn.Linear(in_dim, out_dim, bias=bias)
        nn.init.xavier_uniform_(self.linear_layer.weight,
                                gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


class DilatedConvBlock(nn.Module):
    """Three residual units with dilations 1, 3, 9, each
    conv(k3, dilated) -> ReLU -> GroupNorm(8) -> Dropout -> conv(k3) -> ReLU -> Dropout + skip."""

    def __init__(self, hidden_dim: int, n_conv: int = 3, dropout_p: float = 0.2):
        super().__init__()
        self.blocks = nn.ModuleList(
            self._unit(hidden_dim, 3 ** i, dropout_p) for i in range(n_conv))

    @staticmethod
    def _unit(hidden_dim: int, dilation: int, dropout_p: float) -> nn.Sequential:
        # Index layout (0 conv, 2 norm, 4 conv) is fixed by the checkpoint keys.
        return nn.Sequential(
            XavierConv1d(hidden_dim, hidden_dim, kernel_size=3, padding=dilation,
                         dilation=dilation),
            nn.ReLU(),
            nn.GroupNorm(num_groups=8, num_channels=hidden_dim),
            nn.Dropout(dropout_p),
            XavierConv1d(hidden_dim, hidden_dim, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Dropout(dropout_p),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.blocks:
            x = x + unit(x)
        return x


class LocationLayer(nn.Module):
    """Convolves the previous and cumulative attention weights into location features."""

    def __init__(self, n_filters: int, kernel_size: int, attention_dim: int):
        super().__init__()
        self.location_conv = XavierConv1d(2, n_filters, kernel_size=kernel_size,
                                          padding=(kernel_size - 1) // 2, bias=False)
        self.location_dense = XavierLinear(n_filters, attention_dim, bias=False, w_init_gain="tanh")

    def forward(self, weights_cat: torch.Tensor) -> torch.Tensor:
        # [B, 2, L] -> [B, L, attention_dim]
        return self.location_dense(self.location_conv(weights_cat).transpose(1, 2))


class LocationSensitiveAttention(nn.Module):
    """Additive attention (Tacotron 2 style): energy = v . tanh(W q + V memory + U location)."""

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int,
                 n_location_filters: int, location_kernel_size: int):
        super().__init__()
        self.query_layer = XavierLinear(query_dim, attention_dim, bias=False, w_init_gain="tanh")
        self.memory_layer = XavierLinear(memory_dim, attention_dim, bias=False, w_init_gain="tanh")
        self.v = XavierLinear(attention_dim, 1, bias=False)
        self.location_layer = LocationLayer(n_location_filters, location_kernel_size, attention_dim)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, processed_memory: torch.Tensor,
                weights_cat: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, Q], memory [B, L, H], processed_memory [B, L, A], weights_cat [B, 2, L],
        mask [B, L] (True = padded frame) -> (context [B, H], weights [B, L])."""
        energies = self.v(torch.tanh(self.query_layer(query).unsqueeze(1)
                                     + self.location_layer(weights_cat)
                                     + processed_memory)).squeeze(-1)
        if mask is not None:
            energies = energies.masked_fill(mask, float("-inf"))
        weights = F.softmax(energies, dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights


class ASRS2S(nn.Module):
    """Attention LSTM decoder, teacher-forced over `<sos> + tokens`.

    Each step: LSTMCell([token embedding, previous context]) -> attention (query = new hidden
    state, location features from the previous and cumulative weights) -> tanh projection of
    [hidden, context] -> token logits.
    """

    sos_index = 1
    unk_index = 3
    unk_mask_prob = 0.1
    output_dropout = 0.5

    def __init__(self, embedding_dim: int = 256, hidden_dim: int = 512,
                 n_location_filters: int = 32, location_kernel_size: int = 63, n_token: int = 40):
        super().__init__()
        self.embedding = nn.Embedding(n_token, embedding_dim)
        bound = math.sqrt(6 / hidden_dim)
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        self.decoder_rnn_dim = hidden_dim
        self.project_to_n_symbols = nn.Linear(hidden_dim, n_token)
        self.attention_layer = LocationSensitiveAttention(
            hidden_dim, hidden_dim, hidden_dim, n_location_filters, location_kernel_size)
        self.decoder_rnn = nn.LSTMCell(hidden_dim + embedding_dim, hidden_dim)
        self.project_to_hidden = nn.Sequential(XavierLinear(hidden_dim * 2, hidden_dim), nn.Tanh())

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor | None,
                text_input: torch.Tensor, mask_unk: bool | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """memory [B, L, H], memory_mask [B, L] (True = padded), text_input [B, N] token ids.

        Returns (hidden [B, N+1, H], logits [B, N+1, n_token], attention [B, N+1, L]).
        `mask_unk` (default: training mode) replaces random tokens by `<unk>`.
        """
        if mask_unk is None:
            mask_unk = self.training
        tokens = text_input
        if mask_unk:
            drop = torch.rand(text_input.shape, device=text_input.device) < self.unk_mask_prob
            tokens = text_input.masked_fill(drop, self.unk_index)
        batch, length, _ = memory.shape
        sos = self.embedding(text_input.new_full((1, batch), self.sos_index))
        step_inputs = torch.cat([sos, self.embedding(tokens).transpose(0, 1)], dim=0)

        h = memory.new_zeros(batch, self.decoder_rnn_dim)
        c = memory.new_zeros(batch, self.decoder_rnn_dim)
        weights = memory.new_zeros(batch, length)
        weights_cum = memory.new_zeros(batch, length)
        context = memory.new_zeros(batch, memory.shape[-1])
        processed_memory = self.attention_layer.memory_layer(memory)

        hiddens, logits, alignments = [], [], []
        for step_input in step_inputs:
            h, c = self.decoder_rnn(torch.cat([step_input, context], dim=-1), (h, c))
            weights_cat = torch.stack([weights, weights_cum], dim=1)
            context, weights = self.attention_layer(h, memory, processed_memory, weights_cat,
                                                    memory_mask)
            weights_cum = weights_cum + weights
            hidden = self.project_to_hidden(torch.cat([h, context], dim=-1))
            hiddens.append(hidden)
            logits.append(self.project_to_n_symbols(
                F.dropout(hidden, self.output_dropout, self.training)))
            alignments.append(weights)
        return (torch.stack(hiddens, dim=1), torch.stack(logits, dim=1),
                torch.stack(alignments, dim=1))


@gin.configurable
class ASRCNN(nn.Module):
    """The text aligner. Defaults are the released `Utils/ASR/config.yml` values.

    token_row_offset: which decoder step's attention row the stages read as token i's: step i + 1
        in upstream (1, its `s2s_attn[..., 1:]`), or step i (0), the step whose output is trained to
        predict token i. Not a weight: the checkpoint is the same either way. On the learning
        benchmark's aligner, step i put espeak-ng's word starts 74 ms off against 99 ms for step i + 1
        (bench/README.md).
    dropout_p, decoder_dropout_p, unk_mask_p: the CNN blocks' dropout, the attention decoder's before
        its output projection, and the share of input tokens it reads as `<unk>` (upstream's 0.2, 0.5
        and 0.1). Not weights either.
    """

    # The encoder halves the frame rate once: alignment frames are 2 mel frames (600 samples).
    n_down = 1

    def __init__(self, input_dim: int = 80, hidden_dim: int = 256, n_token: int = 178,
                 n_layers: int = 6, token_embedding_dim: int = 512, token_row_offset: int = 1,
                 dropout_p: float = 0.2, decoder_dropout_p: float = 0.5, unk_mask_p: float = 0.1):
        super().__init__()
        if token_row_offset not in (0, 1):
            raise ValueError(f"token_row_offset must be 0 or 1, got {token_row_offset}")
        self.token_row_offset = token_row_offset
        if hidden_dim % 8:
            raise ValueError(f"hidden_dim must be a multiple of 8 (GroupNorm with 8 groups), "
                             f"got {hidden_dim}")
        self.input_dim = input_dim
        self.n_token = n_token
        self.to_mfcc = MFCC(n_mfcc=input_dim // 2, n_mels=input_dim)
        self.init_cnn = XavierConv1d(input_dim // 2, hidden_dim, kernel_size=7, padding=3, stride=2)
        self.cnns = nn.Sequential(*[
            nn.Sequential(DilatedConvBlock(hidden_dim, dropout_p=dropout_p),
                          nn.GroupNorm(num_groups=1, num_channels=hidden_dim))
            for _ in range(n_layers)])
        self.projection = XavierConv1d(hidden_dim, hidden_dim // 2)
        self.ctc_linear = nn.Sequential(
            XavierLinear(hidden_dim // 2, hidden_dim), nn.ReLU(), XavierLinear(hidden_dim, n_token))
        self.asr_s2s = ASRS2S(embedding_dim=token_embedding_dim, hidden_dim=hidden_dim // 2,
                              n_token=n_token)
        self.asr_s2s.output_dropout, self.asr_s2s.unk_mask_prob = decoder_dropout_p, unk_mask_p

    def _check_mel(self, mel: torch.Tensor) -> None:
        if mel.dim() != 3 or mel.shape[1] != self.input_dim:
            raise ValueError(f"ASRCNN expects a mel batch [B, {self.input_dim}, T], "
                             f"got shape {tuple(mel.shape)}")

    def _encode(self, mel: torch.Tensor) -> torch.Tensor:
        # [B, n_mels, T] -> [B, hidden_dim/2, ceil(T/2)]
        return self.projection(self.cnns(self.init_cnn(self.to_mfcc(mel))))

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None,
                text_input: torch.Tensor | None = None, mask_unk: bool | None = None):
        """x: mel [B, input_dim, T]; src_key_padding_mask: [B, ceil(T/2)], True on padded frames;
        text_input: token ids [B, N].

        Returns the CTC logits [B, ceil(T/2), n_token] alone when `text_input` is None, else
        (ctc_logits, s2s_logits [B, N+1, n_token], s2s_attn [B, N+1, ceil(T/2)]).
        """
        self._check_mel(x)
        memory = self._encode(x).transpose(1, 2)
        ctc_logits = self.ctc_linear(memory)
        if text_input is None:
            return ctc_logits
        _, s2s_logits, s2s_attn = self.asr_s2s(memory, src_key_padding_mask, text_input, mask_unk)
        return ctc_logits, s2s_logits, s2s_attn

    def get_feature(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features [B, hidden_dim/2, ceil(T/2)] of a mel [B, input_dim, T] or
        [B, 1, input_dim, T] (the stage-2 ASR feature-matching target)."""
        if x.dim() == 4 and x.shape[1] == 1:
            x = x.squeeze(1)
        self._check_mel(x)
        return self._encode(x)
