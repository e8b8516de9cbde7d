"""The main job on a built-in default, from nothing, on the CPU in about ten minutes (`make demo`):

    espeak-ng corpus -> stage 0 (aligner, pitch extractor, PL-BERT) -> stage 1 -> stage 2
    -> ONNX export -> a wav from the onnxruntime runtime -> its scores from the offline evaluator

The training is the learning benchmark's recipe (`styletts2/train/recipe.py`, gin/learning/) on a
shorter budget. Each step is the command a user would run, printed before it runs. At the end the
wav is scored beside espeak-ng's own reading of the same text by the same voice: the phoneme error
rate from an offline recogniser, DNSMOS and the length.

With `--stage0 DIR` (the `--out` folder of an earlier demo or learning-benchmark run) the stage-0
parts are loaded from there, as upstream's stage 1 loads the aligner, pitch extractor and PL-BERT
it ships, and the whole budget goes to stages 1 and 2.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .data.make_corpus import SENTENCE_POOLS
from .gin_paths import REPO_ROOT
from .train.recipe import STAGE0_GIVEN_SHARES

# One of the pool's sentences: in the default 96-clip corpus a training clip (SPK00-0010), so the
# demo hears what 9 minutes learn of a sentence the model has trained on (README, Quick start).
TEXT = "The kettle whistled while the rain tapped against the kitchen window."
# The aligner needs a few hundred steps to leave its CTC plateau, which the benchmark's 12 % of 9
# minutes does not give it; 22 % gives it 400-500 (which leave the plateau, yet place word starts
# further from espeak-ng's than a uniform split: bench/README.md, "The demo"). At the benchmark's
# rate of 2e-3 it stayed on the plateau after 560 steps on this corpus in two seeds, at 1e-3 it left
# it after 300-400 (the hour's aligner keeps 2e-3, which places word starts better given 1,700
# steps). A larger share (40 %, at 2e-3) only took minutes from stage 1 (README, Quick start).
# Without the CNN blocks' dropout (upstream's 0.2) the aligner makes 25 % more steps in its 2 minutes
# and is about twice as sure of each phoneme (attention on its monotonic path 0.67 against 0.35), and
# stage 1 decodes the held-out sentences with the teacher's prosody at PER 0.63 against 0.72 (with
# the model's own, 0.80 against 0.83; every stage's seed 1: 0.76 against 0.84; bench/README.md,
# "The demo"). Stage 1 reads the alignments in eval mode, so the binding matters in stage 0 alone.
# The attention decoder's dropout and unknown-token masking stay: with those off too, the aligner
# ended at validation CTC PER 0.6 in two seeds of two.
DEMO_SHARES = "aligner=0.22,pitch=0.03,plbert=0.02,stage1=0.48"
DEMO_BINDINGS = {"aligner": ["Stage0Aligner.lr = 1e-3", "ASRCNN.dropout_p = 0.0"]}  # after the recipe's own


def _run(step: str, args: list[str], timings: dict[str, float]) -> None:
    print(f"\n== {step}: python {shlex.join(args)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT)
    timings[step] = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed with exit code {result.returncode}")


def text_status(corpus: Path, text: str) -> str:
    """Where `text` sits in a `make_corpus` folder: 'training', 'validation' or 'held out' (in neither
    list), so that the demo says whether its wav is a sentence the model trained on."""
    from .data.readers import read_list

    ids = {line.split("|", 1)[0] for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
           if line.split("|")[1:2] == [text]}
    for name, status in (("train_list.txt", "training"), ("val_list.txt", "validation")):
        if ids & {record.wav.stem for record in read_list(corpus / name)}:
            return status
    return "held out"


def speakable(text: str) -> None:
    """Raise ValueError when the runtime would refuse `text`: nothing to say once normalized (as the
    exported model's text_normalizer will) and phonemized."""
    from .text.normalize import TextNormalizer
    from .text.phonemizer import EspeakPhonemizer
    from .text.pieces import text_to_token_pieces
    from .text.sentences import BERT_MAX_POSITIONS
    from .text.tokenizer import Tokenizer

    phonemizer = EspeakPhonemizer()
    text_to_token_pieces(text, phonemizer, Tokenizer(), max_positions=BERT_MAX_POSITIONS,
                         normalize=TextNormalizer(phonemizer.language))


def closing_lines(timings: dict[str, float], wav: Path, clip_wav: Path, exported: Path, log: Path,
                  text: str) -> list[str]:
    """The demo's last words: what each step took, where its files are, and the way to a model that
    speaks, since 9 minutes on a CPU give audio the recogniser only begins to hear."""
    return ["\n== demo finished: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + f" (total {sum(timings.values()):.0f} s)",
            f"   wav: {wav} (styles from a clip: {clip_wav})", f"   onnx model: {exported}", f"   training log: {log}",
            "   a model that speaks takes the learning benchmark's hour (held-out PER 0.31-0.36 on a 2-core CPU; "
            "README, Quick start):",
            f"   python bench/learning.py --minutes 60 && python -m styletts2.runtime {shlex.quote(text)} "
            "-m runs/learning/export_3 -o hour.wav"]


def _scores(text: str, wavs: dict[str, Path]) -> None:
    from .audio.io import load_wav
    from .evaluate import EvalItem, Evaluator

    evaluator = Evaluator(metrics=("per", "dnsmos"))
    items = [EvalItem(name, *load_wav(path, 24000), text) for name, path in wavs.items()]
    print("\n== scores (python -m styletts2.evaluate): phoneme error rate against the text, DNSMOS overall")
    for item, s in zip(items, evaluator.score(items), strict=True):
        per = "-" if s.per is None else f"{s.per:.2f}"
        mos = "-" if s.dnsmos_ovrl is None else f"{s.dnsmos_ovrl:.2f}"
        print(f"   {item.name:22s} PER {per:>5s}  DNSMOS {mos:>5s}  {s.duration_s:.2f} s")
    print("   (PER 1 = nothing recognised; espeak-ng's own audio scores about 0.28, noise 1.0, and DNSMOS "
          "about 2.5 and 1.1)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m styletts2.demo", description=__doc__.split("\n")[0].rstrip(":"))
    parser.add_argument("--out", default="runs/demo", help="folder for the corpus, runs, export and wav")
    parser.add_argument("--clips", type=int, default=96, help="clips in the espeak-ng corpus")
    parser.add_argument("--sentences", default="wide", choices=sorted(SENTENCE_POOLS),
                        help="the corpus's sentence pool (as the learning benchmark's: every clip its own sentence)")
    parser.add_argument("--minutes", type=float, default=9.0, help="training budget of all stages")
    parser.add_argument("--shares", help="stages' shares of the budget before stage 2 "
                        f"(default {DEMO_SHARES}, with --stage0 {STAGE0_GIVEN_SHARES}; stage 2 gets the rest)")
    parser.add_argument("--stage0", type=Path, metavar="DIR",
                        help="the --out folder of an earlier demo or bench/learning.py run: "
                        "load its aligner, pitch extractor and PL-BERT instead of training them, and spend the "
                        "budget on stages 1 and 2")
    parser.add_argument("--text", default=TEXT, help="text to synthesize at the end")
    parser.add_argument("--no-scores", action="store_true", help="skip the evaluator at the end")
    return parser


def _checked_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, float]:
    """The stages' shares of the budget, once the budget and the text are checked: before the
    minutes of training, not after them (an unspeakable --text failed at the end)."""
    from .train.recipe import command_line_shares

    if not args.minutes > 0:
        parser.error("--minutes must be positive")
    try:
        speakable(args.text)
    except (TypeError, ValueError) as err:
        parser.error(f"--text: {err}")
    try:
        return command_line_shares(args.shares, DEMO_SHARES, stage0_given=args.stage0 is not None)
    except ValueError as err:
        parser.error(str(err))


