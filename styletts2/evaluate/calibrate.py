"""Calibration: what the scores read on audio of known quality, all made here with espeak-ng.

    python -m styletts2.evaluate.calibrate [--sentences 10] [--json calibration.json]

Conditions, each on the same sentences (Harvard sentences, list 1):
  en-us          espeak-ng's American voice: also the reference audio for every condition, so its
                 reference metrics are the trivial floor (PER 0, MCD 0, similarity 1)
  en-us 140 wpm  the same voice, slower (duration ratio ~1.25; MCD/F0 after DTW stay small)
  en-gb+f3       another espeak-ng voice (British, female variant) on the same texts
  reversed       the en-us audio played backwards (speech-like spectrum, no words)
  noise          white noise of the same length (std 0.1)
"PER text" scores each clip against the text's phonemes (no reference audio), "PER ref" against
the recogniser's transcript of the en-us clip. Prints a markdown table of means per condition.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
]

CONDITIONS = ("en-us", "en-us 140 wpm", "en-gb+f3", "reversed", "noise")
COLUMNS = [("PER text", "per_text", "{:.3f}"), ("PER ref", "per", "{:.3f}"), ("OVRL", "dnsmos_ovrl", "{:.2f}"),
           ("SIG", "dnsmos_sig", "{:.2f}"), ("BAK", "dnsmos_bak", "{:.2f}"), ("P808", "dnsmos_p808", "{:.2f}"),
           ("SIM", "similarity", "{:.3f}"), ("MCD dB", "mcd", "{:.2f}"), ("F0 cents", "f0_cents", "{:.0f}"),
           ("dur ratio", "duration_ratio", "{:.3f}")]


def make_clips(sentences: list[str], seed: int = 0) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Condition -> one (wave, sample rate) per sentence."""
    from ..data.espeak_synth import EspeakSynthesizer

    espeak = EspeakSynthesizer()  # a private instance: espeak-ng output depends on earlier calls
    rng = np.random.default_rng(seed)
    clips: dict[str, list] = {c: [] for c in CONDITIONS}
    for text in sentences:
        wave, sr = espeak.synthesize(text, "en-us")
        clips["en-us"].append((wave, sr))
        clips["en-us 140 wpm"].append(espeak.synthesize(text, "en-us", rate=140))
        clips["en-gb+f3"].append(espeak.synthesize(text, "en-gb+f3"))
        clips["reversed"].append((wave[::-1].copy(), sr))
        clips["noise"].append(((0.1 * rng.standard_normal(len(wave))).astype(np.float32), sr))
    return clips


def calibrate(sentences: list[str] = SENTENCES, threads: int | None = 1, progress=None) -> dict[str, dict]:
    """Condition -> mean scores (summarize's keys, plus "per_text")."""
    from .evaluator import Evaluator
    from .scores import EvalItem, summarize

    clips = make_clips(sentences)
    no_reference = Evaluator(("per", "dnsmos"), threads=threads)
    with_reference = Evaluator(("per", "similarity", "reference"), threads=threads)
    results = {}
    for condition in CONDITIONS:
        start = time.perf_counter()
        plain, referenced = [], []
        for index, (text, (wave, sr)) in enumerate(zip(sentences, clips[condition])):
            reference, reference_rate = clips["en-us"][index]
            plain.append(EvalItem(f"{index:02d}", wave, sr, text))
            referenced.append(EvalItem(f"{index:02d}", wave, sr, text, reference, reference_rate))
        mean = summarize(with_reference.score(referenced))
        text_mean = summarize(no_reference.score(plain))
        mean.update({k: v for k, v in text_mean.items() if k.startswith("dnsmos")})
        mean["per_text"] = text_mean["per"]
        results[condition] = mean
        if progress:
            progress(f"{condition}: {time.perf_counter() - start:.1f} s")
    return results


def markdown(results: dict[str, dict]) -> str:
    rows = [["condition", *(c[0] for c in COLUMNS)], ["---"] * (len(COLUMNS) + 1)]
    for condition, mean in results.items():
        rows.append([condition, *("-" if mean.get(key) is None else fmt.format(mean[key]) for _, key, fmt in COLUMNS)])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m styletts2.evaluate.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=len(SENTENCES), help=f"how many (1-{len(SENTENCES)})")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime and torch threads")
    p.add_argument("--json", help="write the means per condition as JSON here")
    args = p.parse_args(argv)
    if not 1 <= args.sentences <= len(SENTENCES):
        print(f"error: --sentences must be 1-{len(SENTENCES)}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    results = calibrate(SENTENCES[:args.sentences], args.threads,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(markdown(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
