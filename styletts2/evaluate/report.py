"""Printing scores: a per-clip table with a mean row, and the JSON written by `--json`."""
from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from ..file_modes import give_ordinary_mode
from .scores import NUMERIC_FIELDS, ClipScores, summarize

# column header and number format per field
COLUMNS = {
    "per": ("PER", "{:.3f}"),
    "per_text": ("PER text", "{:.3f}"),
    "dnsmos_ovrl": ("OVRL", "{:.2f}"),
    "dnsmos_sig": ("SIG", "{:.2f}"),
    "dnsmos_bak": ("BAK", "{:.2f}"),
    "dnsmos_p808": ("P808", "{:.2f}"),
    "similarity": ("SIM", "{:.3f}"),
    "mcd": ("MCD dB", "{:.2f}"),
    "f0_cents": ("F0 cents", "{:.0f}"),
    "duration_ratio": ("dur ratio", "{:.3f}"),
    "duration_s": ("sec", "{:.2f}"),
}
assert set(COLUMNS) == set(NUMERIC_FIELDS)


def table(scores: list[ClipScores], markdown: bool = False) -> str:
    """Per-clip rows and a mean row; columns no clip has are left out."""
    summary = summarize(scores)
    fields = [f for f in NUMERIC_FIELDS if summary[f"{f}_n"]]

    def cells(values: dict) -> list[str]:
        return ["-" if values.get(f) is None else COLUMNS[f][1].format(values[f]) for f in fields]

    rows = [[s.name, *cells(s.as_dict())] for s in scores]
    rows.append(["mean", *cells(summary)])
    header = ["clip", *(COLUMNS[f][0] for f in fields)]
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(row) + " |" for row in lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, rows[:-1]), rule, fmt(rows[-1])])


def versions() -> dict:
    """Versions of the packages whose models made the scores."""
    out = {}
    for package in ("hama", "speechmos", "resemblyzer", "librosa", "onnxruntime"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def write_json(path: str | os.PathLike, scores: list[ClipScores], metrics: tuple[str, ...], source: dict) -> None:
    """{"clips": [...], "mean": summarize(...), "metrics", "source", "versions"}, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": list(metrics), "source": source, "versions": versions(),
               "mean": summarize(scores), "clips": [s.as_dict() for s in scores]}
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as f:
        json.dump(payload, f, indent=1, ensure_ascii=False)
    try:
        give_ordinary_mode(f.name)  # a report as readable as any file written in place
        os.replace(f.name, path)
    except OSError:
        os.unlink(f.name)  # no stray temporary beside the file that could not be written
        raise
