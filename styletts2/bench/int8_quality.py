"""int8 against fp32 on a trained model, scored by the offline evaluator:

    python bench/int8_quality.py --checkpoint runs/learning/stage2/last.pth --teacher runs/learning/teacher

Exports the checkpoint twice (fp32, and `--int8-decoder --int8-weights`), synthesizes the learning
benchmark's held-out sentences through the onnxruntime runtime with several seeds, and scores each
set as the benchmark does: PER against the text and against the recogniser's transcript of the
teacher's clip (`--teacher`: the benchmark's `teacher/heldout_NN.wav`), DNSMOS, total length over
the teacher's. The seeds' spread on fp32 is the noise the int8 difference is read against.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from styletts2.bench.seed_rows import (add_checkpoint_arguments, check_checkpoint_arguments, mean_rows, report,
                                       teacher_clips, write_seed_rows)

FIELDS = (("PER (text)", "per_text"), ("PER (teacher's transcript)", "per"), ("DNSMOS", "dnsmos_ovrl"),
          ("duration ratio", "total_duration_ratio"))
INT8_FLAGS = ("--int8-decoder", "--int8-weights")


def export_both(checkpoint: Path, out: Path) -> dict[str, Path]:
    from styletts2.export import to_onnx

    folders = {"fp32": out / "fp32", "int8": out / "int8"}
    for name, flags in (("fp32", ()), ("int8", INT8_FLAGS)):  # always anew: --out may hold another model's
        if to_onnx.main(["--checkpoint", str(checkpoint), "--out", str(folders[name]), *flags]) != 0:
            raise SystemExit(f"int8_quality: the {name} export of {checkpoint} failed")
    return folders


def score_folders(folders: dict[str, Path], teacher_dir: Path, seeds: int, threads: int) -> list[dict]:
    from styletts2.bench.learning import score, synthesize_export
    from styletts2.data.make_corpus import OOD_SENTENCES
    from styletts2.evaluate import Evaluator

    texts = list(OOD_SENTENCES)
    try:
        teacher = teacher_clips(teacher_dir, len(texts))
    except ValueError as err:
        raise SystemExit(f"int8_quality: {err}") from None
    evaluator = Evaluator(metrics=("per", "dnsmos", "reference"), threads=threads)
    rows = []
    for seed in range(seeds):
        for name, folder in folders.items():
            waves, rate = synthesize_export(folder, texts, threads, seed=seed)
            scores = score(evaluator, waves, rate, texts, teacher)
            rows.append({"export": name, "seed": seed, **{key: scores.get(key) for _, key in FIELDS}})
            print(f"  {name} seed {seed}: " + ", ".join(f"{label} {rows[-1][key]:.3f}" for label, key in FIELDS),
                  flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Mean and spread (sample standard deviation over seeds) per export, and int8 - fp32."""
    lines = ["| export | " + " | ".join(label for label, _ in FIELDS) + " |", "|---" * (len(FIELDS) + 1) + "|"]
    summary = mean_rows(rows, "export", FIELDS)
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, (cells, _) in summary.items()]
    fp32, int8 = summary["fp32"][1], summary["int8"][1]
    lines.append("| int8 - fp32 | " + " | ".join(f"{int8[key] - fp32[key]:+.3f}" for _, key in FIELDS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from styletts2.data.make_corpus import OOD_SENTENCES

    parser = argparse.ArgumentParser(prog="bench/int8_quality.py", description=__doc__.split("\n")[0])
    add_checkpoint_arguments(parser, seeds=3, seeds_help="runtime seeds per export")
    parser.add_argument("--out", type=Path, default=Path("runs/int8_quality"), help="where the two exports go")
    parser.add_argument("--json", type=Path, help="write the rows and the table here")
    args = parser.parse_args(argv)
    check_checkpoint_arguments(parser, args)
    try:  # before the exports, which take minutes
        teacher_clips(args.teacher, len(OOD_SENTENCES))
    except ValueError as err:
        parser.error(str(err))
    rows = score_folders(export_both(args.checkpoint, args.out), args.teacher, args.seeds, args.threads)
    report("bench/int8_quality.py", argv, args, rows, table(rows), write_results)
    return 0


def write_results(path: Path, command: str, rows: list[dict], summary: str, machine: dict) -> None:
    """The rows as JSON at `path`, and a markdown copy (command, machine, summary, every seed) beside it."""
    write_seed_rows(path, command, rows, summary, machine, "export", FIELDS)
