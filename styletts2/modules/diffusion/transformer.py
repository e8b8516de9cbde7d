"""Denoising networks of the style diffusion.

`Transformer1d` (single speaker) and `StyleTransformer1d` (multispeaker, its layer norms modulated by
the reference style) predict the clean style from a noisy one, given the PL-BERT text embedding:

    noisy style [B, 1, C] is repeated along the T text positions and concatenated with the embedding
    [B, T, E] into [B, T, C + E]; a mapping of the noise level (plus, for the multispeaker model, the
    reference style) is added before every block; blocks are pre-norm self-attention + feed-forward;
    the positions are averaged and a 1x1 convolution brings C + E back to C channels -> [B, 1, C].

Classifier-free guidance replaces the text embedding with a learned per-position table
(`fixed_embedding`). Attribute names and the order of registration follow upstream's state dict.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelsFirst(nn.Module):
    """[B, T, F] -> [B, F, T] (a parameter-free slot, so the projection is `to_out.1` as upstream)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class FourierTimeEmbedding(nn.Module):
    """Noise level t [B] -> [t, sin(2 pi w t), cos(2 pi w t)] with learned frequencies w, [B, dim + 1]."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, t: Tensor) -> Tensor:
        t = t.unsqueeze(-1)
        phase = t * self.weights.unsqueeze(0) * 2 * math.pi
        return torch.cat([t, phase.sin(), phase.cos()], dim=-1)


def time_embedding(dim: int, out_features: int) -> nn.Sequential:
    """Noise level [B] -> [B, out_features]; nested so the keys read `to_time.0.0`, `to_time.0.1`."""
    return nn.Sequential(
        nn.Sequential(FourierTimeEmbedding(dim), nn.Linear(dim + 1, out_features)),
        nn.GELU(),
    )


def feed_forward(features: int, multiplier: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(features, features * multiplier),
        nn.GELU(),
        nn.Linear(features * multiplier, features),
    )


class FixedEmbedding(nn.Module):
    """Learned per-position table that stands in for the text embedding (the "unconditional" input)."""

    def __init__(self, max_length: int, features: int):
        super().__init__()
        self.max_length = max_length
        self.embedding = nn.Embedding(max_length, features)

    def check_length(self, length: int) -> None:
        if length > self.max_length:
            raise ValueError(f"text embedding has {length} positions, more than the {self.max_length} "
                             "the diffusion model was built for")

    def forward(self, like: Tensor) -> Tensor:
        """The table's first T rows for every batch item of `like` [B, T, E]."""
        self.check_length(like.shape[1])
        return self.embedding.weight[:like.shape[1]].unsqueeze(0).expand(like.shape[0], -1, -1)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over projected q, k, v [B, N, heads * head_features]."""

    def __init__(self, features: int, num_heads: int, head_features: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = head_features ** -0.5
        self.to_out = nn.Linear(num_heads * head_features, features)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q, k, v = self._split(q), self._split(k), self._split(v)
        weights = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2)
        return self.to_out(out.reshape(out.shape[0], out.shape[1], -1))


class SelfAttention(nn.Module):
    """Pre-norm self-attention. Queries and keys/values are normalised by separate layer norms
    (`norm`, `norm_context`), as upstream's attention block does even without a cross context."""

    def __init__(self, features: int, num_heads: int, head_features: int):
        super().__init__()
        mid = num_heads * head_features
        self.norm = nn.LayerNorm(features)
        self.norm_context = nn.LayerNorm(features)
        self.to_q = nn.Linear(features, mid, bias=False)
        self.to_kv = nn.Linear(features, mid * 2, bias=False)
        self.attention = MultiHeadAttention(features, num_heads, head_features)

    def forward(self, x: Tensor) -> Tensor:
        k, v = self.to_kv(self.norm_context(x)).chunk(2, dim=-1)
        return self.attention(self.to_q(self.norm(x)), k, v)


