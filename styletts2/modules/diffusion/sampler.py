"""Style sampling: the ADPM2 ancestral sampler on a Karras noise schedule.

StyleTTS2 samples (inference notebooks and stage-2 training alike) with ADPM2 and
KarrasSchedule(sigma_min=1e-4, sigma_max=3.0, rho=9.0), without clamping the result.

With `num_steps` = N the schedule has N noise levels, sigma_max ... sigma_min, and the sampler takes
N - 1 steps sigmas[i] -> sigmas[i + 1]. It therefore stops at sigma_min, not 0 (upstream pads the
schedule with a 0 that its loop never reaches), and every step, the last included, adds fresh noise.
Cost: 2 (N - 1) denoiser calls; each is one transformer pass when `embedding_scale` is the Python
number 1.0 and two otherwise (classifier-free guidance), so 2 (N - 1) or 4 (N - 1) passes.
Noise: the initial noise [B, 1, C] and N - 1 step noises [N - 1, B, 1, C]; pass them in for a
deterministic (exportable) sampler, or let them come from `generator` (the global RNG when None) in
upstream's order, so a seed gives upstream's sample.
"""
import math
import struct
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from styletts2.host_values import host_side

from .kdiffusion import KDiffusion, draw_embedding_mask


class KarrasSchedule:
    """EDM noise levels (Karras et al. 2022, eq. 5), computed in float32 as upstream."""

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 3.0, rho: float = 9.0):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.rho = rho

    def __call__(self, num_steps: int) -> list[float]:
        """num_steps noise levels from sigma_max down to sigma_min."""
        if num_steps < 2:
            raise ValueError(f"num_steps must be at least 2 (one sampler step), got {num_steps}")
        inv = 1.0 / self.rho
        ramp = torch.arange(num_steps, dtype=torch.float32) / (num_steps - 1)
        sigmas = (self.sigma_max ** inv + ramp * (self.sigma_min ** inv - self.sigma_max ** inv)) ** self.rho
        return host_side(sigmas).tolist()


def _f32(value: float) -> float:
    """Round to float32. Upstream does the step arithmetic on float32 scalars; doing the same keeps
    the sampler bit-exact with it (the float64 values differ in the last bits of the sample)."""
    return struct.unpack("f", struct.pack("f", value))[0]


class ADPM2Sampler:
    """Second-order ancestral step: an Euler step to the midpoint noise level, then the step to
    sigma_down with the midpoint's derivative; the caller then adds noise of std sigma_up."""

    @staticmethod
    def step_sigmas(sigma: float, sigma_next: float) -> tuple[float, float, float]:
        """sigma_up, sigma_down (sigma_down^2 + sigma_up^2 = sigma_next^2) and the midpoint."""
        next_sq, sq = _f32(sigma_next ** 2), _f32(sigma ** 2)
        sigma_up = math.sqrt(_f32(_f32(next_sq * _f32(sq - next_sq)) / sq))
        sigma_down = math.sqrt(_f32(next_sq - _f32(sigma_up ** 2)))
        sigma_mid = _f32(sigma + _f32(sigma_down)) / 2
        return sigma_up, sigma_down, sigma_mid

    def step(self, x: Tensor, denoise: Callable[[Tensor, float], Tensor], sigma: float,
             sigma_next: float) -> tuple[Tensor, float]:
        """x at sigma -> (x at sigma_down, sigma_up). Two denoiser calls."""
        sigma_up, sigma_down, sigma_mid = self.step_sigmas(sigma, sigma_next)
        d = (x - denoise(x, sigma)) / sigma
        x_mid = x + d * _f32(sigma_mid - sigma)
        d_mid = (x_mid - denoise(x_mid, sigma_mid)) / sigma_mid
        return x + d_mid * _f32(_f32(sigma_down) - sigma), sigma_up


def network_passes(num_steps: int, embedding_scale: float | Tensor = 1.0) -> int:
    """Transformer passes one `sample` call makes."""
    calls = 2 * (num_steps - 1)
    guided = isinstance(embedding_scale, Tensor) or embedding_scale != 1.0
    return 2 * calls if guided else calls


def _check_step_noises(step_noises: Tensor | Sequence[Tensor], count: int,
                       shape: tuple[int, ...]) -> None:
    if len(step_noises) != count or any(tuple(n.shape) != shape for n in step_noises):
        got = (tuple(step_noises.shape) if isinstance(step_noises, Tensor)
               else [tuple(n.shape) for n in step_noises])
        raise ValueError(f"step_noises must be num_steps - 1 = {count} noises of shape {shape} "
                         f"(a [{count}, {', '.join(map(str, shape))}] tensor or a list), got {got}")


def sample(diffusion: KDiffusion, noise: Tensor | None, embedding: Tensor, num_steps: int = 5,
           embedding_scale: float | Tensor = 1.0, features: Tensor | None = None,
           step_noises: Tensor | Sequence[Tensor] | None = None,
           generator: torch.Generator | None = None, embedding_mask_proba: float = 0.0,
           schedule: KarrasSchedule | None = None) -> Tensor:
    """Sample styles [B, 1, C] for text embeddings [B, T, E].

    noise [B, 1, C] (None: drawn); features [B, C] the reference style (multispeaker only);
    step_noises [num_steps - 1, B, 1, C] or a list (None: drawn); embedding_mask_proba > 0 applies
    classifier-free dropout at every denoiser call, as stage-2 training's sampling does (masks always
    come from `generator`). schedule defaults to KarrasSchedule(1e-4, 3.0, 9.0).
    """
    schedule = schedule or KarrasSchedule()
    sigmas = schedule(num_steps)
    shape = (embedding.shape[0], 1, diffusion.net.channels)
    if noise is None:
        noise = torch.randn(shape, generator=generator, device=embedding.device, dtype=embedding.dtype)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise must be [B, 1, C] = {list(shape)}, got {tuple(noise.shape)}")
    if step_noises is not None:
        _check_step_noises(step_noises, num_steps - 1, shape)

    def denoise(x: Tensor, sigma: float) -> Tensor:
        mask = draw_embedding_mask(shape[0], embedding_mask_proba, x.device, generator)
        return diffusion.denoise_fn(x, sigma, embedding, features=features,
                                    embedding_scale=embedding_scale, embedding_mask=mask)

    adpm2 = ADPM2Sampler()
    x = sigmas[0] * noise
    for i in range(num_steps - 1):
        x, sigma_up = adpm2.step(x, denoise, sigmas[i], sigmas[i + 1])
        # Drawn after the step's denoiser calls: upstream's order of random draws.
        eps = (step_noises[i] if step_noises is not None
               else torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype))
        x = x + eps * sigma_up
    return x


class DiffusionSampler(nn.Module):
    """`sample` bound to a KDiffusion and a schedule, called like upstream's DiffusionSampler:
    `sampler(noise, embedding=..., num_steps=..., embedding_scale=..., features=...)`."""

    def __init__(self, diffusion: KDiffusion, schedule: KarrasSchedule | None = None):
        super().__init__()
        self.diffusion = diffusion
        self.schedule = schedule or KarrasSchedule()

    def forward(self, noise: Tensor | None, embedding: Tensor, num_steps: int = 5,
                embedding_scale: float | Tensor = 1.0, features: Tensor | None = None,
                step_noises: Tensor | Sequence[Tensor] | None = None,
                generator: torch.Generator | None = None,
                embedding_mask_proba: float = 0.0) -> Tensor:
        return sample(self.diffusion, noise, embedding, num_steps, embedding_scale, features,
                      step_noises, generator, embedding_mask_proba, self.schedule)
