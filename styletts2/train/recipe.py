"""From nothing to a model, in order, on a wall-clock budget: the sequence the demo and the learning
benchmark run (each step is the `runner.py` command a user would type, printed before it runs).

    stage 0: text aligner -> pitch extractor -> PL-BERT      (gin/learning/stage0_*.gin)
    stage 1: from the stage-0 aligner and pitch extractor    (gin/learning/stage1.gin)
    stage 2: from stage 1 and the stage-0 PL-BERT            (gin/learning/stage2.gin), in segments

Each stage gets a share of the budget through `Trainer.max_minutes` (the benchmark's aligner in two
runs: a check after 35 epochs restarts it with the next seed if it is still on its CTC plateau,
`Recipe.run_aligner`); stage 2 gets what the others leave, split into `segments` runs of the same
folder (each resumes the last), so a caller can export and score the model between them. Stage-0
parts and stage-1 weights are passed on by path, exactly as a user would bind
`load_pretrained_parts.*_path` and `Stage2.first_stage_checkpoint`; with `Recipe.stage0` the
stage-0 parts come from an earlier run's folder and stage 0 is skipped.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from styletts2.gin_paths import REPO_ROOT, check_binding_syntax

# Shares of the budget before stage 2; stage 2 gets the rest (23 %). The decoder learns to speak in
# stage 1 only (it is frozen in stage 2 before the joint phase), so stage 1 gets 60 %: with it the
# decoder given the teacher's prosody is heard at a PER of 0.27, against the teacher's 0.24
# (bench/prosody_oracle.py). Tried (bench/README.md): stage 1 at 50 %, giving stage 2 its minutes
# (held-out PER within noise: stage 2's F0 overfits instead of improving); the aligner at 22 % and
# stage 1 at 38 % (held-out PER 0.63 / 0.68 against 0.58 / 0.58, configs of that time).
SHARES = {"aligner": 0.12, "pitch": 0.03, "plbert": 0.02, "stage1": 0.60}
RUNNER_SUMMARY = re.compile(r"runner\.py: \w+ after \d+ epoch\(s\), (\d+) step\(s\)")
ALIGNER_CTC_PER = re.compile(r"\bctc_per ([0-9.]+)")
# An aligner whose last validation CTC PER is above this has barely left its CTC plateau. Seen on the
# learning benchmark (bench/README.md, "The aligner's warm-up"): runs that left it ended at 0.06-0.13
# after 7 minutes, runs that stayed on it at 0.44-0.65. The demo's 2 minutes end at 0.19-0.28, or at
# 0.40 on a slower host (399 steps), which it then warns about.
ALIGNER_PLATEAU_PER = 0.35
# The aligner's check (`Recipe.aligner_check_epochs`): on the benchmark's 144 training clips (18 steps an
# epoch, 5 s), the seven 2e-3 runs that went on to leave the plateau stood at validation CTC PER 0.13-0.37
# after 35 epochs, the four that stayed on it at 0.59-0.68, and the two of those run on at 0.43 and 0.58
# 40-45 epochs later (bench/README.md, "The aligner's restart"). Restarted then, the aligner has about 4
# of its 7.2 minutes left. Since its encoder trains at 1e-3 (`Stage0Aligner.encoder_lr`), seeds 0-6 stood
# at 0.10-0.34 after 35 epochs: the check is a safety net none of them needed.
ALIGNER_CHECK_EPOCHS = 35
ALIGNER_STUCK_PER = 0.5
TRAINER_SEED = re.compile(r"^\s*Trainer\.seed\s*=\s*(-?\d+)\s*$")


def _log_since(log: Path, offset: int) -> str:
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")


def _steps_reported(text: str) -> int | None:
    """The step count in runner.py's last line ("runner.py: <status> after E epoch(s), N step(s), ...")
    in a stage's output, or None when there is none."""
    found = RUNNER_SUMMARY.findall(text)
    return int(found[-1]) if found else None


