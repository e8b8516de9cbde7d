"""Command line: score speech offline (PER, DNSMOS, speaker similarity, distances to reference audio).

    python -m styletts2.evaluate --texts list.txt --wavs DIR [--references DIR] [--json OUT]
    python -m styletts2.evaluate --texts list.txt --model exported/ljspeech [--references DIR]
    python -m styletts2.evaluate --texts list.txt --checkpoint CKPT [--config GIN] [--references DIR]

The text list has `name|text` lines (or is an LJSpeech metadata.csv); wavs and references are
`<name>.wav`. Prints a table (one row per clip and a mean row); --json writes the same as JSON.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from ..errors import add_debug_flag, run_guarded
from .evaluator import METRICS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m styletts2.evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[1:]))
    p.add_argument("--texts", required=True, help="text list: name|text lines, or an LJSpeech metadata.csv")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--wavs", help="folder of <name>.wav clips to score")
    source.add_argument("--model", help="exported model folder: synthesize the texts with styletts2.runtime")
    source.add_argument("--checkpoint", help="training checkpoint: synthesize the texts with the torch synthesizer")
    p.add_argument("--config", action="append", default=[], help="with --checkpoint: model gin / upstream config.yml")
    p.add_argument("--gin_param", action="append", default=[], help="with --checkpoint: gin binding (repeatable)")
    p.add_argument("--references", help="folder of reference <name>.wav clips of the same texts")
    p.add_argument("--speaker-reference", help="a clip of the target voice: speaker similarity for clips without "
                   "reference audio (default: --voice)")
    p.add_argument("--voice", help="with --model / --checkpoint: reference clip for the synthesized voice "
                   "(required by multispeaker models)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {','.join(METRICS)}")
    p.add_argument("--no-f0", action="store_true", help="skip the F0 error (the slowest reference metric)")
    p.add_argument("--seed", type=int, default=0, help="synthesis seed (--model / --checkpoint)")
    p.add_argument("--save-wavs", help="write the synthesized clips here (--model / --checkpoint)")
    p.add_argument("--threads", type=int, help="onnxruntime / torch threads")
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    add_debug_flag(p)
    return p


def _items(args):
    from .inputs import checkpoint_synthesizer, load_folder, runtime_synthesizer, synthesize_items

    if args.wavs:
        return load_folder(args.texts, args.wavs, args.references)
    if args.model:
        synthesize, rate = runtime_synthesizer(args.model, args.voice, args.seed, args.threads)
    else:
        synthesize, rate = checkpoint_synthesizer(args.checkpoint, args.config, args.gin_param,
                                                  args.voice, args.seed)
    return synthesize_items(args.texts, synthesize, rate, args.references, args.save_wavs,
                            progress=lambda message: print(message, file=sys.stderr, flush=True))


PROG = "python -m styletts2.evaluate"


def _check_outputs(args) -> None:
    """Output paths that cannot be written, refused before any scoring (not after the work)."""
    from .inputs import InputError

    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json} is a folder: give a file name")
    if args.save_wavs and args.wavs:
        raise InputError("--save-wavs writes synthesized clips: give it with --model or --checkpoint")
    if args.save_wavs and Path(args.save_wavs).exists() and not Path(args.save_wavs).is_dir():
        raise InputError(f"--save-wavs {args.save_wavs} is a file: give a folder")


def _evaluate(args) -> int:
    from ..audio.io import load_wav
    from .evaluator import Evaluator, ScoreWarning
    from .inputs import InputError
    from .report import table, write_json

    _check_outputs(args)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if not metrics:
        raise InputError(f"--metrics names no metric: give a comma-separated subset of {','.join(METRICS)}")
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        speaker_reference = None
        target_voice = args.speaker_reference or args.voice  # similarity to the voice asked for
        if target_voice:
            try:
                speaker_reference = load_wav(target_voice)
            except (OSError, ValueError) as err:  # a missing file, a folder, bad audio
                raise InputError(f"{'--speaker-reference' if args.speaker_reference else '--voice'}: {err}") from err
        evaluator = Evaluator(metrics, speaker_reference=speaker_reference, threads=args.threads, f0=not args.no_f0)
        items = _items(args)
        with warnings.catch_warnings(record=True) as caught:  # per-clip notes are printed below instead
            warnings.simplefilter("always", ScoreWarning)
            scores = evaluator.score(items)
    except RuntimeError as err:  # e.g. a model or recogniser that cannot run: one line too
        raise InputError(str(err)) from err
    for warning in caught:
        if issubclass(warning.category, ScoreWarning):
            print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
        else:  # someone else's: show it as Python would have
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    print(table(scores, markdown=args.markdown))
    if args.json:
        keys = ["texts", "wavs", "model", "checkpoint", "references", "speaker_reference", "voice"]
        keys += [] if args.wavs else ["seed"]
        source = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
        write_json(args.json, scores, evaluator.metrics, source)
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_guarded(PROG, lambda: _evaluate(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
