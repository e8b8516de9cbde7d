"""EDM ("elucidated") diffusion around the denoising transformer (Karras et al. 2022).

The network never sees raw noisy styles: `denoise_fn` preconditions input, noise level and output
with sigma_data, the standard deviation of the training styles, which stage-2 training re-estimates
per batch and a checkpoint carries (it is a plain attribute, not a buffer, as upstream).

Randomness (noise levels, noise, classifier-free dropout) is drawn in a fixed order, sigmas then
noise then mask, from `generator` (the global RNG when None, matching upstream's draws for the same
seed) unless passed in.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LogNormalDistribution:
    """Training noise levels: sigma = exp(mean + std * N(0, 1))."""

    def __init__(self, mean: float, std: float):
        self.mean = mean
        self.std = std

    def __call__(self, num_samples: int, device: torch.device | str | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        normal = torch.randn((num_samples,), device=device, generator=generator)
        return (self.mean + self.std * normal).exp()


def draw_embedding_mask(batch: int, proba: float, device: torch.device | str | None = None,
                        generator: torch.Generator | None = None) -> Tensor | None:
    """Classifier-free dropout: which batch items see the unconditional embedding ([B] bool), or None
    when proba is 0. Probabilities 0 and 1 draw nothing."""
    if proba <= 0.0:
        return None
    if proba >= 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    probs = torch.full((batch,), float(proba), device=device)
    return torch.bernoulli(probs, generator=generator).bool()


class KDiffusion(nn.Module):
    """Wraps the denoiser `net` (stored as `net`, so keys read `diffusion.net.*`)."""

    def __init__(self, net: nn.Module, sigma_distribution: LogNormalDistribution, sigma_data: float):
        super().__init__()
        self.net = net
        self.sigma_distribution = sigma_distribution
        self.sigma_data = sigma_data

    def scale_weights(self, sigmas: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """EDM preconditioning for noise levels [B]: c_skip, c_out, c_in as [B, 1, 1], c_noise [B]."""
        sd = self.sigma_data
        c_noise = sigmas.log() * 0.25
        s = sigmas.view(-1, 1, 1)
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd * (sd ** 2 + s ** 2) ** -0.5
        c_in = (s ** 2 + sd ** 2) ** -0.5
        return c_skip, c_out, c_in, c_noise

    def denoise_fn(self, x_noisy: Tensor, sigmas: Tensor | float, embedding: Tensor,
                   features: Tensor | None = None, embedding_scale: float | Tensor = 1.0,
                   embedding_mask: Tensor | None = None) -> Tensor:
        """Estimate of the clean style [B, 1, C] from x_noisy [B, 1, C] at noise level `sigmas`
        (a float, a 0-dim tensor or [B]). Guidance acts on the network output, before the skip."""
        if not isinstance(sigmas, Tensor):
            sigmas = x_noisy.new_full((x_noisy.shape[0],), float(sigmas))
        elif sigmas.dim() == 0:
            sigmas = sigmas.to(x_noisy).expand(x_noisy.shape[0])
        c_skip, c_out, c_in, c_noise = self.scale_weights(sigmas)
        x_pred = self.net(c_in * x_noisy, c_noise, embedding, features=features,
                          embedding_scale=embedding_scale, embedding_mask=embedding_mask)
        return c_skip * x_noisy + c_out * x_pred

    def loss_weight(self, sigmas: Tensor) -> Tensor:
        """EDM's lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2."""
        return (sigmas ** 2 + self.sigma_data ** 2) * (sigmas * self.sigma_data) ** -2

    def loss(self, x: Tensor, embedding: Tensor, features: Tensor | None = None,
             sigmas: Tensor | None = None, noise: Tensor | None = None,
             embedding_mask_proba: float = 0.0, embedding_mask: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """Weighted denoising loss (scalar) for clean styles x [B, 1, C].

        sigmas [B] and noise [B, 1, C] are drawn when not given; so is the classifier-free dropout
        mask when embedding_mask_proba > 0 and no embedding_mask [B] bool is given.
        """
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"x must be clean styles [B, 1, C], got {tuple(x.shape)}")
        b = x.shape[0]
        if sigmas is None:
            sigmas = self.sigma_distribution(b, device=x.device, generator=generator)
        elif sigmas.shape != (b,):
            raise ValueError(f"sigmas must be [B]=[{b}], got {tuple(sigmas.shape)}")
        if noise is None:
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        elif noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
        if embedding_mask is None:
            embedding_mask = draw_embedding_mask(b, embedding_mask_proba, x.device, generator)

        x_noisy = x + sigmas.view(-1, 1, 1) * noise
        x_denoised = self.denoise_fn(x_noisy, sigmas, embedding, features=features,
                                     embedding_mask=embedding_mask)
        per_item = F.mse_loss(x_denoised, x, reduction="none").flatten(1).mean(dim=1)
        return (per_item * self.loss_weight(sigmas)).mean()

    def forward(self, x: Tensor, embedding: Tensor, **kwargs) -> Tensor:
        """The training loss; see `loss`."""
        return self.loss(x, embedding, **kwargs)
