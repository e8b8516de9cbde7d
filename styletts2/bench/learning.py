"""Learning benchmark: how fast a model trained here from nothing learns to speak, on this machine.

    python bench/learning.py --minutes 60 [--out runs/learning] [--clips 160] [--sentences wide] [--threads 2]
                             [--plbert-text pool|clips] [--seeds 3] [--aligner-check-epochs 35]
                             [--gin_param "aligner:Stage0Aligner.ctc_weight = 3.0" ...] [--stage0 DIR]

From an empty folder:
1. a corpus spoken by one espeak-ng voice (`make_corpus`), and the same voice reading held-out
   sentences that are never trained on (the "teacher" clips);
2. stage 0 (aligner, pitch extractor, PL-BERT), stage 1 and stage 2 with the CPU-sized experiment
   files in gin/learning/, each given a share of the wall-clock budget (`Trainer.max_minutes`); an
   aligner still on its CTC plateau after `--aligner-check-epochs` starts again with the next seed;
3. stage 2 runs in segments; after each, the checkpoint is exported to ONNX and the held-out
   sentences are synthesized through the onnxruntime runtime (the path users ship) and scored by
   the offline evaluator (`styletts2.evaluate`): phoneme error rate against the recogniser's
   transcript of the teacher clip, DNSMOS, and the duration ratio to the teacher clip. Twice: with
   styles sampled by the style diffusion (what the runtime does by default; the mean over `--seeds`
   runtime seeds, whose spread is about 0.02-0.04 of PER on 12 sentences), and with both styles
   read from one training clip (`alpha = beta = 0`, seed 0), which tells the diffusion's share apart.
With `--stage0 DIR` (the `--out` folder of an earlier run) step 2 skips stage 0 and loads that run's
aligner, pitch extractor and PL-BERT: the curve of stages 1 and 2 alone (on a corpus made the same
way, so the earlier run's corpus of the same voice and pool).
The teacher clips are scored the same way against the text (their own transcript would give them 0
by construction), so "PER within 0.10 of the teacher's" is one subtraction.

Writes `<results>/learning.json`, `learning.md` (table, command, machine, each stage's minutes and
steps) and `learning.png` (PER, DNSMOS and duration ratio against minutes). Every command it runs is
printed first.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from styletts2.bench.machine import describe, machine_record
from styletts2.data.make_corpus import SENTENCE_POOLS, TEXT_POOL_FILE
from styletts2.errors import folder_problem
from styletts2.gin_paths import REPO_ROOT
from styletts2.train.recipe import (ALIGNER_CHECK_EPOCHS, ALIGNER_STUCK_PER, SHARES, STAGE0_GIVEN_SHARES,
                                    STAGE0_PARTS, STAGES, Recipe, RecipeError, command_line_shares,
                                    describe_stages, parse_stage_bindings)

REPO = REPO_ROOT  # the checkout: runs/ and bench/results/ are under it


@dataclass
class Row:
    minutes: float  # training minutes spent when the checkpoint was scored (all stages)
    stage: str
    per_text: float | None  # phoneme error rate against the text (the teacher's is its floor)
    per: float | None  # against the recogniser's transcript of the teacher's clip of the same text
    dnsmos: float | None
    duration_ratio: float | None  # total synthesized length / total teacher length
    style: str = "sampled"  # "sampled" by the style diffusion, or "clip": read from a training clip
    seeds: int = 1  # runtime seeds the scores are the mean of
    per_text_sd: float | None = None  # the seeds' sample standard deviation of per_text


def mean_over_seeds(summaries: list[dict]) -> tuple[dict, float | None]:
    """The seeds' mean of every score in `score`'s summaries (a key missing or None in one seed is
    None), and the sample standard deviation of per_text (None for one seed)."""
    keys = dict.fromkeys(key for summary in summaries for key in summary)
    mean = {}
    for key in keys:
        values = [summary.get(key) for summary in summaries]
        mean[key] = None if any(v is None for v in values) else float(np.mean(values))
    per_text = [summary.get("per_text") for summary in summaries]
    spread = (float(np.std(per_text, ddof=1)) if len(per_text) > 1 and None not in per_text else None)
    return mean, spread


def make_data(out: Path, clips: int, sentences: str = "wide") -> tuple[Path, list[str], list[Path]]:
    """The corpus, and the teacher's clips of the held-out sentences (the same speaker's settings)."""
    from styletts2.audio.io import save_wav
    from styletts2.data.espeak_synth import EspeakSynthesizer
    from styletts2.data.make_corpus import OOD_SENTENCES, SAMPLE_RATE, make_corpus, speak_as_corpus

    corpus = out / "corpus"
    if not (corpus / "metadata.csv").exists():
        make_corpus(corpus, n=clips, seed=0, sentences=sentences)
    texts, teacher = list(OOD_SENTENCES), []
    synth = EspeakSynthesizer()  # one instance, in order: espeak-ng's output depends on its call history
    for i, text in enumerate(texts):
        path = out / "teacher" / f"heldout_{i:02d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            save_wav(path, speak_as_corpus(text, synth=synth), SAMPLE_RATE)
        teacher.append(path)
    return corpus, texts, teacher


def score(evaluator, waves: list[np.ndarray], rate: int, texts: list[str], teacher: list[Path]) -> dict:
    from styletts2.audio.io import load_wav
    from styletts2.evaluate import EvalItem, summarize

    items = []
    for i, (wave, text, ref_path) in enumerate(zip(waves, texts, teacher, strict=True)):
        reference, ref_rate = load_wav(ref_path, rate)
        items.append(EvalItem(f"heldout_{i:02d}", wave, rate, text, reference=reference, reference_rate=ref_rate))
    scores = evaluator.score(items)
    summary = summarize(scores)
    total = sum(len(w) for w in waves) / rate
    teacher_total = sum(len(load_wav(p, rate)[0]) for p in teacher) / rate
    summary["total_duration_ratio"] = total / teacher_total
    return summary


def synthesize_export(export_dir: Path, texts: list[str], threads: int,
                      reference: Path | None = None, seed: int = 0) -> tuple[list[np.ndarray], int]:
    """The held-out texts through the runtime: styles sampled by the style diffusion, or (reference)
    both styles read from that clip alone (alpha = beta = 0), which separates what the diffusion
    has learnt from what the rest of the model has. No tail frames: the duration ratio measures
    the learnt durations alone (and stays comparable with runs from before the option existed)."""
    from styletts2.runtime.synthesizer import Synthesizer

    synth = Synthesizer(export_dir, providers="cpu", threads=threads)
    if reference is None:
        return [synth.synthesize(text, seed=seed, tail_frames=0) for text in texts], synth.sample_rate
    return ([synth.synthesize(text, reference=str(reference), seed=seed, alpha=0.0, beta=0.0, tail_frames=0)
             for text in texts], synth.sample_rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/learning.py", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget, all stages")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "learning", help="working folder (new)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where the table goes")
    parser.add_argument("--clips", type=int, default=160, help="clips in the training corpus")
    parser.add_argument("--sentences", default="wide", choices=sorted(SENTENCE_POOLS),
                        help="the corpus's sentence pool (make_corpus.SENTENCE_POOLS; default wide)")
    parser.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads")
    parser.add_argument("--segments", type=int, default=4, help="stage-2 segments, each exported and scored")
    parser.add_argument("--shares", default="", help="stages' shares of the budget before stage 2, e.g. "
                        "'aligner=0.18,stage1=0.44' (default " + ",".join(f"{k}={v:g}" for k, v in SHARES.items())
                        + f", with --stage0 {STAGE0_GIVEN_SHARES}; stage 2 gets the rest)")
    parser.add_argument("--plbert-text", default="pool", choices=("pool", "clips"),
                        help="PL-BERT's training text: the sentence pool less the validation clips' (the "
                             "corpus's text_pool.txt, default) or the training clips' transcripts only")
    parser.add_argument("--seeds", type=int, default=3,
                        help="runtime seeds the sampled-style scores of each export are the mean of (default 3)")
    parser.add_argument("--aligner-clips", type=int, default=None,
                        help="train the aligner on the first N training clips only (default: all); the later "
                             "stages use every clip")
    parser.add_argument("--aligner-check-epochs", type=int, default=ALIGNER_CHECK_EPOCHS,
                        help="after this many epochs, an aligner whose validation CTC PER is above "
                             f"{ALIGNER_STUCK_PER:g} (still on its CTC plateau) starts again with the next seed "
                             f"for the minutes left (default {ALIGNER_CHECK_EPOCHS}; 0: no check)")
    parser.add_argument("--gin_param", action="append", default=[], metavar="STAGE:BINDING",
                        help="a gin binding for one stage's command, e.g. 'aligner:Stage0Aligner.ctc_weight = 3.0' "
                             f"(repeatable; stages: {', '.join(STAGES)}; stage 2's apply to every segment)")
    parser.add_argument("--stage0", type=Path, metavar="DIR",
                        help="the --out folder of an earlier run: load its aligner, pitch extractor and PL-BERT "
                             "instead of training them, and spend the budget on stages 1 and 2")
    return parser


def parse_arguments(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, float], dict[str, list[str]]]:
    """The command line, its shares and its per-stage bindings; a usage error (exit 2) before any
    work for anything the run could not use."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_numbers(parser, args)
    for option, folder in (("--out", args.out), ("--results", args.results)):
        problem = folder_problem(folder)
        if problem:
            parser.error(f"{option} {folder}: {problem}")
    given = STAGE0_PARTS if args.stage0 is not None else ()
    try:
        shares = command_line_shares(args.shares, "", stage0_given=bool(given))
    except ValueError as err:
        parser.error(f"--shares: {err}")
    try:
        bindings = parse_stage_bindings(args.gin_param)
    except ValueError as err:
        parser.error(f"--gin_param: {err}")
    unused = sorted(set(bindings) & set(given))
    if unused:
        parser.error(f"--gin_param: {', '.join(unused)} does not train with --stage0 (its part is loaded)")
    if given and args.aligner_clips is not None:
        parser.error("--aligner-clips sets the aligner's training clips; with --stage0 it does not train")
    if args.aligner_clips is not None and not 1 <= args.aligner_clips <= args.clips:
        parser.error(f"--aligner-clips must lie between 1 and --clips ({args.clips}), got {args.aligner_clips}")
    if args.aligner_check_epochs < 0:
        parser.error("--aligner-check-epochs must be at least 0 (0: no check)")
    if (args.out / "stage2").exists():
        parser.error(f"{args.out} holds an earlier run; give a new --out (the benchmark starts from nothing)")
    try:
        make_recipe(args, shares, bindings, args.out.resolve()).check_stage0()  # before the corpus is made
    except RecipeError as err:
        parser.error(f"--stage0: {err}")
    return args, shares, bindings


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The numeric options, each refused (a usage error) outside what the run can use: --segments 0
    divided by zero after most of the budget was spent, and -1 skipped stage 2 and scored nothing."""
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    # at least one training and one validation clip (make_corpus holds one in ten out)
    for option, value, least in (("--threads", args.threads, 1), ("--clips", args.clips, 2),
                                 ("--segments", args.segments, 1), ("--seeds", args.seeds, 1)):
        if value < least:
            parser.error(f"{option} must be at least {least}, got {value}")


def make_recipe(args: argparse.Namespace, shares: dict[str, float], bindings: dict[str, list[str]],
                out: Path) -> Recipe:
    """The recipe the command line asks for, over the corpus `make_data` writes under `out`."""
    corpus = out / "corpus"
    return Recipe(corpus, out, args.minutes, threads=args.threads, shares=shares, aligner_clips=args.aligner_clips,
                  bindings=bindings, plbert_text=corpus / TEXT_POOL_FILE if args.plbert_text == "pool" else None,
                  aligner_check_epochs=args.aligner_check_epochs or None,  # 0: no check
                  stage0=None if args.stage0 is None else args.stage0.resolve())


def main(argv: list[str] | None = None) -> int:
    args, shares, bindings = parse_arguments(argv)

    from styletts2.audio.io import load_wav
    from styletts2.data.make_corpus import first_clip
    from styletts2.evaluate import Evaluator

    out = args.out.resolve()
    corpus, texts, teacher = make_data(out, args.clips, args.sentences)
    evaluator = Evaluator(metrics=("per", "dnsmos", "reference"), threads=args.threads)
    teacher_scores = score(evaluator, [load_wav(p, 24000)[0] for p in teacher], 24000, texts, teacher)
    print(f"teacher: PER against the text {teacher_scores['per_text']:.3f}, DNSMOS {teacher_scores['dnsmos_ovrl']:.2f}",
          flush=True)

    machine = machine_record(args.threads)  # before training: its load average is the machine's own
    clip = first_clip(corpus)  # a training clip of the same voice, for the clip-style scores
    recipe = make_recipe(args, shares, bindings, out)
    rows, started = [], time.time()

    def after_segment(index: int, checkpoint: Path) -> None:
        export = out / f"export_{index}"
        recipe_args = ["export/to_onnx.py", "--checkpoint", str(checkpoint), "--out", str(export)]
        print("$ python " + " ".join(recipe_args), flush=True)
        with open(recipe.log, "a", encoding="utf-8") as log:
            result = subprocess.run([sys.executable, *recipe_args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise RecipeError(f"export of {checkpoint} failed with exit code {result.returncode}; see {recipe.log}")
        for style, reference, seeds in (("sampled", None, args.seeds), ("clip", clip, 1)):
            s, spread = mean_over_seeds([score(evaluator, *synthesize_export(export, texts, args.threads, reference,
                                                                             seed), texts, teacher)
                                         for seed in range(seeds)])
            rows.append(Row(round(recipe.spent, 2), f"stage 2, segment {index + 1}", s.get("per_text"), s.get("per"),
                            s.get("dnsmos_ovrl"), s.get("total_duration_ratio"), style, seeds, spread))
            print(f"   scored after {recipe.spent:.1f} min: {rows[-1]}", flush=True)
        write_results(args, rows, teacher_scores, time.time() - started, recipe.timings, recipe.steps,
                      machine, recipe.aligner_restarts)  # partial too

    try:
        recipe.run(segments=args.segments, after_segment=after_segment)
    except RecipeError as err:
        print(f"learning: {err}", file=sys.stderr)
        return 1
    return 0


def write_results(args, rows: list[Row], teacher: dict, seconds: float, stage_minutes: dict[str, float],
                  stage_steps: dict[str, int], machine: dict, aligner_restarts: list[float] = ()) -> None:
    """learning.json, learning.md and learning.png; `aligner_restarts`: the validation CTC PER of each
    aligner run set aside at its check (`Recipe.aligner_restarts`)."""
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    command = (f"python bench/learning.py --minutes {args.minutes:g} --clips {args.clips} "
               f"--sentences {args.sentences} --threads {args.threads} --segments {args.segments} "
               f"--plbert-text {args.plbert_text} --seeds {args.seeds}"
               + (f" --shares {args.shares}" if args.shares else "")
               + (f" --aligner-clips {args.aligner_clips}" if args.aligner_clips else "")
               + (f" --aligner-check-epochs {args.aligner_check_epochs}"
                  if args.aligner_check_epochs != ALIGNER_CHECK_EPOCHS else "")
               + "".join(f" --gin_param {shlex.quote(item)}" for item in args.gin_param)
               + (f" --stage0 {shlex.quote(str(args.stage0))}" if args.stage0 is not None else ""))
    payload = {"command": command, "machine": machine, "wall_seconds": seconds, "stage_minutes": stage_minutes,
               "stage_steps": stage_steps, "aligner_restarts": list(aligner_restarts), "teacher": teacher,
               "rows": [vars(r) for r in rows]}
    (results / "learning.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def fmt(x):
        return "-" if x is None else f"{x:.3f}"

    restarts = [f"Aligner restarted: its run with validation CTC PER {', '.join(f'{p:.2f}' for p in aligner_restarts)} "
                f"after {args.aligner_check_epochs} epochs was set aside (the aligner's minutes include it, its "
                "steps are the restart's)  "] if aligner_restarts else []
    lines = [f"Command: `{command}`  ", f"Machine: {describe(machine)}  ",
             f"Stages: {describe_stages(stage_minutes, stage_steps)}  ", *restarts, "",
             "| minutes | checkpoint | style | PER (text) | PER - teacher's | PER (teacher's transcript) | DNSMOS | "
             "duration ratio |", "|---|---|---|---|---|---|---|---|",
             f"| - | teacher (espeak-ng) | - | {fmt(teacher.get('per_text'))} | 0 | 0 | "
             f"{fmt(teacher.get('dnsmos_ovrl'))} | 1 |"]
    for r in rows:
        gap = None if r.per_text is None or teacher.get("per_text") is None else r.per_text - teacher["per_text"]
        per_text = fmt(r.per_text) + ("" if r.per_text_sd is None else f" ± {r.per_text_sd:.3f}")
        lines.append(f"| {r.minutes:.1f} | {r.stage} | {r.style} | {per_text} | {fmt(gap)} | {fmt(r.per)} "
                     f"| {fmt(r.dnsmos)} | {fmt(r.duration_ratio)} |")
    seeds = max((r.seeds for r in rows if r.style == "sampled"), default=1)
    if seeds > 1:
        lines += ["", f"Sampled styles: the mean over {seeds} runtime seeds (PER ± the seeds' standard deviation); "
                      "a clip's styles: seed 0."]
    (results / "learning.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(rows, teacher, results / "learning.png")
    print("\n".join(lines))


def plot(rows: list[Row], teacher: dict, path: Path) -> None:
    """Three small panels (PER, DNSMOS, duration ratio against minutes), drawn with Pillow."""
    from PIL import Image, ImageDraw

    panels = (("PER", "per_text", (0.0, 1.2), teacher.get("per_text")), ("DNSMOS", "dnsmos", (1.0, 4.0),
              teacher.get("dnsmos_ovrl")), ("duration ratio", "duration_ratio", (0.0, 6.0), 1.0))
    width, height, pad = 320, 240, 36
    image = Image.new("RGB", (width * len(panels), height), "white")
    draw = ImageDraw.Draw(image)
    x_max = max([r.minutes for r in rows] + [1.0])
    for k, (title, field, (lo, hi), target) in enumerate(panels):
        left = k * width

        def xy(minutes, value, left=left, lo=lo, hi=hi):
            x = left + pad + (width - 2 * pad) * minutes / x_max
            y = height - pad - (height - 2 * pad) * (min(max(value, lo), hi) - lo) / (hi - lo)
            return x, y

        draw.rectangle([left + pad, pad, left + width - pad, height - pad], outline="black")
        draw.text((left + pad, 8), f"{title} vs minutes (0-{x_max:.0f})", fill="black")
        draw.text((left + 4, pad - 4), f"{hi:g}", fill="black")
        draw.text((left + 4, height - pad - 8), f"{lo:g}", fill="black")
        if target is not None:
            draw.line([xy(0, target), xy(x_max, target)], fill="green")
        for style, colour in (("sampled", "blue"), ("clip", "orange")):
            points = [xy(r.minutes, getattr(r, field)) for r in rows
                      if getattr(r, field) is not None and r.style == style]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((8, height - 14), "blue: sampled styles; orange: styles from a training clip; green: teacher",
              fill="black")
    image.save(path)


if __name__ == "__main__":
    sys.exit(main())
