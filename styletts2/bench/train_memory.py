"""Peak training memory of every phase, and which GPU sizes it fits.

    python bench/train_memory.py --model gin/model/libritts.gin --batch_size 8 --max_len 400 \\
        [--measure 2,4] [--precision fp32] [--gin_param BINDING ...] [--json FILE]

Each phase (stage 1 before and after TMA, stage 2 before `diff_epoch`, the diffusion phase, the
joint phase with SLM adversarial training) runs a warm-up step and one measured step of
`gpu_check` on a synthetic batch, and its peak of live tensor bytes is read (`train/memory.py`:
the CUDA allocator's count, or the same count taken from Python on the CPU): parameters, gradients,
optimiser states, tensors saved for backward and transients. The joint phase's SLM adversarial step
synthesises `SLMAdversarial.batch_percentage` of the batch (upstream: 0.5) and needs two utterances,
so it runs from batch 4 at 0.5 and from batch 2 at 1.0; at a batch where it cannot run, that row is
named 'stage2 joint (no SLM step)': the generator and discriminator steps alone. `--phases joint`
measures that phase alone.

`--measure B1,B2` runs two smaller batches instead of `--batch_size` (a CPU without the memory for
it) and extrapolates each phase linearly in the batch size: weights, gradients and optimiser states
do not depend on it, and every utterance of the synthetic batch has about the same length, so the
rest grows with the number of utterances. The JSON holds the measured and extrapolated figures. With
`batch_percentage = 1.0` at both measured batches, the joint row's slope counts each utterance in
the SLM step too: read at upstream's 0.5, an upper bound.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from styletts2.bench.machine import machine_record
from styletts2.train.gpu_check import PHASES, TINY_MODEL, check, chosen_phases

GPU_SIZES_GB = (16, 24, 40, 80)


def extrapolate(measured: dict[int, float], batch_size: int) -> float | None:
    """Linear fit through two (batch, GB) points, read at `batch_size`; the value itself if measured;
    None from a single point (a joint phase whose SLM step ran at one of the two batches only)."""
    if batch_size in measured:
        return measured[batch_size]
    if len(measured) < 2:
        return None
    (b1, m1), (b2, m2) = sorted(measured.items())[:2]
    return m1 + (m2 - m1) * (batch_size - b1) / (b2 - b1)


def measure(model_gin: str, bindings: list[str], batch_sizes: list[int], max_len: int, precision: str,
            device: str | None, report=print, phases: list[str] | None = None,
            count_from_python: bool = False) -> dict[str, dict[int, float]]:
    """{phase: {batch size: peak GB}}; with `count_from_python` on CUDA, a row '<phase> (counted from
    Python)' follows each phase: the CPU's count of the same steps."""
    peaks: dict[str, dict[int, float]] = {}
    for batch_size in batch_sizes:
        for result in check(model_gin, bindings, batch_size, max_len, precision, steps=1, device=device,
                            report=report, require_slm=False, phases=phases, count_from_python=count_from_python):
            peaks.setdefault(result.phase, {})[batch_size] = result.peak_memory_gb
            if result.counted_peak_gb is not None:
                peaks.setdefault(f"{result.phase} (counted from Python)", {})[batch_size] = result.counted_peak_gb
    return peaks


def table(peaks: dict[str, dict[int, float]], batch_size: int) -> str:
    measured = sorted({b for per_phase in peaks.values() for b in per_phase})
    head = ["phase", *(f"batch {b} (measured)" for b in measured)]
    if batch_size not in measured:
        head.append(f"batch {batch_size} (extrapolated)")
    head += [f"fits {gb} GB" for gb in GPU_SIZES_GB]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase, per_batch in peaks.items():
        target = extrapolate(per_batch, batch_size)
        cells = [phase, *(f"{per_batch[b]:.2f}" if b in per_batch else "-" for b in measured)]
        if batch_size not in measured:
            cells.append("-" if target is None else f"{target:.2f}")
        cells += ["-" if target is None else "yes" if target <= gb else "no" for gb in GPU_SIZES_GB]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/train_memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=TINY_MODEL, help="model gin file (default: the tiny model)")
    parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding (repeatable)")
    parser.add_argument("--batch_size", type=int, default=2, help="the batch size to report")
    parser.add_argument("--measure", default=None,
                        help="two smaller batch sizes to run and extrapolate from, e.g. 2,4 (default: run --batch_size)")
    parser.add_argument("--max_len", type=int, default=400, help="training window in mel frames")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"phases to run (default: all of {','.join(PHASES)})")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--count_from_python", action="store_true",
                        help="on CUDA, also count live tensors the CPU's way (a check of that count; slower)")
    args = parser.parse_args(argv)
    batch_sizes = [args.batch_size]
    if args.measure:
        batch_sizes = sorted({int(b) for b in args.measure.split(",")})
        if len(batch_sizes) != 2 or min(batch_sizes) < 1:
            parser.error("--measure takes two different batch sizes, e.g. 2,4")
    started = time.perf_counter()
    try:
        phases = chosen_phases(args.phases.split(","))
    except ValueError as err:
        parser.error(str(err))
    peaks = measure(args.model, args.gin_param, batch_sizes, args.max_len, args.precision, args.device, phases=phases,
                    count_from_python=args.count_from_python)
    print(table(peaks, args.batch_size))
    if args.json:
        record = {"settings": vars(args), "machine": machine_record(torch.get_num_threads()),
                  "seconds": round(time.perf_counter() - started, 1),
                  "peak_gb": {phase: {str(b): v for b, v in per.items()} for phase, per in peaks.items()},
                  "at_batch_size": {phase: extrapolate(per, args.batch_size) for phase, per in peaks.items()}}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
