"""Run a training experiment described by gin files.

    python runner.py --gin gin/stage1_ljspeech.gin [--gin FILE ...] [--gin_param 'Trainer.batch_size = 8' ...]
                     [--run_dir DIR] [--resume CKPT]
    torchrun --nproc_per_node 4 runner.py --gin gin/stage2_ljspeech.gin      # DDP, one process per GPU

Files are parsed in order, then bindings (later ones win). `--resume CKPT` starts the run from that
training checkpoint; without it a run continues from `<run_dir>/last.pth` when it exists (or from
`<run_dir>/last.previous.pth`, kept one save back, when last.pth can not be read). The operative config
is printed at start and written to `<run_dir>/config.gin` and into every checkpoint.

Exit codes: 0 finished (all epochs, `Trainer.max_steps` reached, or nothing left to do);
1 training diverged (too many non-finite steps in a row; the last good checkpoint is kept);
2 bad command line, gin config, data or checkpoint (one line on stderr; `--debug` shows the
traceback); 130 stopped by SIGINT/SIGTERM after saving `last.pth`
(run the same command again to continue).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from styletts2.errors import USER_ERROR_EXIT_CODE, add_debug_flag, describe, run_guarded


def _register_configurables() -> None:
    """Import the modules whose gin configurables experiment files refer to."""
    import styletts2.model  # noqa: F401
    import styletts2.train.optim  # noqa: F401
    import styletts2.train.stage0_aligner  # noqa: F401
    import styletts2.train.stage0_plbert  # noqa: F401
    import styletts2.train.stage0_pitch  # noqa: F401
    import styletts2.train.stage1  # noqa: F401
    import styletts2.train.stage2  # noqa: F401
    import styletts2.train.trainer  # noqa: F401


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="runner.py", description="Train StyleTTS2 from gin experiment files.",
                                     epilog="exit codes: 0 done, 1 diverged, 2 bad config or data, "
                                            "130 interrupted (saved)")
    parser.add_argument("--gin", action="append", default=[], metavar="FILE",
                        help="gin file (repeatable; e.g. gin/stage1_ljspeech.gin)")
    parser.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                        help="gin binding, e.g. 'Trainer.batch_size = 8' (repeatable; applied after the files)")
    parser.add_argument("--run_dir", help="output folder (same as --gin_param 'Trainer.run_dir = \"DIR\"')")
    parser.add_argument("--resume", metavar="CKPT", help="training checkpoint to start from (default: "
                        "<run_dir>/last.pth when it exists; leave --resume out to continue an interrupted run)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not args.gin:
        parser.error("give at least one --gin experiment file, e.g. --gin gin/stage1_ljspeech.gin")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_guarded("runner.py", lambda: _train(args), debug=args.debug)


def _train(args: argparse.Namespace) -> int:
    _register_configurables()
    from styletts2.model import parse_gin
    from styletts2.train.distributed import shutdown_distributed
    from styletts2.train.trainer import INTERRUPTED_EXIT_CODE, Trainer, TrainingDiverged

    bindings = list(args.gin_param)
    if args.run_dir:
        bindings.append(f"Trainer.run_dir = {args.run_dir!r}")
    if args.resume:
        if not Path(args.resume).is_file():
            raise FileNotFoundError(f"--resume {args.resume}: no such checkpoint file")
        bindings.append(f"Trainer.resume = {args.resume!r}")
    try:
        parse_gin(args.gin, bindings)
    except Exception as err:  # noqa: BLE001 - gin reports bad files/bindings with several exception types
        if args.debug:
            raise
        print(f"runner.py: error: bad gin config: {type(err).__name__}: {describe(err)}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    try:
        result = Trainer().fit()
    except TrainingDiverged as err:
        print(f"runner.py: training diverged: {err}", file=sys.stderr)
        return 1
    finally:
        shutdown_distributed()
    print(f"runner.py: {result.status} after {result.epoch} epoch(s), {result.iters} step(s), "
          f"{result.skipped_steps} skipped; checkpoint: {result.checkpoint}")
    return INTERRUPTED_EXIT_CODE if result.status == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
