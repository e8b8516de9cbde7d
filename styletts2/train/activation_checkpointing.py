"""Activation checkpointing: a module's forward is run again during backward instead of keeping
the tensors it saves for backward, trading compute for memory (`torch.utils.checkpoint`,
non-reentrant). Both training stages call `checkpoint_activations` in their set-up; it does
nothing unless parts are bound:

    checkpoint_activations.parts = ('decoder', 'discriminators', 'wavlm', 'diffusion')

- 'decoder': the vocoder, block by block: each AdaIN residual block (the front end's and the
  generator's, whose snake-activated convolutions at the audio rate hold most of a training step's
  activations) keeps only its inputs and output, and one block at a time is recomputed in backward.
  Checkpointing the decoder whole would recompute all of it at once, the same peak again. The
  harmonic source and the curves' random blur are drawn outside the blocks, once;
- 'discriminators': each sub-discriminator of MPD and MSD, one at a time (weight-normed
  convolutions; nothing in their forward changes state);
- 'wavlm': the frozen WavLM pass of the SLM feature matching and SLM adversarial losses;
- 'diffusion': the diffusion transformer (`diffusion.unet`); its noise and noise levels are drawn
  outside it, from the stage's generator, so they are not drawn twice.
The math is unchanged: gradients equal those of the step without it (tests/test_stage2.py).
Without gradients (validation, inference, export) the modules run as before.
"""
from __future__ import annotations

import functools

import gin
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..modules.adain import AdainResBlk1d
from ..modules.hifigan import AdaINResBlock1

PARTS = ("decoder", "discriminators", "wavlm", "diffusion")


def recompute_in_backward(module: nn.Module) -> None:
    """Make `module`'s forward checkpointed whenever gradients are being recorded (idempotent)."""
    if getattr(module, "_recomputes_in_backward", False):
        return
    forward = module.forward
    params = list(module.parameters())

    @functools.wraps(forward)
    def checkpointed(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        # The stages freeze a module (requires_grad off) around some calls; the recomputation runs
        # later, in backward, after the freeze has ended, and must record the same graph.
        flags = [p.requires_grad for p in params]

        def run(*args, **kwargs):
            now = [p.requires_grad for p in params]
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
            try:
                return forward(*args, **kwargs)
            finally:
                for p, flag in zip(params, now):
                    p.requires_grad_(flag)

        return checkpoint(run, *args, use_reentrant=False, preserve_rng_state=True, **kwargs)

    module.forward = checkpointed
    module._recomputes_in_backward = True


@gin.configurable
def checkpoint_activations(model: nn.Module, wavlm: nn.Module | None = None,
                           parts: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """Checkpoint the named `parts` of `model` (and the stage's `wavlm`); returns the parts applied."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"checkpoint_activations.parts: unknown {unknown}; choose from {list(PARTS)}")
    diffusion = getattr(model, "diffusion", None)
    decoder = getattr(model, "decoder", None)
    modules = {"decoder": [m for m in (decoder.modules() if decoder is not None else ())
                           if isinstance(m, (AdaINResBlock1, AdainResBlk1d))],
               "discriminators": [sub for bank in (getattr(model, "mpd", None), getattr(model, "msd", None))
                                  if bank is not None for sub in bank.discriminators],
               "wavlm": [wavlm],
               "diffusion": [getattr(diffusion, "unet", None)]}
    for part in parts:
        for module in modules[part]:
            if module is not None:
                recompute_in_backward(module)
    return tuple(parts)