def last_ctc_per(text: str) -> float | None:
    """The last validation CTC PER in the aligner's output `text`, or None when it never validated."""
    found = ALIGNER_CTC_PER.findall(text)
    return float(found[-1]) if found else None


def aligner_warning(text: str) -> str | None:
    """A warning when the aligner's output (`text`) ends on a validation CTC PER above
    ALIGNER_PLATEAU_PER: every later stage trains on the alignments of an aligner that hears little."""
    per = last_ctc_per(text)
    if per is None or per <= ALIGNER_PLATEAU_PER:
        return None
    return (f"warning: the aligner's last validation CTC PER is {per:.2f} (above "
            f"{ALIGNER_PLATEAU_PER:g}): it has barely left its CTC plateau, if at all, and every later stage "
            "trains on its alignments. The learning benchmark's 7-minute aligner ended so in about one seed in two "
            "with the whole aligner at 2e-3; with its encoder at 1e-3 (`Stage0Aligner.encoder_lr`) all seven seeds "
            "tried left the plateau within 35 epochs (bench/README.md, \"The aligner's plateau\"). Another "
            "`aligner:Trainer.seed` or a larger aligner share gives it another chance.")


def describe_stages(minutes: dict[str, float], steps: dict[str, int]) -> str:
    """Each stage's minutes, steps and seconds per step, in the order they ran, on one line."""
    parts = []
    for name, spent in minutes.items():
        count = steps.get(name)
        rate = f", {count} steps ({60 * spent / count:.2f} s/step)" if count else ""
        parts.append(f"{name} {spent:.1f} min{rate}")
    return "; ".join(parts)


def parse_shares(text: str, without: tuple[str, ...] = ()) -> dict[str, float]:
    """`aligner=0.18,stage1=0.44` -> SHARES with those two replaced; stage 2 gets what is left.
    `without`: stages that do not train (stage-0 parts given): they get no share and cannot be named."""
    shares = {name: share for name, share in SHARES.items() if name not in without}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name in without:
            raise ValueError(f"{name!r} does not train in this run (its part is given): it takes no share")
        if name not in SHARES:
            raise ValueError(f"unknown stage {name!r} in shares (stage 2 gets the rest): one of {', '.join(SHARES)}")
        try:
            shares[name] = float(value)
        except ValueError:
            raise ValueError(f"share of {name!r} must be a number, got {value.strip()!r}") from None
        if not 0 < shares[name] < 1:
            raise ValueError(f"share of {name!r} must lie between 0 and 1, got {shares[name]:g}")
    if sum(shares.values()) >= 1:
        raise ValueError(f"shares before stage 2 add up to {sum(shares.values()):.2f}: stage 2 needs the rest")
    return shares


STAGES = (*SHARES, "stage2")
STAGE0_PARTS = ("aligner", "pitch", "plbert")
# With stage-0 parts from an earlier run (`Recipe.stage0`) the budget goes to stages 1 and 2 alone,
# in about SHARES' ratio of the two (60 : 23): stage 1 at 72 %, stage 2 the rest.
STAGE0_GIVEN_SHARES = "stage1=0.72"


def command_line_shares(text: str | None, default: str, stage0_given: bool) -> dict[str, float]:
    """The shares a command line asks for (`--shares`, else `default`); with stage-0 parts given,
    over stages 1 and 2 alone, STAGE0_GIVEN_SHARES unless told otherwise."""
    if stage0_given:
        return parse_shares(text or STAGE0_GIVEN_SHARES, without=STAGE0_PARTS)
    return parse_shares(text or default)


def parse_stage_bindings(items: list[str]) -> dict[str, list[str]]:
    """`['aligner:Stage0Aligner.ctc_weight = 3.0', ...]` -> {'aligner': ['Stage0Aligner.ctc_weight = 3.0']}:
    gin bindings added to one stage's command (stage 2's to every segment)."""
    bindings: dict[str, list[str]] = {}
    for item in items:
        name, colon, binding = item.partition(":")
        if not colon or name.strip() not in STAGES:
            raise ValueError(f"a stage's binding reads STAGE:BINDING with STAGE one of {', '.join(STAGES)}, "
                             f"got {item!r}")
        if not binding.strip():
            raise ValueError(f"no binding after {name.strip()!r}: in {item!r}")
        check_binding_syntax(binding.strip())  # here, not in the stage's process hours later
        bindings.setdefault(name.strip(), []).append(binding.strip())
    return bindings


