"""The style diffusion as the StyleTTS2 model stores it (`diffusion` in the checkpoint).

Upstream registers the one denoising transformer twice: inside the KDiffusion (`diffusion.net.*`)
and directly (`unet.*`). Both names are kept so checkpoints load key for key in either direction;
they are the same module, so every parameter exists once and loading writes it twice.
"""
from collections.abc import Sequence

import gin
import torch
from torch import Tensor, nn

from .kdiffusion import KDiffusion, LogNormalDistribution
from .sampler import sample
from .transformer import StyleTransformer1d, Transformer1d


class StyleDiffusion(nn.Module):
    """KDiffusion around a Transformer1d (single speaker) or StyleTransformer1d (multispeaker)."""

    def __init__(self, net: Transformer1d, sigma_data: float = 0.2, dist_mean: float = -3.0,
                 dist_std: float = 1.0, embedding_mask_proba: float = 0.1):
        super().__init__()
        # Registration order (diffusion, then unet) is upstream's state-dict order.
        self.diffusion = KDiffusion(net, LogNormalDistribution(dist_mean, dist_std), sigma_data)
        self.unet = net
        self.embedding_mask_proba = embedding_mask_proba

    @property
    def sigma_data(self) -> float:
        return self.diffusion.sigma_data

    @sigma_data.setter
    def sigma_data(self, value: float) -> None:
        self.diffusion.sigma_data = float(value)

    @property
    def multispeaker(self) -> bool:
        return isinstance(self.unet, StyleTransformer1d)

    def forward(self, x: Tensor, embedding: Tensor, features: Tensor | None = None,
                sigmas: Tensor | None = None, noise: Tensor | None = None,
                embedding_mask_proba: float | None = None, embedding_mask: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Training loss with classifier-free dropout at `embedding_mask_proba` (default: the
        configured one), like upstream's `model.diffusion(...)`. Upstream's single-speaker stage 2
        instead calls `model.diffusion.diffusion(...)`, i.e. this loss with no dropout."""
        if embedding_mask_proba is None:
            embedding_mask_proba = self.embedding_mask_proba
        return self.diffusion.loss(x, embedding, features, sigmas, noise, embedding_mask_proba,
                                   embedding_mask, generator)

    def sample(self, noise: Tensor | None, embedding: Tensor, num_steps: int = 5,
               embedding_scale: float | Tensor = 1.0, features: Tensor | None = None,
               step_noises: Tensor | Sequence[Tensor] | None = None,
               generator: torch.Generator | None = None, embedding_mask_proba: float = 0.0) -> Tensor:
        """Styles [B, 1, C]; see `sampler.sample`."""
        return sample(self.diffusion, noise, embedding, num_steps, embedding_scale, features,
                      step_noises, generator, embedding_mask_proba)


@gin.configurable
def build_style_diffusion(style_dim: int = 128, multispeaker: bool = False, bert_hidden: int = 768,
                          bert_max_positions: int = 512, embedding_mask_proba: float = 0.1,
                          num_layers: int = 3, num_heads: int = 8, head_features: int = 64,
                          multiplier: int = 2, sigma_data: float = 0.2, dist_mean: float = -3.0,
                          dist_std: float = 1.0) -> StyleDiffusion:
    """Upstream build_model's diffusion: styles of 2 x style_dim ([acoustic | prosodic]) conditioned
    on PL-BERT embeddings (bert_hidden wide, up to bert_max_positions long) and, multispeaker, on a
    reference style of the same width. sigma_data is a placeholder that training re-estimates."""
    channels = style_dim * 2
    shape = dict(channels=channels, context_embedding_features=bert_hidden, num_layers=num_layers,
                 num_heads=num_heads, head_features=head_features, multiplier=multiplier,
                 embedding_max_length=bert_max_positions)
    net = (StyleTransformer1d(context_features=channels, **shape) if multispeaker
           else Transformer1d(**shape))
    return StyleDiffusion(net, sigma_data=sigma_data, dist_mean=dist_mean, dist_std=dist_std,
                          embedding_mask_proba=embedding_mask_proba)
