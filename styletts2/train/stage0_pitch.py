"""Stage 0: train the pitch extractor (JDCNet) on DSP F0 labels, as yl4579/PitchExtractor does.

The network is the model's own `pitch_extractor` (the experiment builds
`StyleTTS2.modules = ('pitch_extractor',)`); a bound `load_pretrained_parts.pitch_path` starts it
from a released or earlier one (fine-tuning `bst.t7`), else it starts from random weights.

Data (`build_data`): the trainer's scanned corpus, each clip's F0 labels tracked once up front and
cached beside the data (`data/f0_labels.py`; DDP ranks split the tracking, then all read the
cache); clips whose labels cannot be made or hold no voiced frame are reported and skipped.
Training items are random windows of `max_len` mel frames (JDCNet's `seq_len`, 192) of the wave
scaled by a random gain in [0.5, 1); validation items are whole clips (`data/pitch_dataset.py`).

One step (`JDCNet.forward_with_voicing`, dropout 0.5 as upstream's layers):
- F0: SmoothL1 between the F0 head (before the `abs` StyleTTS2 applies) and the labels, on every
  real frame (upstream; unvoiced frames pull the output to 0 Hz, which is what StyleTTS2 feeds its
  decoder there), or on voiced frames only (`f0_loss_frames='voiced'`); weight `lambda_f0` 0.1;
- voicing: binary cross-entropy of the detector's logit against "unvoiced" (label 0 Hz).
Unlike upstream, padding frames (clips shorter than the window) are left out of both losses.
AdamW (betas 0.9/0.98, eps 1e-9, weight decay 5e-4) with upstream's OneCycleLR at pct_start 0
reproduced as a cosine decay from `lr` (3e-4) to lr / 125 over the run (its beta1 cycling is not).

With `initial_f0='label_mean'`, a pitch extractor that starts from random weights starts its F0
head's bias at the training labels' mean voiced F0: the head then learns each frame's deviation
instead of climbing from 0 Hz, which takes a randomly initialised JDCNet hundreds of steps (on
the learning benchmark's corpus it predicted a flat ~55 Hz against labels near 110 Hz after 70).
Loaded or resumed weights keep their own bias.

Validation reports the losses and, against the labels on the held-out clips, the F0 error in
cents on frames voiced in the label (`f0_cents`, mean absolute, from the output StyleTTS2 reads,
`abs` of the head), the share of frames whose voicing the detector gets wrong (`voicing_error`), and
the F0 head's mean on frames unvoiced in the label (`unvoiced_f0_hz`, see `JDCNet.zero_unvoiced`).
"""
from __future__ import annotations

import logging

import gin
import torch
import torch.nn.functional as F

from styletts2.audio.mel_params import HOP_LENGTH
from styletts2.data.f0_labels import LabelSpec, f0_tracker, load_label, prepare_labels, summary
from styletts2.data.pitch_dataset import PitchCollater, PitchDataset

from . import distributed as dist_utils
from .optim import MultiOptimizer, build_multi_optimizer, build_scheduler
from .pretrained import load_pretrained_parts
from .stage import StepOutput, TrainingContext

logger = logging.getLogger(__name__)

TRAINED = ("pitch_extractor",)
# A predicted F0 under this counts as this (Hz) in the cents error: log2 of 0 is undefined.
MIN_F0_HZ = 1.0


def f0_metrics(f0: torch.Tensor, unvoiced_logit: torch.Tensor, labels: torch.Tensor,
               mask: torch.Tensor) -> dict[str, float]:
    """Error of predicted F0 (Hz) and voicing against label F0 (Hz, 0 = unvoiced) on `mask`ed frames.

    f0_cents: mean |1200 log2(predicted / label)| over frames voiced in the label (absent when none is);
    voicing_error: share of frames where (logit < 0, i.e. voiced) disagrees with (label > 0);
    unvoiced_f0_hz: mean predicted F0 over frames unvoiced in the label (absent when none is): what
        the decoder's harmonic source gets there unless `JDCNet.zero_unvoiced` (0 when fully trained).
    """
    voiced = labels > 0
    out = {"voicing_error": float(((unvoiced_logit < 0) != voiced)[mask].float().mean())}
    unvoiced = ~voiced & mask
    if unvoiced.any():
        out["unvoiced_f0_hz"] = float(f0[unvoiced].mean())
    sel = voiced & mask
    if sel.any():
        ratio = f0[sel].clamp(min=MIN_F0_HZ) / labels[sel]
        out["f0_cents"] = float((1200 * torch.log2(ratio)).abs().mean())
    return out