class RecipeError(RuntimeError):
    """A stage's command failed; the message names it and the log."""


@dataclass
class Recipe:
    """corpus: a `make_corpus` folder (train_list.txt, val_list.txt, metadata.csv);
    out: one run folder per stage goes here, and `train.log` with every stage's output;
    minutes: the training budget of all stages together; threads: torch threads per stage;
    shares: each stage's share of `minutes` before stage 2 (`parse_shares`);
    aligner_clips: train the aligner on the training list's first this many clips only; the later
    stages use them all, aligned by it. On this benchmark's CPU budget the aligner left its CTC
    plateau on 144 training clips in all four runs that had them, and stayed on it on 216 in both.
    plbert_text: a text file, one sentence a line, that PL-BERT trains on instead of the training
    clips' transcripts (e.g. the corpus's `text_pool.txt`, `make_corpus.TEXT_POOL_FILE`). From one
    stage-1 checkpoint, stage 2 with PL-BERT trained on 229 sentences of the benchmark's pool
    (the pool less the validation clips' texts) spoke the held-out sentences at PER 0.31 against 0.39 with PL-BERT
    on the 144 training clips' (bench/README.md; one training seed each, and stage 2's seed alone
    moves that PER by up to 0.05).
    bindings: extra gin bindings per stage (`parse_stage_bindings`), after the recipe's own.
    aligner_check_epochs: after this many epochs, an aligner still on its CTC plateau (validation CTC
    PER above ALIGNER_STUCK_PER) starts again with the next seed for the minutes left (`run_aligner`;
    None: no check). The benchmark checks at ALIGNER_CHECK_EPOCHS; the demo's 2 minutes cannot afford it.
    stage0: a folder of an earlier run (its `out`) whose stage-0 parts (STAGE0_PARTS) the later stages
    load instead of training their own: stage 0 is skipped and its shares unused, as upstream's
    stage 1 starts from the aligner, pitch extractor and PL-BERT it ships."""

    corpus: Path
    out: Path
    minutes: float
    threads: int = 2
    shares: dict[str, float] = field(default_factory=lambda: dict(SHARES))  # of `minutes`, stage 2 the rest
    aligner_clips: int | None = None  # the aligner trains on the first this many training clips (None: all)
    plbert_text: Path | None = None  # PL-BERT's training text (None: the training clips' transcripts)
    bindings: dict[str, list[str]] = field(default_factory=dict)  # stage name -> extra gin bindings
    aligner_check_epochs: int | None = None  # restart a stuck aligner after this many epochs (None: never)
    stage0: Path | None = None  # an earlier run's folder whose stage-0 parts are used (None: train them)
    config_dir: str = "gin/learning"
    spent: float = 0.0  # training minutes used so far (process start-up included)
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)  # training steps per stage (stage 2: all segments)
    aligner_restarts: list[float] = field(default_factory=list)  # the CTC PER of each aligner run set aside

    def __post_init__(self) -> None:
        if not self.minutes > 0:  # NaN fails too
            raise ValueError(f"the budget must be a positive number of minutes, got {self.minutes}")

    def run_dir(self, name: str) -> Path:
        return self.out / name

    @property
    def log(self) -> Path:
        return self.out / "train.log"

    def part_dir(self, name: str) -> Path:
        """The run folder the later stages take stage-0 part `name` from: this run's, or `stage0`'s."""
        return (self.out if self.stage0 is None else Path(self.stage0)) / name

    def _bindings(self, name: str) -> list[str]:
        corpus, part = self.corpus, self.part_dir
        common = [f'Trainer.train_data = "{corpus / "train_list.txt"}"',
                  f'Trainer.val_data = "{corpus / "val_list.txt"}"', f'Trainer.data_root = "{corpus}"']
        own = {
            "plbert": [f'Stage0PLBert.transcripts = "{corpus / "metadata.csv"}"'],
            "stage1": [f'load_pretrained_parts.aligner_path = "{self.aligner_checkpoint()}"',
                       f'load_pretrained_parts.pitch_path = "{part("pitch") / "last.pth"}"'],
            "stage2": [f'Trainer.ood_data = "{corpus / "OOD_texts.txt"}"',  # the SLM adversarial texts
                       f'Stage2.first_stage_checkpoint = "{self.run_dir("stage1") / "last.pth"}"',
                       f'load_pretrained_parts.plbert_path = "{part("plbert") / "last.pth"}"'],
        }
        if name == "aligner" and self.aligner_clips is not None:
            common[0] = f'Trainer.train_data = "{self._aligner_list()}"'
        if name == "plbert" and self.plbert_text is not None:
            if not Path(self.plbert_text).is_file():
                raise RecipeError(f"PL-BERT's text {self.plbert_text} does not exist (make_corpus writes "
                                  "text_pool.txt; a corpus made before it did not)")
            common[0] = f'Trainer.train_data = "{self.plbert_text}"'
        return common + own.get(name, [])

    def aligner_checkpoint(self) -> Path:
        """The aligner's checkpoint with the lowest validation CTC loss (its Trainer.val_metric), or its
        last one when it stopped before its first validation. Late in training its word starts swing
        between validations (37-54 ms from espeak-ng's in one 160-clip run), and that loss ranks them
        (Spearman 0.85 over the last 11)."""
        best = self.part_dir("aligner") / "best.pth"
        return best if best.exists() else self.part_dir("aligner") / "last.pth"

    def check_stage0(self) -> None:
        """With `stage0`, that each part's checkpoint is there, before anything trains."""
        if self.stage0 is None:
            return
        if not Path(self.stage0).is_dir():
            raise RecipeError(f"{self.stage0} is not a folder: give the --out folder of a run that trained stage 0")
        parts = (self.aligner_checkpoint(), self.part_dir("pitch") / "last.pth", self.part_dir("plbert") / "last.pth")
        missing = [str(path.relative_to(self.stage0)) for path in parts if not path.is_file()]
        if missing:
            raise RecipeError(f"{self.stage0} lacks the stage-0 parts {', '.join(missing)}: give the --out folder of a "
                              "run that trained stage 0 (the demo's or bench/learning.py's)")

    def _aligner_list(self) -> Path:
        """The training list's first `aligner_clips` lines, written beside the runs."""
        lines = (self.corpus / "train_list.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        if self.aligner_clips < 1 or self.aligner_clips > len(lines):
            raise RecipeError(f"aligner_clips must lie between 1 and the {len(lines)} training clips, "
                              f"got {self.aligner_clips}")
        path = self.out / "aligner_train_list.txt"
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines[:self.aligner_clips]), encoding="utf-8")
        return path

    def command(self, name: str, minutes: float, extra: tuple[str, ...] = ()) -> list[str]:
        gin_name = f"stage0_{name}" if name in STAGE0_PARTS else name
        args = ["runner.py", "--gin", f"{self.config_dir}/{gin_name}.gin", "--run_dir", str(self.run_dir(name))]
        # The run's own bindings (`extra`: a check's epochs, a restart's seed, a stage-2 budget) go last.
        # A stage's budget rounds up to 0.001 minutes, which the Trainer accepts: it then makes one step.
        budget = f"Trainer.max_minutes = {max(minutes, 0.001):.3f}"
        for binding in [*self._bindings(name), budget, *self.bindings.get(name, ()), *extra]:
            args += ["--gin_param", binding]
        return args

    def run_stage(self, name: str, minutes: float, extra: tuple[str, ...] = ()) -> str:
        """One stage (or stage-2 segment) for `minutes` of training, with `extra` gin bindings; its
        output goes to the log, and is returned."""
        args = self.command(name, minutes, extra)
        print("$ python " + shlex.join(args), flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        log_start = self.log.stat().st_size if self.log.exists() else 0
        start = time.time()
        with open(self.log, "a", encoding="utf-8") as log:
            result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
        elapsed = (time.time() - start) / 60
        self.spent += elapsed
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        if result.returncode != 0:
            raise RecipeError(f"{name}: `python {' '.join(args[:3])} ...` failed with exit code "
                              f"{result.returncode}; see {self.log}")
        output = _log_since(self.log, log_start)
        steps = _steps_reported(output)
        if steps is not None:
            self.steps[name] = steps  # runner.py counts from the checkpoint it resumes: a running total
        print(f"   {name}: {elapsed:.1f} min, {self.steps.get(name, '?')} steps ({self.spent:.1f} of {self.minutes:g} "
              "spent)", flush=True)
        return output

    def _seed(self, name: str) -> int:
        """The `Trainer.seed` a stage's bindings give it (the last one), else the configs' 0."""
        seeds = [int(m.group(1)) for m in map(TRAINER_SEED.match, self.bindings.get(name, ())) if m]
        return seeds[-1] if seeds else 0

    def run_aligner(self, minutes: float) -> None:
        """The aligner for `minutes`. With `aligner_check_epochs`, in two runs: the first stops after
        that many epochs, the second goes on for the minutes left (`_after_check`); the warning reads
        the last run."""
        check = () if self.aligner_check_epochs is None else (f"Trainer.epochs = {self.aligner_check_epochs}",)
        output = self.run_stage("aligner", minutes, check)
        left = minutes - self.timings["aligner"]
        if check and left > 0.1:  # else the check took all the minutes (a slow machine)
            output = self.run_stage("aligner", left, self._after_check(last_ctc_per(output)))
        warning = aligner_warning(output)
        if warning:
            print("   " + warning, flush=True)

    def _after_check(self, per: float | None) -> tuple[str, ...]:
        """The second aligner run's bindings: none to resume the checked run; if its validation CTC
        PER is above ALIGNER_STUCK_PER, that run is moved aside to `aligner_stuck` and the next seed
        starts a new one."""
        if per is None or per <= ALIGNER_STUCK_PER:
            return ()
        stuck, seed = self.run_dir("aligner_stuck"), self._seed("aligner") + 1
        shutil.rmtree(stuck, ignore_errors=True)
        self.run_dir("aligner").rename(stuck)
        self.aligner_restarts.append(per)
        print(f"   aligner: validation CTC PER {per:.2f} after {self.aligner_check_epochs} epochs, still on its CTC "
              f"plateau: starting again with Trainer.seed = {seed} ({stuck} set aside)", flush=True)
        return (f"Trainer.seed = {seed}",)

    def run(self, segments: int = 1, after_segment: Callable[[int, Path], None] | None = None) -> Path:
        """Every stage in order; `after_segment(index, stage-2 checkpoint)` after each stage-2 segment.
        Returns the final stage-2 checkpoint."""
        self.check_stage0()
        stages = {name: share for name, share in self.shares.items() if self.stage0 is None or name not in STAGE0_PARTS}
        for name in stages:  # each stage's inputs checked before the first one trains, so that
            self._bindings(name)  # e.g. a missing PL-BERT text stops the run now, not after the aligner
        for name, share in stages.items():
            if name == "aligner":
                self.run_aligner(share * self.minutes)
            else:
                self.run_stage(name, share * self.minutes)
        segment = max(0.1, (self.minutes - self.spent) / segments)  # stage 2 always trains a little
        checkpoint = self.run_dir("stage2") / "last.pth"
        for index in range(segments):
            # A 'budget' learning-rate schedule decays over all of stage 2, not over each segment.
            budget = (f"build_scheduler.budget_minutes = {segment * segments:.3f}",
                      f"build_scheduler.budget_spent_minutes = {segment * index:.3f}")
            self.run_stage("stage2", segment, budget)
            if after_segment is not None:
                after_segment(index, checkpoint)
        return checkpoint