def main(argv: list[str] | None = None) -> int:
    from .audio.io import save_wav
    from .data.make_corpus import SAMPLE_RATE, TEXT_POOL_FILE, first_clip, speak_as_corpus
    from .train.recipe import Recipe, RecipeError, describe_stages

    parser = _parser()
    args = parser.parse_args(argv)
    shares = _checked_arguments(parser, args)

    out = (Path.cwd() / args.out).resolve()
    corpus, exported, wav = out / "corpus", out / "exported", out / "demo.wav"
    timings: dict[str, float] = {}
    if (out / "stage2" / "last.pth").exists():
        raise SystemExit(f"demo: {out} holds a finished demo; remove it or give another --out")
    recipe = Recipe(corpus, out, args.minutes, shares=shares, bindings=DEMO_BINDINGS,
                    plbert_text=corpus / TEXT_POOL_FILE,  # as the learning benchmark's
                    stage0=None if args.stage0 is None else (Path.cwd() / args.stage0).resolve())
    try:
        recipe.check_stage0()  # before the corpus is made
    except RecipeError as err:
        raise SystemExit(f"demo: {err}") from None
    if not (corpus / "metadata.csv").exists():
        _run("corpus", ["-m", "styletts2.data.make_corpus", str(corpus), "--n", str(args.clips), "--sentences",
                        args.sentences], timings)
    if args.stage0 is None:
        print(f"\n== training from nothing for {args.minutes:g} minutes (stage 0 -> stage 1 -> stage 2)")
    else:
        print(f"\n== training stages 1 and 2 for {args.minutes:g} minutes on the stage-0 parts of {recipe.stage0}")
    try:
        checkpoint = recipe.run()
    except RecipeError as err:
        raise SystemExit(f"demo: {err}") from None
    timings["training"] = recipe.spent * 60
    print(f"   stages: {describe_stages(recipe.timings, recipe.steps)}", flush=True)
    _run("export", ["export/to_onnx.py", "--checkpoint", str(checkpoint), "--out", str(exported)], timings)
    print(f"\n   the text in the corpus: {text_status(corpus, args.text)} (--text takes another)")
    _run("synthesize", ["-m", "styletts2.runtime", args.text, "-m", str(exported), "-o", str(wav), "--seed", "0"],
         timings)
    # The same text with both styles read from a training clip instead of sampled by the style
    # diffusion, which a short budget trains least (the learning benchmark scores both ways).
    clip_wav = out / "demo_clip_style.wav"
    clip = first_clip(corpus)
    _run("synthesize, styles from a clip", ["-m", "styletts2.runtime", args.text, "-m", str(exported), "-o",
                                            str(clip_wav), "--seed", "0", "--reference", str(clip), "--alpha", "0",
                                            "--beta", "0"], timings)
    if not args.no_scores:
        start = time.perf_counter()
        save_wav(out / "espeak.wav", speak_as_corpus(args.text), SAMPLE_RATE)  # the corpus voice reads it too
        _scores(args.text, {"demo": wav, "demo, clip's styles": clip_wav, "espeak-ng": out / "espeak.wav"})
        timings["scores"] = time.perf_counter() - start

    print("\n".join(closing_lines(timings, wav, clip_wav, exported, recipe.log, args.text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
