"""The evaluator: runs the chosen metrics over `EvalItem`s, loading each model once, on first use."""
from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable

import numpy as np

from .intelligibility import PhonemeRecogniser, phoneme_error_rate
from .naturalness import Dnsmos
from .phonemes import text_to_recogniser
from .reference import compare
from .scores import ClipScores, EvalItem
from .speaker import INSTALL_HINT, SpeakerEncoder, cosine

METRICS = ("per", "dnsmos", "similarity", "reference")


class ScoreWarning(UserWarning):
    """A metric could not be computed for one clip (the clip's `notes` say the same)."""
_PACKAGES = {"per": ("hama", "pip install hama==1.7.0"),
             "dnsmos": ("speechmos", "pip install speechmos==0.0.1.1"),
             "similarity": ("resemblyzer", INSTALL_HINT)}


class Evaluator:
    """Objective scores of synthesized clips, offline.

    metrics: any of "per" (phoneme error rate), "dnsmos" (DNSMOS P.835/P.808), "similarity"
        (speaker similarity to the reference, or to `speaker_reference`), "reference" (MCD, F0
        error and duration ratio against the item's reference audio).
    speaker_reference: (wave, sample_rate) of the target voice, used for "similarity" on items
        that carry no reference audio of their own.
    threads: onnxruntime intra-op threads for DNSMOS (None: onnxruntime's default).
    f0: compute the F0 error with the other "reference" metrics (pYIN is their slowest part).
    language: espeak-ng language of the texts (for PER against text).
    """

    def __init__(self, metrics: Iterable[str] = METRICS, speaker_reference: tuple[np.ndarray, int] | None = None,
                 threads: int | None = None, f0: bool = True, language: str = "en-us"):
        self.metrics = tuple(dict.fromkeys(metrics))
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
        for metric in self.metrics:  # fail now, not after minutes of scoring
            package, hint = _PACKAGES.get(metric, (None, None))
            if package and importlib.util.find_spec(package) is None:
                raise RuntimeError(f"metric {metric!r} needs the `{package}` package: {hint}")
        self.speaker_reference = speaker_reference
        self.f0 = f0
        self.language = language
        self.recogniser = PhonemeRecogniser()
        self.dnsmos = Dnsmos(threads=threads)
        self.speaker = SpeakerEncoder()
        self._speaker_reference_embedding = None

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> list[str]:
        """Phonemes the recogniser hears in a mono clip (its symbols, folded; no word boundaries)."""
        return self.recogniser.transcribe(wave, sample_rate)

    def score(self, items: Iterable[EvalItem]) -> list[ClipScores]:
        return [self.score_item(item) for item in items]

    def score_item(self, item: EvalItem) -> ClipScores:
        """Scores of one clip. A metric that fails on this clip's audio (ValueError: silence, an
        unknown phoneme) leaves its fields None and says why in `notes`, with a warning; so does
        audio with NaN or infinite samples (a diverged model), for every metric."""
        scores = ClipScores(name=item.name, duration_s=len(item.wave) / item.sample_rate)
        if not np.all(np.isfinite(item.wave)):
            scores.notes.append("the audio holds NaN or infinite samples: not scored")
            warnings.warn(f"{item.name}: {scores.notes[-1]}", ScoreWarning, stacklevel=2)
            return scores
        for metric in self.metrics:
            try:
                getattr(self, f"_{metric}")(item, scores)
            except ValueError as err:
                note = f"{metric}: {err}"
                scores.notes.append(note)
                warnings.warn(f"{item.name}: {note}", ScoreWarning, stacklevel=2)
        return scores

    # One method per metric ----------------------------------------------------------------------

    def _per(self, item: EvalItem, scores: ClipScores) -> None:
        reference = None
        if item.reference is not None:
            reference = self.transcribe(item.reference, item.reference_rate)
            if reference:
                scores.per_against = "reference"
            elif item.text:
                scores.notes.append("per: the recogniser heard nothing in the reference audio; scored against the text")
        if not reference and not item.text:
            raise ValueError("no text, and nothing heard in the reference audio: nothing to score against")
        heard = self.transcribe(item.wave, item.sample_rate)
        # An item without text (a validation clip scored against its recording alone) has no per_text.
        scores.per_text = phoneme_error_rate(text_to_recogniser(item.text, self.language), heard) if item.text else None
        if reference:
            scores.per = phoneme_error_rate(reference, heard)
        else:
            scores.per, scores.per_against = scores.per_text, "text"

    def _dnsmos(self, item: EvalItem, scores: ClipScores) -> None:
        result = self.dnsmos(item.wave, item.sample_rate)
        scores.dnsmos_ovrl, scores.dnsmos_sig, scores.dnsmos_bak, scores.dnsmos_p808 = (
            result.ovrl, result.sig, result.bak, result.p808)

    def _similarity(self, item: EvalItem, scores: ClipScores) -> None:
        if item.reference is not None:
            target = self.speaker.embed(item.reference, item.reference_rate)
        elif self.speaker_reference is not None:
            if self._speaker_reference_embedding is None:
                self._speaker_reference_embedding = self.speaker.embed(*self.speaker_reference)
            target = self._speaker_reference_embedding
        else:
            return  # nothing to compare with: stays None
        embedding = self.speaker.embed(item.wave, item.sample_rate)
        scores.similarity = cosine(embedding, target)

    def _reference(self, item: EvalItem, scores: ClipScores) -> None:
        if item.reference is None:
            return
        result = compare(item.wave, item.sample_rate, item.reference, item.reference_rate, with_f0=self.f0)
        scores.mcd, scores.f0_cents, scores.duration_ratio = result.mcd, result.f0_cents, result.duration_ratio
