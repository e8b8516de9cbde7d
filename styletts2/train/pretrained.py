"""The pretrained networks training starts from, loaded from paths bound in gin.

- text aligner (ASRCNN, `Utils/ASR/epoch_00080.pth`) and pitch extractor (JDCNet, `Utils/JDC/bst.t7`):
  stage 1 starts from them (stage 2 takes both from the stage-1 checkpoint);
- PL-BERT (`Utils/PLBERT/step_1000000.t7`): stage 2;
- WavLM (`microsoft/wavlm-base-plus` saved as a transformers directory): the SLM of both stages'
  feature-matching loss and of the SLM discriminator.

Nothing is downloaded. A real config names every file (gin/stage/pretrained.gin); a missing one
stops the run with the path and a pointer to checkpoints/README.md. With `allow_random_init = True`
(gin/stage/random_init.gin, the tiny configs) a part whose path is unset keeps its random weights
(the WavLM is a small random one sized to the model's `wd`), and a log line says so; the tiny
stages 1 and 2 bind the tiny stage-0 outputs (gin/stage/tiny_stage0_parts.gin), so only the WavLM
stays random there.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from pathlib import Path

import gin
import torch
from torch import nn

from styletts2.checkpoint import load_aligner_weights, load_pitch_weights
from styletts2.modules.discriminators import WavLMDiscriminator
from styletts2.modules.plbert import load_plbert_weights

logger = logging.getLogger(__name__)

README = "checkpoints/README.md"
# Each loadable part: (what it is, for messages; its path binding of load_pretrained_parts).
PARTS = {
    "text_aligner": ("the pretrained text aligner (ASRCNN, Utils/ASR/epoch_00080.pth)", "aligner_path"),
    "pitch_extractor": ("the pretrained pitch extractor (JDCNet, Utils/JDC/bst.t7)", "pitch_path"),
    "bert": ("PL-BERT (Utils/PLBERT/step_1000000.t7)", "plbert_path"),
}
_LOADERS = {"text_aligner": load_aligner_weights, "pitch_extractor": load_pitch_weights,
            "bert": load_plbert_weights}


class MissingPretrained(FileNotFoundError):
    """A pretrained file a real config needs is not bound or not on disk."""


def _resolve(path: str | None, what: str, binding: str, allow_random_init: bool) -> Path | None:
    """The file to load, or None when random init is allowed and no path is bound."""
    if path is None:
        if allow_random_init:
            return None
        raise MissingPretrained(f"{what} is needed but no path is bound: set `{binding}` in gin "
                                f"(see {README} for where to get it)")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise MissingPretrained(f"{what} not found at {resolved} (bound by `{binding}`); see {README} "
                                "for where to get it")
    return resolved


@gin.configurable
def load_pretrained_parts(model, parts: Iterable[str], aligner_path: str | None = None,
                          pitch_path: str | None = None, plbert_path: str | None = None,
                          allow_random_init: bool = False) -> dict[str, str]:
    """Load the named `parts` ('text_aligner', 'pitch_extractor', 'bert') of `model` strictly.

    Returns {part: path loaded, or 'random init'}.
    """
    paths = {"aligner_path": aligner_path, "pitch_path": pitch_path, "plbert_path": plbert_path}
    nets = model.nets
    done = {}
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"unknown pretrained part {part!r}; choose from {sorted(PARTS)}")
        what, key = PARTS[part]
        path = _resolve(paths[key], what, f"load_pretrained_parts.{key}", allow_random_init)
        if path is None:
            logger.warning("%s: no pretrained weights bound; keeping RANDOM INIT (allow_random_init, "
                           "fine for tiny test configs only)", part)
            done[part] = "random init"
            continue
        _LOADERS[part](nets[part], path)  # copies into the module's tensors, on its device
        logger.info("%s: loaded %s", part, path)
        done[part] = str(path)
    return done


@gin.configurable
def load_wavlm(wd: nn.Module, path: str | None = None, allow_random_init: bool = False,
               seed: int = 0, random_size: str = "small") -> nn.Module:
    """The speech language model of the SLM losses, frozen and in eval mode.

    wd: the model's WavLM discriminator; the WavLM's stacked hidden states must fill its input.
    path: a transformers directory of `microsoft/wavlm-base-plus` (`config.json` + weights), loaded
        with local_files_only.
    With no path and `allow_random_init`: a random WavLM seeded by `seed` without touching the global
    RNG, 'small' (`random_size`; shaped like the discriminator's gin-bound `slm_hidden` x
    `slm_layers`, with a narrow convolutional front end) or 'base' (wavlm-base-plus's shape, 94M
    parameters: what memory measurements need without the released weights).
    """
    from transformers import WavLMConfig, WavLMModel

    resolved = _resolve(path, "WavLM (microsoft/wavlm-base-plus, transformers format)",
                        "load_wavlm.path", allow_random_init)
    if resolved is not None:
        wavlm = WavLMModel.from_pretrained(str(resolved), local_files_only=True)
        logger.info("wavlm: loaded %s", resolved)
    else:
        config = _random_wavlm_config(random_size, WavLMConfig)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            wavlm = WavLMModel(config)
        logger.warning("wavlm: no path bound; using a RANDOM %s WavLM (hidden %d, %d layers; allow_random_init, "
                       "fine for tests and memory measurements only)", random_size, config.hidden_size,
                       config.num_hidden_layers)
    channels = wavlm.config.hidden_size * (wavlm.config.num_hidden_layers + 1)
    if channels != wd.in_channels:
        raise ValueError(f"WavLM gives {wavlm.config.num_hidden_layers + 1} hidden states of width "
                         f"{wavlm.config.hidden_size} ({channels} channels) but the WavLM discriminator takes "
                         f"{wd.in_channels} (WavLMDiscriminator.slm_hidden x slm_layers)")
    return wavlm.eval().requires_grad_(False)


def _random_wavlm_config(size: str, config_class):
    if size == "base":  # microsoft/wavlm-base-plus's architecture (its config.json's shape fields)
        return config_class(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                            conv_dim=(512,) * 7, num_buckets=320, max_bucket_distance=800)
    if size != "small":
        raise ValueError(f"load_wavlm.random_size must be 'small' or 'base', got {size!r}")
    hidden, layers = _discriminator_binding("slm_hidden"), _discriminator_binding("slm_layers")
    return config_class(hidden_size=hidden, num_hidden_layers=layers - 1,
                        num_attention_heads=2 if hidden % 2 == 0 else 1, intermediate_size=2 * hidden,
                        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                        num_buckets=32, max_bucket_distance=100)


def _discriminator_binding(name: str) -> int:
    """A WavLMDiscriminator size as gin binds it, else its default."""
    try:
        return int(gin.query_parameter(f"WavLMDiscriminator.{name}"))
    except ValueError:
        return int(inspect.signature(WavLMDiscriminator).parameters[name].default)
