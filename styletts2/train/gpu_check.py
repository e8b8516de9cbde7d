"""Check, in minutes, that training fits and runs on this machine before a long run starts.

    python -m styletts2.train.gpu_check --batch_size 16 --max_len 400 --precision bf16 \
        --model gin/model/ljspeech.gin --gin_param "load_wavlm.path = 'checkpoints/wavlm-base-plus'"

Runs a few steps of every phase of stage 1 (before TMA; from TMA: aligner, discriminators, WavLM
feature matching) and of stage 2 (prosody; diffusion and adversarial; joint with SLM adversarial),
on a synthetic batch of `batch_size` utterances long enough for every window (`max_len`, the SLM
window: every utterance is longer than it, so each can take part), at the given precision. Stage 2
starts from the stage-1 weights the first phases leave. `--phases` runs some of them only (e.g.
`joint`); stage 2 then starts from the weights of one unmeasured stage-1 step.
Per phase it reports the peak memory (`memory.py`: the peak of live tensor bytes, from the
accelerator's allocator or counted on the CPU), steps per second and the host-device
synchronisations per step (`syncs.py`).
An out-of-memory error names the phase and exits with code 1; non-finite losses exit with 3; a user
error (a bad option, a missing gin file, a device this machine lacks) is one line, exit 2.

Weights are random (loss values mean nothing here); the model's size and the pretrained parts'
structure are what matter for memory and speed, so bind the real WavLM (`load_wavlm.path`) when
checking a real config, or, without it, a random one of its shape (`load_wavlm.random_size = 'base'`).
It works on the CPU too (slowly); that is how it is tested.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Iterable

import gin
import torch

from styletts2.checkpoint import atomic_save, make_checkpoint
from styletts2.data.collate import Collater
from styletts2.data.dataset import Sample
from styletts2.audio.mel import LogMelSpectrogram
from styletts2.devices import resolve_device
from styletts2.errors import add_debug_flag, run_guarded
from styletts2.model import StyleTTS2, parse_gin

from .memory import PeakMemory
from .optim import LossScaler
from .slm_adversarial import SLMAdversarial
from .stage import TrainingContext
from .stage1 import Stage1
from .stage2 import Stage2
from .syncs import count_syncs

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = "gin/model/tiny.gin"
STAGE_PARTS = ["gin/stage/random_init.gin", "gin/stage/losses.gin", "gin/trainer/stage2_rates.gin"]
TINY_PARTS = ["gin/stage/tiny_adversaries.gin"]
SAMPLES_PER_MEL_FRAME = 300
MEL_FRAMES_PER_TOKEN = 6  # about 13 phonemes a second


@dataclass
class PhaseResult:
    phase: str
    steps_per_second: float
    peak_memory_gb: float
    syncs_per_step: float
    losses: dict[str, float]
    counted_peak_gb: float | None = None  # on CUDA with count_from_python: the CPU's count of the same steps


def synthetic_batch(batch_size: int, mel_frames: int, n_tokens: int, seed: int = 0, shortest: int | None = None):
    """A padded batch of noise utterances whose lengths spread evenly from `mel_frames` mel frames down
    to `shortest` (default: 10 % less), with random phoneme ids; OOD texts too (stage 2's SLM step)."""
    g = torch.Generator().manual_seed(seed)
    to_mel = LogMelSpectrogram()
    shortest = mel_frames - mel_frames // 10 if shortest is None else min(shortest, mel_frames)
    samples = []
    for i in range(batch_size):
        frames = mel_frames - (i * (mel_frames - shortest)) // max(1, batch_size - 1)
        frames = frames // 2 * 2  # the aligner's 2 mel frames per step
        wave = 0.1 * torch.randn(frames * SAMPLES_PER_MEL_FRAME, generator=g)
        mel = to_mel(wave)[:, :frames]
        length = max(3, min(frames // MEL_FRAMES_PER_TOKEN, frames // 2 - 1))
        tokens = torch.cat([torch.zeros(1), torch.randint(1, n_tokens, (length - 2,), generator=g), torch.zeros(1)])
        ood = torch.cat([torch.zeros(1), torch.randint(1, n_tokens, (length - 2,), generator=g), torch.zeros(1)])
        samples.append(Sample(tokens.long(), mel, wave, 0, mel[:, :192], ood.long(), f"synthetic{i}.wav"))
    return Collater()(samples)


def _context(device: torch.device, precision: str) -> TrainingContext:
    autocast = nullcontext
    if precision != "fp32":
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = partial(torch.autocast, device_type=device.type, dtype=dtype)
    return TrainingContext(device=device, autocast=autocast,
                           grad_scaler=LossScaler() if precision == "fp16" else None)


def _run_phase(name: str, stage, ctx: TrainingContext, batch, epoch: int, steps: int, device,
               warmup: bool = True, count_from_python: bool = False) -> PhaseResult:
    # What lives before the step: the model, the stage's own modules (the frozen WavLM sits in its
    # SLM loss, not in the model), the optimiser states and the batch.
    modules = [value for value in vars(stage).values() if isinstance(value, torch.nn.Module)]
    memory = PeakMemory(device, state=(stage.model, modules, stage.optimizer.optimizers, batch),
                        count_from_python=count_from_python)
    losses: dict[str, float] = {}
    syncs = 0
    first = 1 if warmup else 0  # a warm-up step (allocator, kernels) is not timed
    with memory:
        for step in range(first + steps):
            if step == first:
                _synchronize(device)
                started = time.perf_counter()
            with count_syncs(device) as counted:
                out = stage.train_step(batch, epoch, step)
            if ctx.grad_scaler is not None:
                ctx.grad_scaler.update()
            if out.skipped:
                raise RuntimeError(f"{name}: step skipped ({out.reason})")
            syncs += counted.total if step >= first else 0
            losses = out.losses
        _synchronize(device)
    seconds = time.perf_counter() - started
    counted = memory.counted_gb if device.type == "cuda" else None
    return PhaseResult(name, steps / seconds, memory.peak_gb, syncs / steps, losses, counted)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The phases in the order they run, by the short names `phases` takes.
PHASES = {"stage1": "stage1", "tma": "stage1 TMA", "stage2": "stage2", "diffusion": "stage2 diffusion",
          "joint": "stage2 joint (SLM)"}
NONFINITE_EXIT = 3  # exit code of non-finite losses; not 2, which is a user error


def chosen_phases(phases: Iterable[str] | None) -> list[str]:
    """The `PHASES` names asked for (all when None); a ValueError names the unknown ones."""
    chosen = list(PHASES) if phases is None else [p.strip() for p in phases]
    if not chosen or set(chosen) - set(PHASES):
        raise ValueError(f"phases must be some of {', '.join(PHASES)}, got {', '.join(chosen) or 'none'}")
    return chosen


def check(model_gin: str = TINY_MODEL, bindings: list[str] = (), batch_size: int = 2, max_len: int = 100,
          precision: str = "fp32", steps: int = 2, device: str | None = None, warmup: bool = True,
          report=print, require_slm: bool = True, phases: Iterable[str] | None = None,
          count_from_python: bool = False) -> list[PhaseResult]:
    """Run every phase (or those of `phases`, by their `PHASES` names); return their results (see the
    module docstring). Without `require_slm`, a joint phase whose SLM adversarial step did not run
    (fewer than two utterances taken) is returned as 'stage2 joint (no SLM step)' instead of stopping
    the check. `count_from_python` also counts live tensors on CUDA the CPU's way (much slower)."""
    for name, value in (("steps", steps), ("batch_size", batch_size), ("max_len", max_len)):
        if value < 1:
            raise ValueError(f"gpu_check needs {name} of at least 1, got {value}")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, not {precision!r}")
    chosen = chosen_phases(phases)
    device = resolve_device(device)
    from styletts2.train import trainer  # noqa: F401  (registers Trainer for experiment configs)

    configs = [str(REPO / c) if not Path(c).is_absolute() and (REPO / c).exists() else c
               for c in [model_gin, *STAGE_PARTS, *(TINY_PARTS if model_gin == TINY_MODEL else [])]]
    gin.clear_config()
    parse_gin(configs, list(bindings))
    slm = SLMAdversarial(**{"min_len": min(400, max_len), "max_len": min(500, max_len + 100), "skip_update": 1})
    # Every utterance is longer than every window, the SLM step's longest included, so each one can take part.
    longest_window = max(max_len, slm.max_len)
    ctx = _context(device, precision)
    torch.manual_seed(0)
    model = StyleTTS2().to(device)
    batch = synthetic_batch(batch_size, longest_window + 20, model.text_encoder.embedding.num_embeddings,
                            shortest=longest_window + 4).to(device)
    report(f"gpu_check on {device} ({_device_name(device)}): batch {batch_size}, max_len {max_len}, "
           f"utterances of {int(batch.mel_lengths.min())}-{int(batch.mel_lengths.max())} mel frames, {precision}, "
           f"{steps} timed steps per phase")
    results = []

    def phase(key, stage, epoch):
        if key in chosen:
            results.append(_checked_phase(PHASES[key], stage, ctx, batch, epoch, steps, device, warmup, report,
                                          count_from_python))

    stage1 = Stage1(max_len=max_len, TMA_epoch=1, seed=0)
    stage1.setup(model, ctx)
    phase("stage1", stage1, 0)
    phase("tma", stage1, 1)
    if not {"stage1", "tma"} & set(chosen):
        # One unmeasured stage-1 step, as a real stage-1 checkpoint has had many: from a random model
        # that never took one, stage 2's F0 and energy losses reach 1e17 and its total is NaN.
        stage1.train_step(batch, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        first = atomic_save(make_checkpoint(model.nets), Path(tmp) / "stage1.pth")
        del stage1
        torch.manual_seed(0)
        model = StyleTTS2().to(device)
        stage2 = Stage2(str(first), max_len=max_len, diff_epoch=1, joint_epoch=2, seed=0, slm_adversarial=slm)
        stage2.setup(model, ctx)
    phase("stage2", stage2, 0)
    phase("diffusion", stage2, 1)
    phase("joint", stage2, 2)
    if "joint" in chosen:
        results[-1] = _joint_with_slm(results[-1], require_slm, report)
    return results


def _checked_phase(name: str, stage, ctx: TrainingContext, batch, epoch: int, steps: int, device, warmup: bool,
                   report, count_from_python: bool = False) -> PhaseResult:
    """One phase's result, reported; an out-of-memory error or a non-finite loss stops the check."""
    try:
        result = _run_phase(name, stage, ctx, batch, epoch, steps, device, warmup, count_from_python)
    except torch.OutOfMemoryError as err:
        raise SystemExit(f"gpu_check: OUT OF MEMORY in {name} (batch {len(batch.paths)}): lower "
                         f"Trainer.batch_size or the stage's max_len. {err}") from None
    finite = all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
    report(f"  {name:<18} {result.steps_per_second:7.2f} steps/s  peak {result.peak_memory_gb:7.2f} GB  "
           f"{result.syncs_per_step:6.1f} syncs/step"
           + ("" if result.counted_peak_gb is None else f"  (counted from Python: {result.counted_peak_gb:.2f} GB)")
           + ("" if finite else f"  NON-FINITE {result.losses}"))
    if not finite:
        raise SystemExit(NONFINITE_EXIT)
    return result


def _joint_with_slm(joint: PhaseResult, require_slm: bool, report) -> PhaseResult:
    """The joint phase's result, renamed when its SLM adversarial step did not run (or an error)."""
    if "slm_gen" in joint.losses:
        return joint
    if require_slm:
        raise SystemExit("gpu_check: the SLM adversarial step did not run (fewer than two utterances of the batch "
                         "are taken: raise --batch_size or bind SLMAdversarial.batch_percentage)")
    report("  (the SLM adversarial step did not run: fewer than two utterances of the batch are taken)")
    return replace(joint, phase="stage2 joint (no SLM step)")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GB"
    return f"{torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletts2.train.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=TINY_MODEL, help="model gin file (default: the tiny model)")
    parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding (repeatable)")
    parser.add_argument("--batch_size", type=int, default=2, help="utterances per batch on one device")
    parser.add_argument("--max_len", type=int, default=100, help="training window in mel frames (stage max_len)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--steps", type=int, default=2, help="timed steps per phase (after one warm-up step)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"phases to run (default: all of {','.join(PHASES)})")
    parser.add_argument("--count_from_python", action="store_true",
                        help="on CUDA, also count live tensors the CPU's way (a check of that count; slower)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    # A user error is one line, exit 2; an out-of-memory phase keeps its exit code 1 and non-finite losses
    # their NONFINITE_EXIT (SystemExits).
    return run_guarded(parser.prog, lambda: _check(args), debug=args.debug)


def _check(args: argparse.Namespace) -> int:
    if not (Path(args.model).is_file() or (REPO / args.model).is_file()):
        raise FileNotFoundError(f"--model {args.model}: no such gin file")
    check(args.model, args.gin_param, args.batch_size, args.max_len, args.precision, args.steps, args.device,
          phases=chosen_phases(args.phases.split(",")), count_from_python=args.count_from_python)
    print(f"gpu_check: {'every phase' if args.phases == ','.join(PHASES) else args.phases} ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
