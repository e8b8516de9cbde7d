"""What the benchmarks that score a trained checkpoint over seeds share (int8 against fp32, the
prosody oracle's variants): their command-line flags, the learning benchmark's teacher clips, the
rows' mean and spread per kind, and the JSON and markdown files the rows are written to."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from styletts2.bench.machine import describe, machine_record

Fields = tuple[tuple[str, str], ...]  # (label, key) per scored column


def mean_rows(rows: list[dict], column: str, fields: Fields) -> dict[str, tuple[list[str], dict[str, float]]]:
    """Per value of `column` (in order of appearance): its cells ("mean ± sample standard deviation
    over seeds") and its means by key."""
    out = {}
    for name in dict.fromkeys(r[column] for r in rows):
        cells, means = [], {}
        for _, key in fields:
            values = [r[key] for r in rows if r[column] == name]
            means[key] = statistics.mean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{means[key]:.3f} ± {spread:.3f}")
        out[name] = cells, means
    return out


def write_seed_rows(path: Path, command: str, rows: list[dict], summary: str, machine: dict, column: str,
                    fields: Fields) -> None:
    """The rows as JSON at `path`, and a markdown copy (command, machine, summary, every seed) beside it."""
    path.write_text(json.dumps({"command": command, "machine": machine, "rows": rows, "table": summary}, indent=1),
                    encoding="utf-8")
    lines = [f"Command: `{command}`  ", f"Machine: {describe(machine)}", "", summary, "", "Per seed:", "",
             f"| {column} | seed | " + " | ".join(label for label, _ in fields) + " |", "|---" * (len(fields) + 2) + "|"]
    lines += [f"| {r[column]} | {r['seed']} | " + " | ".join(f"{r[key]:.3f}" for _, key in fields) + " |" for r in rows]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def add_checkpoint_arguments(parser: argparse.ArgumentParser, seeds: int, seeds_help: str) -> None:
    """The flags of a benchmark that scores a trained checkpoint on the learning benchmark's held-out
    sentences over seeds: --checkpoint, --teacher, --seeds, --threads (see `check_checkpoint_arguments`)."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="a trained checkpoint (ours)")
    parser.add_argument("--teacher", type=Path, required=True, help="the learning benchmark's teacher/ folder")
    parser.add_argument("--seeds", type=int, default=seeds, help=f"{seeds_help} (default {seeds})")
    parser.add_argument("--threads", type=int, default=2)


def check_checkpoint_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error before any work: fewer than one seed, or no checkpoint file."""
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if not args.checkpoint.is_file():
        parser.error(f"no checkpoint {args.checkpoint}")


def teacher_clips(teacher_dir: Path, count: int) -> list[Path]:
    """The learning benchmark's teacher clips of the first `count` held-out sentences, in order;
    ValueError naming the first one missing."""
    clips = [teacher_dir / f"heldout_{i:02d}.wav" for i in range(count)]
    missing = [str(p) for p in clips if not p.exists()]
    if missing:
        raise ValueError(f"no teacher clip {missing[0]} (give the learning benchmark's teacher/ folder)")
    return clips


def report(prog: str, argv: list[str] | None, args: argparse.Namespace, rows: list[dict], summary: str,
           write: Callable[[Path, str, list[dict], str, dict], None]) -> None:
    """Print the summary; with --json, `write` the rows with the command line that made them and the
    machine."""
    print(summary)
    if args.json:
        command = " ".join([f"python {prog}", *(argv if argv is not None else sys.argv[1:])])
        write(args.json, command, rows, summary, machine_record(args.threads))
