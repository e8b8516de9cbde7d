"""Rows scored per seed (int8 against fp32, the prosody oracle's variants): their mean and spread
per kind, and the JSON and markdown files they are written to."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from styletts2.bench.machine import describe

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