def mean_voiced_f0(entries) -> float:
    """Mean F0 (Hz) over the voiced frames (label > 0) of the cached label `entries`."""
    total, count = 0.0, 0
    for entry in entries:
        f0 = load_label(entry)
        voiced = f0[f0 > 0]
        total, count = total + float(voiced.sum(dtype="float64")), count + voiced.size
    if not count:
        raise ValueError("no voiced frame in the F0 labels")
    return total / count


@gin.configurable
class Stage0Pitch:
    """PitchExtractor's training of JDCNet.

    max_len: training window in mel frames (None: the network's `seq_len`, 192 upstream).
    lambda_f0: weight of the F0 loss (upstream loss_params.lambda_f0).
    f0_loss_frames: 'all' real frames (upstream) or 'voiced' frames only.
    dropout: dropout of the pooled features and the detector (upstream's layers: 0.5).
    gain_range: random gain of the training waves (upstream's augmentation), None = off.
    lr, betas, eps, weight_decay: the AdamW; lr is the peak of the schedule.
    final_lr_ratio: the rate decays (cosine) to lr x this over `total_steps` (upstream's OneCycleLR:
        1/125); None keeps lr constant.
    total_steps: the schedule's length; None = the run's epochs x batches per epoch.
    label_workers: processes tracking F0 when labels are missing (None: one per CPU, at most 16).
    initial_f0: None (upstream: the F0 head's bias starts at 0) or 'label_mean' (a randomly
        initialised head's bias starts at the training labels' mean voiced F0).
    """

    name = "stage0_pitch"

    def __init__(self, max_len: int | None = None, lambda_f0: float = 0.1, f0_loss_frames: str = "all",
                 dropout: float = 0.5, gain_range: tuple[float, float] | None = (0.5, 1.0), lr: float = 3e-4,
                 betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-9, weight_decay: float = 5e-4,
                 final_lr_ratio: float | None = 1 / 125, total_steps: int | None = None,
                 label_workers: int | None = None, initial_f0: str | None = None):
        if initial_f0 not in (None, "label_mean"):
            raise ValueError(f"initial_f0 must be None or 'label_mean', not {initial_f0!r}")
        if f0_loss_frames not in ("all", "voiced"):
            raise ValueError(f"f0_loss_frames must be 'all' or 'voiced', not {f0_loss_frames!r}")
        self.max_len = max_len
        self.lambda_f0 = lambda_f0
        self.f0_loss_frames = f0_loss_frames
        self.dropout = dropout
        self.gain_range = gain_range
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.final_lr_ratio = final_lr_ratio
        self.total_steps = total_steps
        self.label_workers = label_workers
        self.initial_f0 = initial_f0
        self._trainer = None
        self._label_mean_f0: float | None = None

    # --- data ----------------------------------------------------------------------------------

    def build_data(self, path: str, trainer):
        """(dataset, lengths, collate) of the corpus at `path`: training windows for the training
        corpus (the first call with `trainer.train_data`), whole clips otherwise."""
        training = self._trainer is None and path == trainer.train_data
        if training:
            self._trainer = trainer  # its epochs and batches per epoch size the lr schedule
        speech, lengths = trainer.speech_data(path)
        spec = LabelSpec(f0_tracker(), speech.sample_rate, HOP_LENGTH, speech.edge_padding)
        wavs = [r.wav for r in speech.records]
        roots = [r.source.parent for r in speech.records]
        env = trainer.env
        statuses = prepare_labels(wavs, roots, spec, self.label_workers, share=(env.rank, env.world_size),
                                  progress=env.is_main)
        if env.world_size > 1:  # every rank made its share (hours on a large corpus); now all read every label
            dist_utils.patient_barrier()
            statuses = prepare_labels(wavs, roots, spec, self.label_workers, progress=False)
        trainer.logger.info(f"corpus {path}: {summary(statuses)}")
        keep = [i for i, s in enumerate(statuses) if s.usable]
        if not keep:
            raise ValueError(f"corpus {path}: no clip has usable F0 labels")
        if training and self.initial_f0 == "label_mean":
            self._label_mean_f0 = mean_voiced_f0([statuses[i].entry for i in keep])
            trainer.logger.info(f"corpus {path}: mean voiced F0 {self._label_mean_f0:.1f} Hz, where a randomly "
                                "initialised F0 head starts (initial_f0='label_mean')")
        crop = self.max_len or trainer.model.pitch_extractor.seq_len
        dataset = PitchDataset(speech, [speech.records[i] for i in keep], [statuses[i].entry for i in keep],
                               crop_frames=crop if training else None,
                               gain_range=self.gain_range if training else None, seed=trainer.seed)
        return dataset, [lengths[i] for i in keep], PitchCollater(crop if training else None)

    # --- set-up ----------------------------------------------------------------------------------

    def _schedule_steps(self) -> int | None:
        if self.total_steps is not None:
            return self.total_steps
        if self._trainer is not None:
            return self._trainer.epochs * len(self._trainer.sampler)
        return None

    def setup(self, model, ctx: TrainingContext) -> None:
        self.model, self.ctx = model, ctx
        loaded = load_pretrained_parts(model, TRAINED)  # a pitch extractor to fine-tune, when bound
        if self._label_mean_f0 is not None and loaded["pitch_extractor"] == "random init":
            with torch.no_grad():  # a resumed run's checkpoint overwrites this, as it should
                model.pitch_extractor.classifier.bias.fill_(self._label_mean_f0)
        base = build_multi_optimizer(model, TRAINED, lr=self.lr, betas=self.betas, eps=self.eps,
                                     weight_decay=self.weight_decay, ctx=ctx, scheduler=False)
        steps = self._schedule_steps()
        schedulers = None
        if self.final_lr_ratio is not None and steps:
            schedulers = {n: build_scheduler(o, kind="cosine", total_steps=steps, warmup_steps=0,
                                             min_lr_ratio=self.final_lr_ratio) for n, o in base.optimizers.items()}
        elif self.final_lr_ratio is not None:
            logger.warning("stage0_pitch: no total_steps known; the learning rate stays at %g", self.lr)
        self.optimizer = MultiOptimizer(base.optimizers, schedulers, ctx=ctx, modules=base.modules)

    # --- steps -------------------------------------------------------------------------------------

    def _losses(self, f0: torch.Tensor, unvoiced_logit: torch.Tensor, batch) -> dict[str, torch.Tensor]:
        mask = batch.frame_mask()
        labels = batch.f0
        regress = mask & (labels > 0) if self.f0_loss_frames == "voiced" else mask
        # A window without a voiced frame has nothing to regress in 'voiced' mode: a zero loss.
        f0_loss = F.smooth_l1_loss(f0[regress], labels[regress]) if regress.any() else f0.sum() * 0
        sil = F.binary_cross_entropy_with_logits(unvoiced_logit[mask], (labels[mask] == 0).float())
        f0_loss = self.lambda_f0 * f0_loss
        # Named as upstream logs them: 'f0' already weighted.
        return {"loss": f0_loss + sil, "f0": f0_loss, "sil": sil}

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        jdc = self.model.pitch_extractor
        jdc.train()
        with self.ctx.autocast():
            f0, unvoiced = jdc.forward_with_voicing(batch.mels.unsqueeze(1), dropout=self.dropout)
        losses = self._losses(f0.float(), unvoiced.float(), batch)
        self.optimizer.step_on(losses["loss"], TRAINED, losses=losses)
        return StepOutput.of(losses)

    @torch.no_grad()
    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        f0, unvoiced = self.model.pitch_extractor.forward_with_voicing(batch.mels.unsqueeze(1))
        f0, unvoiced = f0.float(), unvoiced.float()
        out = {k: float(v) for k, v in self._losses(f0, unvoiced, batch).items()}
        out.update(f0_metrics(f0.abs(), unvoiced, batch.f0, batch.frame_mask()))
        return out

    # --- state ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        # Windows and gains come from the dataset's (seed, epoch, index) generators and dropout from
        # the global RNG the trainer restores: the optimiser and its schedule are the whole state.
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
