"""Weight and spectral normalisation with upstream's state-dict names.

Upstream checkpoints store the legacy hook names (`weight_g`/`weight_v`, `weight_orig`/`weight_u`/
`weight_v`), so modules are built with the legacy hooks: a checkpoint loads key for key. Export and
fast inference fold them away with `fold_norms`.
"""
import warnings

from torch import nn
from torch.nn.utils import remove_spectral_norm, remove_weight_norm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.nn.utils import spectral_norm as _spectral_norm
    from torch.nn.utils import weight_norm as _weight_norm


def weight_norm(module: nn.Module) -> nn.Module:
    """Legacy weight norm (keys `weight_g`, `weight_v`), without the deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _weight_norm(module)


def spectral_norm(module: nn.Module) -> nn.Module:
    """Legacy spectral norm (keys `weight_orig`, `weight_u`, `weight_v`)."""
    return _spectral_norm(module)


def fold_norms(model: nn.Module) -> nn.Module:
    """Replace every weight/spectral-norm hook by a plain `weight` tensor, in place.

    Spectral norm is folded with the current power-iteration vectors in eval mode, so the folded
    module computes exactly what the hooked module computes in eval.
    """
    model.eval()
    for module in model.modules():
        hooks = list(module._forward_pre_hooks.values())
        for hook in hooks:
            name = type(hook).__name__
            if name == "WeightNorm":
                remove_weight_norm(module, hook.name)
            elif name == "SpectralNorm":
                remove_spectral_norm(module, hook.name)
    return model


def has_norm_hooks(model: nn.Module) -> bool:
    return any(type(h).__name__ in ("WeightNorm", "SpectralNorm")
               for m in model.modules() for h in m._forward_pre_hooks.values())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["weight_norm", "spectral_norm", "fold_norms", "has_norm_hooks", "count_parameters"]