class AdaptiveLayerNorm(nn.Module):
    """Layer norm without affine weights, scaled and shifted by the style: (1 + gamma) * LN(x) + beta."""

    def __init__(self, style_dim: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gamma, beta = self.fc(style).unsqueeze(1).chunk(2, dim=-1)
        return (1 + gamma) * F.layer_norm(x, (self.channels,), eps=self.eps) + beta


class StyleSelfAttention(nn.Module):
    """`SelfAttention` with style-modulated layer norms."""

    def __init__(self, features: int, style_dim: int, num_heads: int, head_features: int):
        super().__init__()
        mid = num_heads * head_features
        self.norm = AdaptiveLayerNorm(style_dim, features)
        self.norm_context = AdaptiveLayerNorm(style_dim, features)
        self.to_q = nn.Linear(features, mid, bias=False)
        self.to_kv = nn.Linear(features, mid * 2, bias=False)
        self.attention = MultiHeadAttention(features, num_heads, head_features)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        k, v = self.to_kv(self.norm_context(x, style)).chunk(2, dim=-1)
        return self.attention(self.to_q(self.norm(x, style)), k, v)


class TransformerBlock(nn.Module):
    def __init__(self, features: int, num_heads: int, head_features: int, multiplier: int):
        super().__init__()
        self.attention = SelfAttention(features, num_heads, head_features)
        self.feed_forward = feed_forward(features, multiplier)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(x)
        return x + self.feed_forward(x)


class StyleTransformerBlock(nn.Module):
    def __init__(self, features: int, style_dim: int, num_heads: int, head_features: int,
                 multiplier: int):
        super().__init__()
        self.attention = StyleSelfAttention(features, style_dim, num_heads, head_features)
        self.feed_forward = feed_forward(features, multiplier)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        x = x + self.attention(x, style)
        return x + self.feed_forward(x)


class Transformer1d(nn.Module):
    """Single-speaker denoiser: conditioned on the noise level and the text embedding only.

    channels: style width C (2 x style_dim); context_embedding_features: text embedding width E;
    embedding_max_length: rows of the unconditional table (PL-BERT's max positions).
    """

    def __init__(self, channels: int, context_embedding_features: int, num_layers: int,
                 num_heads: int, head_features: int, multiplier: int,
                 embedding_max_length: int = 512):
        super().__init__()
        self.channels = channels
        self.context_embedding_features = context_embedding_features
        features = channels + context_embedding_features
        self.blocks = nn.ModuleList(self._make_block(features, num_heads, head_features, multiplier)
                                    for _ in range(num_layers))
        self.to_out = nn.Sequential(ChannelsFirst(), nn.Conv1d(features, channels, kernel_size=1))
        self.to_mapping = nn.Sequential(
            nn.Linear(features, features), nn.GELU(), nn.Linear(features, features), nn.GELU())
        self.to_time = time_embedding(channels, features)
        self._add_feature_mapping(features)
        self.fixed_embedding = FixedEmbedding(embedding_max_length, context_embedding_features)

    # Hooks the multispeaker subclass overrides (kept here so the registration order, and with it
    # the state-dict order, is upstream's: blocks, to_out, to_mapping, to_time, to_features, ...).
    def _make_block(self, features: int, num_heads: int, head_features: int,
                    multiplier: int) -> nn.Module:
        return TransformerBlock(features, num_heads, head_features, multiplier)

    def _add_feature_mapping(self, features: int) -> None:
        pass

    def _check_features(self, features: Tensor | None, batch: int) -> None:
        if features is not None:
            raise ValueError("the single-speaker Transformer1d takes no reference style `features`")

    def _mapping(self, time: Tensor, features: Tensor | None) -> Tensor:
        return self.to_mapping(self.to_time(time))

    def _block(self, block: nn.Module, x: Tensor, features: Tensor | None) -> Tensor:
        return block(x)

    def run(self, x: Tensor, time: Tensor, embedding: Tensor,
            features: Tensor | None = None) -> Tensor:
        """One network pass: x [B, 1, C], time [B], embedding [B, T, E] -> [B, 1, C]."""
        mapping = self._mapping(time, features).unsqueeze(1)
        h = torch.cat([x.expand(-1, embedding.shape[1], -1), embedding], dim=-1)
        for block in self.blocks:
            h = self._block(block, h + mapping, features)
        return self.to_out(h.mean(dim=1, keepdim=True)).transpose(1, 2)

    def forward(self, x: Tensor, time: Tensor, embedding: Tensor, features: Tensor | None = None,
                embedding_scale: float | Tensor = 1.0, embedding_mask: Tensor | None = None) -> Tensor:
        """Denoiser network output [B, 1, C].

        x [B, 1, C] (already scaled by c_in), time [B] (c_noise), embedding [B, T, E];
        embedding_mask [B] bool: True rows see the unconditional table instead of their text
        (training's classifier-free dropout; nothing random happens here).
        embedding_scale: classifier-free guidance. A Python 1.0 makes one pass; anything else (or a
        tensor, [] or [B], as export needs) makes two, uncond + scale * (cond - uncond).
        """
        self._check_inputs(x, time, embedding)
        self._check_features(features, x.shape[0])
        if embedding_mask is not None:
            if embedding_mask.shape != (x.shape[0],):
                raise ValueError(f"embedding_mask must be [B]={x.shape[0]} booleans, "
                                 f"got {tuple(embedding_mask.shape)}")
            embedding = torch.where(embedding_mask.view(-1, 1, 1), self.fixed_embedding(embedding),
                                    embedding)
        if not isinstance(embedding_scale, Tensor) and embedding_scale == 1.0:
            return self.run(x, time, embedding, features)
        if isinstance(embedding_scale, Tensor) and embedding_scale.dim() == 1:
            embedding_scale = embedding_scale.view(-1, 1, 1)
        conditional = self.run(x, time, embedding, features)
        unconditional = self.run(x, time, self.fixed_embedding(embedding), features)
        return unconditional + (conditional - unconditional) * embedding_scale

    def _check_inputs(self, x: Tensor, time: Tensor, embedding: Tensor) -> None:
        b = x.shape[0]
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.channels:
            raise ValueError(f"x must be [B, 1, {self.channels}], got {tuple(x.shape)}")
        if time.shape != (b,):
            raise ValueError(f"time must be [B]=[{b}], got {tuple(time.shape)}")
        if (embedding.dim() != 3 or embedding.shape[0] != b
                or embedding.shape[2] != self.context_embedding_features):
            raise ValueError(f"embedding must be [B={b}, T, {self.context_embedding_features}], "
                             f"got {tuple(embedding.shape)}")
        self.fixed_embedding.check_length(embedding.shape[1])


class StyleTransformer1d(Transformer1d):
    """Multispeaker denoiser: also conditioned on a reference style `features` [B, context_features]
    (the style encoders' output for a clip of the target speaker), which both enters the mapping and
    modulates every layer norm."""

    def __init__(self, channels: int, context_embedding_features: int, context_features: int,
                 num_layers: int, num_heads: int, head_features: int, multiplier: int,
                 embedding_max_length: int = 512):
        self.context_features = context_features
        super().__init__(channels, context_embedding_features, num_layers, num_heads, head_features,
                         multiplier, embedding_max_length)

    def _make_block(self, features, num_heads, head_features, multiplier):
        return StyleTransformerBlock(features, self.context_features, num_heads, head_features,
                                     multiplier)

    def _add_feature_mapping(self, features: int) -> None:
        self.to_features = nn.Sequential(nn.Linear(self.context_features, features), nn.GELU())

    def _check_features(self, features: Tensor | None, batch: int) -> None:
        if features is None or features.shape != (batch, self.context_features):
            got = None if features is None else tuple(features.shape)
            raise ValueError(f"StyleTransformer1d needs the reference style features "
                             f"[B={batch}, {self.context_features}], got {got}")

    def _mapping(self, time: Tensor, features: Tensor | None) -> Tensor:
        return self.to_mapping(self.to_time(time) + self.to_features(features))

    def _block(self, block, x, features):
        return block(x, features)
