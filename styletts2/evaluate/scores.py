"""What the evaluator takes (`EvalItem`) and gives back (`ClipScores`, `summarize`)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

# numeric ClipScores fields, in table order
NUMERIC_FIELDS = ("per", "per_text", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "similarity", "mcd",
                  "f0_cents", "duration_ratio", "duration_s")


@dataclass
class EvalItem:
    """One clip to score: mono float32 `wave` at `sample_rate`, the `text` it should say, and
    optionally reference audio of the same text (natural speech, or another system's). `text` may
    be empty when there is reference audio: PER is then scored against its transcript alone."""

    name: str
    wave: np.ndarray
    sample_rate: int
    text: str
    reference: np.ndarray | None = None
    reference_rate: int | None = None

    def __post_init__(self):
        # a NaN wave is allowed: a diverged model's output is reported as unscored, not an error
        self.wave = _mono(self.wave, f"{self.name}: wave", finite=False)
        if self.reference is not None:
            self.reference = _mono(self.reference, f"{self.name}: reference")
            if self.reference_rate is None:
                raise ValueError(f"{self.name}: reference audio given without reference_rate")


def _mono(wave, what: str, finite: bool = True) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"{what} must be a non-empty mono array [samples], got shape {wave.shape}")
    if finite and not np.all(np.isfinite(wave)):
        raise ValueError(f"{what} holds NaN or infinite samples")
    return wave


@dataclass
class ClipScores:
    """Scores of one clip; a field is None where its metric was not asked for or not computable.

    per: phoneme error rate (0 = perfect; can exceed 1), against `per_against`: "reference" (the
        recogniser's transcript of the reference audio) or "text" (the text's espeak-ng phonemes).
    per_text: the same transcript's error rate against the text's phonemes, whatever `per_against`
        is: a model and its teacher are compared on it (the teacher's `per` against its own
        transcript is 0 by construction).
    dnsmos_*: DNSMOS P.835 overall / signal / background and P.808 opinion scores (1-5).
    similarity: cosine similarity of speaker embeddings with the reference (0-1).
    mcd: mel cepstral distortion to the reference (dB, DTW-aligned); f0_cents: RMS F0 error in
        cents on frames voiced in both; duration_ratio: synthesized / reference length, silence
        trimmed. duration_s: the clip's length in seconds.
    notes: why a metric that was asked for is None for this clip.
    """

    name: str
    per: float | None = None
    dnsmos_ovrl: float | None = None
    dnsmos_sig: float | None = None
    dnsmos_bak: float | None = None
    similarity: float | None = None
    mcd: float | None = None
    f0_cents: float | None = None
    duration_ratio: float | None = None
    duration_s: float | None = None
    dnsmos_p808: float | None = None
    per_against: str | None = None
    per_text: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(scores: list[ClipScores]) -> dict:
    """Mean of each numeric field over the clips that have it (None ignored; a field no clip has is
    None), plus "clips": the number of clips and "<field>_n": how many clips each mean covers."""
    summary: dict = {"clips": len(scores)}
    for name in NUMERIC_FIELDS:
        values = [getattr(s, name) for s in scores if getattr(s, name) is not None]
        values = [v for v in values if not math.isnan(v)]
        summary[name] = float(np.mean(values)) if values else None
        summary[f"{name}_n"] = len(values)
    return summary
