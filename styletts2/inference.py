"""Torch synthesis with a model in memory (a training checkpoint, or upstream's): text -> 24 kHz waveform.

`TorchSynthesizer(model)` is the runtime's synthesizer (`styletts2.runtime.synthesizer`, where the
steps are written once: text front-end, noise draws, blending, reference mixing, streaming, option
checks) driving upstream's exact float32 graphs over the model (`styletts2.fidelity`) through a
torch executor. What an export's model.json would say of the model (`ModelConfig`) is read from the
model itself (`model_config`), with the fields an export writes (`export.model_card.synthesis_fields`).

The steps follow upstream's inference notebooks (LJSpeech and LibriTTS):
- style: the diffusion sampler (ADPM2, Karras sigmas) conditioned on PL-BERT's embedding and, for
  multispeaker models, on a reference clip's style; the reference is then mixed in with `alpha`
  (acoustic half) and `beta` (prosodic half);
- durations: round(sum(sigmoid(duration logits)) / speed), at least one frame per token, and
  `tail_frames` more on the last token (the LJSpeech notebook's `pred_dur[-1] += 5`);
- the decoder renders the text encoding expanded by those durations, with the predicted F0 and energy.
Text is normalized first (numbers, dates, abbreviations... as words; `normalize=False` reads it as
written) with the normalizer the model's gin config binds (`corpus_normalizer`, the one its
training text went through).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .export.model_card import synthesis_fields
from .runtime.model_dir import ModelConfig
from .runtime.synthesizer import Synthesizer
from .synthesis_limits import check_option
from .torch_executor import TorchExecutor

DEFAULT_STEPS = 5  # the notebooks' diffusion steps (num_steps - 1 ADPM2 iterations)


def model_config(model: nn.Module, steps: int = DEFAULT_STEPS, espeak_version: str | None = None,
                 source: str = "the model") -> ModelConfig:
    """What an export of `model` with `steps` diffusion steps would record in model.json, as the
    runtime reads it (no graph files: the executor holds the graphs). espeak_version: the one the
    model was trained with (a different one here gives the runtime's warning); None: not checked."""
    fields = synthesis_fields(model, steps, espeak_version)
    given = {f.name for f in dataclasses.fields(ModelConfig)} - {"directory", "symbols", "graphs", "raw", "digests"}
    return ModelConfig(directory=Path(source), symbols=tuple(fields["symbols"]), graphs={}, raw=fields,
                       **{name: fields[name] for name in given})


class TorchSynthesizer(Synthesizer):
    """The synthesizer over a `StyleTTS2` model (inference modules present, NOT prepared for export).

    steps: diffusion steps (the notebooks' 5).
    device: where the model runs (default: CUDA when available); it is moved there.
    phonemizer: text -> phoneme string (default: espeak-ng, en-us).
    normalize: normalize text before phonemizing it; False reads it as written.
    espeak_version: the espeak-ng the model was trained with (checkpoints record it), for the
        runtime's version warning; source: the model's name in messages (e.g. its checkpoint).
    """

    def __init__(self, model: nn.Module, steps: int = DEFAULT_STEPS, device: str | torch.device | None = None,
                 phonemizer: Callable[[str], str] | None = None, normalize: bool = True,
                 espeak_version: str | None = None, source: str = "the model"):
        check_option("diffusion_steps", steps)
        self.model = model
        executor = TorchExecutor.fidelity(model, steps, device)
        super().__init__(model_config(model, steps, espeak_version, source), phonemizer=phonemizer, normalize=normalize,
                         executor=executor)

    @property
    def device(self) -> torch.device:
        return self.executor.torch_device
