"""Command line: print the normalized text, or time the normalizer.

    python -m styletts2.text.normalize "Dr. Smith paid $5.30 at 10:45 p.m." [--language en-gb]
    echo "text" | python -m styletts2.text.normalize -
    python -m styletts2.text.normalize --bench [--chars 10000] [--repeats 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from . import TextNormalizer

# Mixed text for the benchmark: numbers, money, dates, times, abbreviations, markup, prose.
BENCH_TEXT = (
    "On 1/2/2023 at 10:45 p.m., Dr. Smith paid $5.30 for 2.5 kg of apples (about 15% off) at "
    "Main St. and Elm Dr. The <b>1990-1995</b> period saw 1,234,567 visitors; call (555) 123-4567 "
    "or write to info@example.com. Henry VIII lived in the 1500s, the IDE ran at 3.5 GHz, and "
    "the temperature fell to -5°C on January 5, 2023. Mr. and Mrs. Jones arrived at 7am, etc. "
    "It was the 22nd time the team scored 3/4 of its points after the 1st quarter. "
    "Plain prose is most of any real text, and it should cost little to pass through unchanged. "
)


def bench(chars: int, repeats: int, language: str) -> dict:
    """Median and worst wall time of normalizing `chars` characters of BENCH_TEXT, after a warm-up."""
    text = (BENCH_TEXT * (chars // len(BENCH_TEXT) + 1))[:chars]
    normalizer = TextNormalizer(language)
    normalizer(text)  # warm-up: the first call compiles nothing but loads the modules
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        normalizer(text)
        times.append(time.perf_counter() - start)
    return {"chars": chars, "repeats": repeats, "median_ms": 1000 * statistics.median(times),
            "max_ms": 1000 * max(times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m styletts2.text.normalize", description=__doc__.split("\n")[0])
    p.add_argument("text", nargs="?", help="text to normalize ('-': read standard input)")
    p.add_argument("--language", default="en-us", help="espeak-ng language (default en-us)")
    p.add_argument("--bench", action="store_true", help="time the normalizer on mixed text")
    p.add_argument("--chars", type=int, default=10_000, help="benchmark text length (default 10000)")
    p.add_argument("--repeats", type=int, default=20, help="benchmark repeats (default 20)")
    args = p.parse_args(argv)
    if args.bench:
        result = bench(args.chars, args.repeats, args.language)
        print(f"normalized {result['chars']} characters ({args.language}): median {result['median_ms']:.1f} ms, "
              f"max {result['max_ms']:.1f} ms over {result['repeats']} runs")
        return 0
    if args.text is None:
        p.error("give a text, '-' for standard input, or --bench")
    text = sys.stdin.read() if args.text == "-" else args.text
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        print(TextNormalizer(args.language)(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
