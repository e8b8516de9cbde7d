"""Offline objective evaluation of synthesized speech (no network: every model ships in a wheel).

    from styletts2.evaluate import Evaluator, EvalItem, ClipScores, summarize

    ev = Evaluator(metrics=("per", "dnsmos", "similarity", "reference"))  # models load lazily, once
    items = [EvalItem(name="001", wave=wave, sample_rate=24000, text="Hello there.",
                      reference=ref_wave, reference_rate=22050)]         # reference: optional
    scores: list[ClipScores] = ev.score(items)
    scores[0].per, scores[0].dnsmos_ovrl, scores[0].as_dict()
    summarize(scores)          # {"clips": n, "per": mean, ..., "per_n": clips with a PER, ...}
    ev.transcribe(wave, 24000) # the phonemes the recogniser hears, e.g. ['h', 'ɛ', 'l', 'oʊ']

Metrics (`ClipScores` fields; None where a metric was not asked for or has no reference):
- "per"        per: phoneme error rate of hama's phoneme recogniser (edit distance / reference
               length), against its transcript of the reference audio when the item has one
               (per_against="reference"), else against the text's espeak-ng phonemes mapped to
               the recogniser's symbols (per_against="text"; see `phonemes.py`).
- "dnsmos"     dnsmos_ovrl, dnsmos_sig, dnsmos_bak (DNSMOS P.835) and dnsmos_p808 (speechmos).
- "similarity" similarity: cosine of Resemblyzer speaker embeddings with the item's reference
               audio, or with `Evaluator(speaker_reference=(wave, sr))` for items without one.
- "reference"  mcd (dB), f0_cents (RMS, frames voiced in both), duration_ratio (synthesized /
               reference, silence trimmed): all against the item's reference audio, DTW-aligned.
duration_s (the clip's length) is always filled in. A metric that fails on one clip (silence,
NaN audio from a diverged model, an unmapped phoneme) leaves its fields None, says why in the
clip's `notes` and warns (`ScoreWarning`); missing packages and bad arguments raise at once.

Command line: `python -m styletts2.evaluate --texts list.txt --wavs DIR [--references DIR] --json out.json`
(or `--model EXPORTED_DIR` / `--checkpoint CKPT` to synthesize the texts first).
Calibration on espeak-ng audio: `python -m styletts2.evaluate.calibrate`.
"""
from .evaluator import METRICS, Evaluator, ScoreWarning
from .inputs import InputError
from .intelligibility import edit_distance, phoneme_error_rate
from .scores import ClipScores, EvalItem, summarize

__all__ = ["METRICS", "ClipScores", "EvalItem", "Evaluator", "InputError", "ScoreWarning", "edit_distance",
           "phoneme_error_rate", "summarize"]
