"""The main job on a built-in default, end to end on the CPU in minutes (`make demo`):

    tiny espeak-ng corpus -> stage 1 -> stage 2 -> ONNX export -> a wav from the onnxruntime runtime

The model is tiny and trains for a few epochs, so the wav shows the plumbing, not quality. Each step
is the same command a user would run; they are printed before they run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .gin_paths import REPO_ROOT

TEXT = "StyleTTS two turns text into speech. This sentence was spoken by a tiny demo model."


def _run(step: str, args: list[str], timings: dict[str, float]) -> None:
    print(f"\n== {step}: {' '.join(args)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT)
    timings[step] = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed with exit code {result.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletts2.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/demo", help="folder for the corpus, runs, export and wav")
    parser.add_argument("--clips", type=int, default=24, help="clips in the espeak-ng corpus")
    parser.add_argument("--text", default=TEXT, help="text to synthesize at the end")
    args = parser.parse_args(argv)

    out = (Path.cwd() / args.out).resolve()
    corpus, stage1, stage2, exported = out / "corpus", out / "stage1", out / "stage2", out / "exported"
    data = [f"Trainer.train_data = '{corpus / 'train_list.txt'}'", f"Trainer.val_data = '{corpus / 'val_list.txt'}'",
            f"Trainer.data_root = '{corpus}'", f"Trainer.ood_data = '{corpus / 'OOD_texts.txt'}'"]
    params = [arg for binding in data for arg in ("--gin_param", binding)]
    timings: dict[str, float] = {}

    if not (corpus / "metadata.csv").exists():
        _run("corpus", ["-m", "styletts2.data.make_corpus", str(corpus), "--n", str(args.clips)], timings)
    _run("stage 1", ["runner.py", "--gin", "gin/tiny_stage1.gin", "--run_dir", str(stage1), *params], timings)
    _run("stage 2", ["runner.py", "--gin", "gin/tiny_stage2.gin", "--run_dir", str(stage2), *params,
                     "--gin_param", f"Stage2.first_stage_checkpoint = '{stage1 / 'last.pth'}'"], timings)
    _run("export", ["export/to_onnx.py", "--checkpoint", str(stage2 / "last.pth"), "--out", str(exported)], timings)
    wav = out / "demo.wav"
    _run("synthesize", ["-m", "styletts2.runtime", args.text, "-m", str(exported), "-o", str(wav), "--seed", "0"],
         timings)

    print("\n== demo finished: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f" (total {sum(timings.values()):.0f} s)")
    print(f"   wav: {wav}\n   onnx model: {exported}\n   checkpoints: {stage1}/last.pth, {stage2}/last.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
