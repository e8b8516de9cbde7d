"""The documented range of every synthesis option and the longest piece the synthesizer renders
(`styletts2.runtime.synthesizer`, over any executor; torch-free).

Options are checked before any work, so a bad value is an error naming the option rather than a
NaN waveform, an onnxruntime traceback or (speed near 0) an allocation without bound.
"""
from __future__ import annotations

import math

import numpy as np

# name: (lowest, highest, what it is). Inclusive bounds.
OPTION_RANGES: dict[str, tuple[float, float, str]] = {
    "speed": (0.25, 4.0, "speaking rate factor; durations are divided by it"),
    "alpha": (0.0, 1.0, "weight of the sampled acoustic style against the reference's"),
    "beta": (0.0, 1.0, "weight of the sampled prosodic style against the reference's"),
    "blend": (0.0, 1.0, "long-form weight of the previous piece's style"),
    "embedding_scale": (0.0, 10.0, "classifier-free guidance scale of the style sampler"),
    "diffusion_steps": (2, 100, "style sampler schedule length"),
    "tail_frames": (0, 100, "frames added to each piece's last token"),
}
INTEGER_OPTIONS = {"diffusion_steps", "tail_frames"}

# Upstream's LJSpeech notebook lengthens the last token of each sentence it synthesizes by 5 frames
# (`pred_dur[-1] += 5`, as train_second.py's validation audio does); its LibriTTS notebook adds
# none. With these defaults the synthesizer renders the notebooks' waveforms; without them the
# whole waveform differs (the F0/N LSTM reads both directions and the decoder normalises over the
# whole length), not only its end.
NOTEBOOK_TAIL_FRAMES = {False: 5, True: 0}  # by multispeaker


def default_tail_frames(multispeaker: bool) -> int:
    """Frames added to a piece's last token unless the caller says otherwise (the notebooks' value)."""
    return NOTEBOOK_TAIL_FRAMES[bool(multispeaker)]

# Longest piece (sentence or window) in alignment frames: 12000 frames of 600 samples = 300 s at
# 24 kHz, far beyond any sentence at speed >= 0.25. Beyond it synthesis stops with an error.
MAX_FRAMES_PER_PIECE = 12000

# Reference clips whose peak is below this hold no voice to take a style from.
SILENT_REFERENCE_PEAK = 1e-4
# The style encoder's memory grows with the clip (10 minutes took 8 GB on the LJSpeech-size model):
# longer clips give their first this many seconds.
MAX_REFERENCE_SECONDS = 30.0
# Below this a sample rate is a mislabelled file or samples given at the wrong rate (a header
# saying 1 Hz turned 400 samples into 400 s of audio).
MIN_REFERENCE_RATE = 8000
# Float samples beyond this are integer samples given as floats (int16's 32767), not audio in [-1, 1].
MAX_REFERENCE_PEAK = 2.0


def check_option(name: str, value) -> None:
    """ValueError naming the option when `value` is not a finite number in its documented range."""
    low, high, what = OPTION_RANGES[name]
    integer = name in INTEGER_OPTIONS
    kind = "an integer" if integer else "a finite number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or (integer and number != int(number)) \
            or not low <= number <= high:
        raise ValueError(f"{name} must be {kind} in [{low:g}, {high:g}] ({what}), got {value!r}")


def check_options(options) -> None:
    """Check every field of a SynthesisOptions dataclass that has a documented range."""
    for name in OPTION_RANGES:
        if hasattr(options, name):
            check_option(name, getattr(options, name))


def check_token_ids(ids, n_symbols: int) -> None:
    """ValueError unless `ids` is a non-empty flat sequence of integers in [0, n_symbols): an id past
    the symbol table fails inside the text encoder's graph, and a negative one would silently index
    the table from its end."""
    array = np.asarray(ids)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
        raise ValueError(f"token ids must be a non-empty flat sequence of integers, got {array.dtype} "
                         f"of shape {array.shape}")
    outside = array[(array < 0) | (array >= n_symbols)]
    if outside.size:
        raise ValueError(f"token id {int(outside[0])} is outside the model's symbol table [0, {n_symbols - 1}]")


def check_piece_frames(frames: int) -> None:
    if frames > MAX_FRAMES_PER_PIECE:
        raise ValueError(f"this piece would be {frames} frames long, more than the {MAX_FRAMES_PER_PIECE} a piece "
                         "may have: raise speed or split the text into shorter sentences")
