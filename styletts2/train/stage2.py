"""Stage 2: joint training of the prosody side, the style diffusion and SLM adversarial training
(upstream train_second.py), and the fine-tuning recipe (upstream train_finetune.py).

Start: the stage-1 checkpoint gives text_encoder, style_encoder, decoder, text_aligner and
pitch_extractor; bert comes from PL-BERT; bert_encoder, predictor, diffusion and the three
discriminators start from random weights; predictor_encoder starts as a copy of style_encoder.
(Fine-tuning instead loads a whole stage-2 checkpoint.)

One step (`epoch` counts from 0):
1. without gradients: the aligner's attention and its monotonic path (hard alignment), the text
   encoder, `asr = t_en @ path`, durations = frames per token of the path; the acoustic style of each
   whole utterance (half of the diffusion target);
2. the prosodic style of each whole utterance; PL-BERT and its projection; the predictor's
   durations and frame-level features;
3. from `diff_epoch`: sigma_data re-estimated from the batch's styles, the diffusion EDM loss and
   the style loss (L1 between styles sampled in 3-4 steps and the encoders' styles);
4. a random window as in stage 1; F0 / N predicted from the window's prosodic style and compared
   with the pitch extractor's F0 and the mel's energy; the decoder's target is its own output from
   the true F0 / N before `joint_epoch` (the decoder is frozen then) and the recording after;
5. from `diff_epoch` a discriminator step (MPD + MSD) and the adversarial generator loss;
6. the generator step of bert, bert_encoder, predictor, predictor_encoder (+ diffusion from
   `diff_epoch`, + style_encoder and decoder from `joint_epoch`);
7. from `joint_epoch` the SLM adversarial step (`slm_adversarial.py`).
Modules run in eval mode except predictor, bert, bert_encoder, msd and mpd (upstream); the
aligner masks unknown tokens anyway, as upstream's does in eval mode.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

import gin
import torch

from styletts2.checkpoint import load_net_state, net_entry, torch_load
from styletts2.losses import (DiscriminatorLoss, DurationLoss, F0ReconstructionLoss, GeneratorLoss,
                              MonotonicAlignmentLoss, MultiResolutionSTFTLoss, NormReconstructionLoss,
                              S2SCrossEntropyLoss, StyleReconstructionLoss, WavLMLoss)

from .activation_checkpointing import checkpoint_activations
from .batch_ops import (MIN_STYLE_FRAMES, StageRandom, aligner_attention, coin, draw_crop, frozen,
                        full_precision, log_validation_sample, monotonic_path, prosody_targets, randint,
                        shortest_over_ranks, text_padding_mask, utterance_styles)
from .distributed import all_ranks_agree
from .frozen_targets import FrozenTargetCache, lead_padded, make_cache
from .optim import build_multi_optimizer
from .pretrained import load_pretrained_parts, load_wavlm
from .slm_adversarial import SLMAdversarial
from .stage import StepOutput, TrainingContext
from .validation_scores import ValidationScores

logger = logging.getLogger(__name__)

# Stage-1 modules stage 2 starts from fresh (upstream's ignore_modules); bert then comes from PL-BERT.
REINITIALISED = ("bert", "bert_encoder", "predictor", "predictor_encoder", "msd", "mpd", "wd", "diffusion")
# Modules in train mode during stage 2 (all others run in eval mode).
TRAIN_MODE = ("predictor", "bert_encoder", "bert", "msd", "mpd")
# Generator modules the main step trains always, from diff_epoch, and from joint_epoch.
PROSODY = ("bert_encoder", "bert", "predictor", "predictor_encoder")
ACOUSTIC = ("style_encoder", "decoder")
DISCRIMINATORS = ("msd", "mpd")
SLM_TRAINED = ("bert_encoder", "bert", "predictor", "diffusion")
# Classifier-free dropout while sampling styles for the style loss (upstream's training value).
SAMPLING_MASK_PROBA = 0.1


def load_first_stage(model, path: str) -> list[str]:
    """Upstream's stage-2 start from a stage-1 checkpoint (see the module docstring). Loads strictly;
    returns the modules loaded."""
    loaded = load_net_state(model.nets, net_entry(torch_load(path), path), skip=REINITIALISED)
    model.predictor_encoder.load_state_dict(model.style_encoder.state_dict())
    fresh = [n for n in REINITIALISED if n != "predictor_encoder"]
    logger.info("stage 2 starts from %s: loaded %s; predictor_encoder copied from style_encoder; %s start fresh",
                path, ", ".join(loaded), ", ".join(fresh))
    return loaded


class FrozenAlignment:
    """Stage 2's alignment: the aligner and text encoder are frozen; the monotonic path of the
    aligner's attention (each clip's computed once where `cache` is given)."""

    trained_modules: tuple[str, ...] = ()

    def __init__(self, cache: FrozenTargetCache | None = None):
        self.cache = cache

    def __call__(self, model, batch, g: torch.Generator):
        """(asr, hard path, None, None)."""
        text_mask = text_padding_mask(batch.tokens, batch.token_lengths)
        with torch.no_grad():
            if self.cache is not None:
                _, path = self.cache.alignment(model.text_aligner, batch)
            else:
                _, attention, align_lengths = aligner_attention(
                    model.text_aligner, batch.mels, batch.mel_lengths, batch.tokens, batch.token_lengths, mask_unk=True)
                path = monotonic_path(attention, batch.token_lengths, align_lengths)
            return model.text_encoder(batch.tokens, batch.token_lengths, text_mask) @ path, path, None, None

    def losses(self, text: TextPass, batch, mono_loss, s2s_loss) -> dict[str, torch.Tensor]:
        return {}


class TrainedAlignment(FrozenAlignment):
    """Fine-tuning's alignment: the aligner and text encoder train as in stage 1: the text encoding is
    expanded by the soft attention or the hard path, half the time each, and the monotonic and s2s
    losses train the aligner."""

    trained_modules = ("text_encoder", "text_aligner")

    def __call__(self, model, batch, g: torch.Generator):
        """(asr, hard path, s2s logits, attention)."""
        text_mask = text_padding_mask(batch.tokens, batch.token_lengths)
        s2s_logits, attention, align_lengths = aligner_attention(
            model.text_aligner, batch.mels, batch.mel_lengths, batch.tokens, batch.token_lengths, mask_unk=None)
        path = monotonic_path(attention, batch.token_lengths, align_lengths)
        t_en = model.text_encoder(batch.tokens, batch.token_lengths, text_mask)
        asr = t_en @ (attention if coin(g) else path).to(t_en.dtype)
        return asr, path, s2s_logits, attention

    def losses(self, text: TextPass, batch, mono_loss, s2s_loss) -> dict[str, torch.Tensor]:
        return {"mono": mono_loss(text.attention.float(), text.path.float()),
                "s2s": s2s_loss(text.s2s_logits.float(), batch.tokens, batch.token_lengths)}


@dataclass
class TextPass:
    """What a stage-2 step computes over the whole utterance before it crops a training window."""

    asr: torch.Tensor              # text encoding expanded by the alignment [B, C, frames]
    path: torch.Tensor             # hard monotonic alignment [B, tokens, frames]
    s2s_logits: torch.Tensor | None  # the aligner's decoder logits (fine-tuning's s2s loss; None when frozen)
    attention: torch.Tensor | None   # the aligner's soft attention (fine-tuning's monotonic loss; None when frozen)
    reference: torch.Tensor | None  # multispeaker, diffusing: the reference clip's [acoustic | prosodic]
    target_styles: torch.Tensor    # the utterance's [acoustic | prosodic] styles, detached
    duration_logits: torch.Tensor
    p: torch.Tensor                # the duration encoder's output, expanded by the alignment


@gin.configurable
class Stage2:
    """Upstream's second training stage.

    first_stage_checkpoint: the stage-1 checkpoint to start from (upstream `first_stage_path`).
    max_len: longest training window in mel frames (400 LJSpeech, 300 LibriTTS).
    diff_epoch / joint_epoch: first epoch (0-based) of style diffusion / of joint training with the
        SLM adversarial step (20 / 50 LJSpeech, 10 / 15 LibriTTS).
    estimate_sigma_data: re-estimate the diffusion's sigma_data from every batch's styles; the model
        keeps the mean of the estimates so far (what upstream writes into its config).
    lambda_diff: weight of the diffusion (EDM) loss (upstream's lambda_diff, 1); the other weights
        are the loss objects' `weight` bindings.
    slm_adversarial: the SLM adversarial settings (`SLMAdversarial`, upstream's slmadv_params).
    seed: seed of the stage's generators; None = drawn from the global RNG at setup, plus the rank.
    cache_frozen_targets: compute each clip's alignment and F0 once and reuse them while the aligner
        and pitch extractor are frozen, and its acoustic style while the style encoder is, before the
        joint phase (`FrozenTargetCache`; not when fine-tuning). Off by default.
    alignment_lead_frames: move each cached alignment this many alignment frames earlier, to undo an
        aligner's lag (`FrozenTargetCache`; needs the cache; validation moves its alignments alike). 0 by default.
    """

    name = "stage2"

    def __init__(self, first_stage_checkpoint: str | None = None, max_len: int = 400, diff_epoch: int = 20,
                 joint_epoch: int = 50, estimate_sigma_data: bool = True,
                 lambda_diff: float = 1.0, slm_adversarial: SLMAdversarial | None = None, seed: int | None = None,
                 cache_frozen_targets: bool = False, alignment_lead_frames: int = 0):
        if joint_epoch < diff_epoch:
            raise ValueError(f"joint_epoch ({joint_epoch}) must not come before diff_epoch ({diff_epoch}): the SLM "
                             "adversarial step samples styles from the diffusion model")
        self.checkpoint = first_stage_checkpoint
        self.lambda_diff = lambda_diff
        self.max_len = max_len
        self.diff_epoch, self.joint_epoch = diff_epoch, joint_epoch
        self.estimate_sigma_data = estimate_sigma_data
        self.slm_adversarial = slm_adversarial if slm_adversarial is not None else SLMAdversarial()
        self.seed = seed
        self.cache = make_cache(cache_frozen_targets, alignment_lead_frames)
        self.alignment_lead_frames = alignment_lead_frames
        self.alignment: FrozenAlignment | TrainedAlignment = FrozenAlignment(self.cache)

    # --- set-up ------------------------------------------------------------------------------

    def _load_start(self, model) -> None:
        if self.checkpoint is None:
            raise ValueError("stage 2 needs the stage-1 checkpoint: bind Stage2.first_stage_checkpoint")
        load_first_stage(model, self.checkpoint)
        load_pretrained_parts(model, ("bert",))

    def _trained_modules(self) -> tuple[str, ...]:
        return PROSODY + ("diffusion",) + ACOUSTIC + DISCRIMINATORS + ("wd",) + self.alignment.trained_modules

    def setup(self, model, ctx: TrainingContext) -> None:
        self.model, self.ctx = model, ctx
        device = ctx.device
        self._load_start(model)
        self.stft_loss = MultiResolutionSTFTLoss().to(device)
        self.gen_loss = GeneratorLoss(model.mpd, model.msd)
        self.disc_loss = DiscriminatorLoss(model.mpd, model.msd)
        self.slm_loss = WavLMLoss(load_wavlm(model.wd), model.wd, model_sr=model.sample_rate).to(device)
        checkpoint_activations(model, wavlm=self.slm_loss.wavlm)  # none unless bound in gin
        self.f0_loss, self.norm_loss = F0ReconstructionLoss(), NormReconstructionLoss()
        self.dur_loss, self.sty_loss = DurationLoss(), StyleReconstructionLoss()
        self.mono_loss, self.s2s_loss = MonotonicAlignmentLoss(), S2SCrossEntropyLoss()
        # Rates: build_multi_optimizer's bindings (gin/trainer/stage2_rates.gin: PL-BERT and the
        # acoustic modules get their own).
        self.optimizer = build_multi_optimizer(model, self._trained_modules(), ctx=ctx)
        logger.info("learning rates: %s", ", ".join(f"{n} {self.optimizer.lr(n):g}" for n in self.optimizer.names))
        seed = self.seed if self.seed is not None else int(torch.randint(2**62, ()))
        self.rng = StageRandom(seed + ctx.rank, device)
        self.sigma_sum, self.sigma_count = 0.0, 0
        self._val_rng: tuple[int, torch.Generator] | None = None
        self.scores = ValidationScores()  # whole clips through the offline evaluator (off unless bound)

    def _set_modes(self) -> None:
        self.model.eval()
        for name in TRAIN_MODE + self.alignment.trained_modules:
            self.model.nets[name].train()

    # --- training ----------------------------------------------------------------------------

    def _phases(self, epoch: int) -> tuple[bool, bool, bool, bool]:
        """(diffusing, joint, adversarial, real_target): style diffusion from diff_epoch; from
        joint_epoch the SLM step, and the decoder trains on the recording (before, it is frozen and
        targets its own reconstruction); the MPD/MSD losses from diff_epoch."""
        diffusing, joint = epoch >= self.diff_epoch, epoch >= self.joint_epoch
        return diffusing, joint, diffusing, joint

    def _style_window(self, batch, gt: torch.Tensor) -> torch.Tensor:
        """The mels both styles are read from: multispeaker stage 2 takes another window of the utterance."""
        return draw_crop(batch.mel_lengths, None, self.rng.cpu).mels(batch.mels) if self.model.multispeaker else gt

    def _style_loss_terms(self, bert_dur, target, reference, losses) -> None:
        """Diffusion (EDM) loss and style loss, with sigma_data re-estimated from this batch."""
        m, g = self.model, self.rng.cpu
        if self.estimate_sigma_data:
            sigma = float(target.std(dim=-1).mean())
            m.diffusion.sigma_data = sigma
            self.sigma_sum, self.sigma_count = self.sigma_sum + sigma, self.sigma_count + 1
        sampled = m.diffusion.sample(None, bert_dur, num_steps=randint(g, 3, 5), features=reference,
                                     generator=self.rng.device, embedding_mask_proba=SAMPLING_MASK_PROBA)
        if m.multispeaker:  # with classifier-free dropout, as upstream's multispeaker stage 2
            losses["diff"] = m.diffusion(target.unsqueeze(1), bert_dur, features=reference, generator=self.rng.device)
        else:  # upstream's single-speaker stage 2 trains without the dropout
            losses["diff"] = m.diffusion.diffusion.loss(target.unsqueeze(1), bert_dur, generator=self.rng.device)
        losses["sty"] = self.sty_loss(sampled.squeeze(1), target)

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        m, ctx, device, g = self.model, self.ctx, self.ctx.device, self.rng.cpu
        self._set_modes()
        diffusing, joint, adversarial, real_target = self._phases(epoch)
        losses: dict[str, torch.Tensor] = {}
        text = self._text_pass(batch, diffusing, losses, style_encoder_trains=real_target)

        crop = draw_crop(batch.mel_lengths, self.max_len, g, shortest_over_ranks(batch.mel_lengths, device))
        if crop.mel_frames < MIN_STYLE_FRAMES:
            return StepOutput(skipped=True, reason=f"training window of {crop.mel_frames} mel frames is under "
                                                   f"the style encoder's {MIN_STYLE_FRAMES}")
        en, p_en, gt = crop.aligned(text.asr), crop.aligned(text.p), crop.mels(batch.mels)
        real = crop.waves(batch.waves, device).unsqueeze(1)
        st = self._style_window(batch, gt)
        f0_real, n_real = (prosody_targets(m.pitch_extractor, gt) if self.cache is None
                           else self.cache.prosody(m.pitch_extractor, batch, crop, gt))
        # A zero-weight loss is not computed: the same update, without its cost. Before the joint phase,
        # with the mel, adversarial and SLM weights all 0, the decoder does not run at all.
        adversarial = adversarial and self.gen_loss.weight != 0
        decoding = real_target or adversarial or self.stft_loss.weight != 0 or self.slm_loss.weight != 0
        with ctx.autocast():
            s_dur = m.predictor_encoder(st.unsqueeze(1))
            if decoding:
                with torch.set_grad_enabled(real_target):  # the style encoder trains with the decoder
                    s = m.style_encoder(st.unsqueeze(1))
                with torch.no_grad():
                    reconstructed = m.decoder(en, f0_real, n_real, s).float()
            f0_fake, n_fake = m.predictor.F0Ntrain(p_en, s_dur)
            if decoding:  # (in this order: the decoders and F0Ntrain's dropout draw from one generator)
                # Before joint training the decoder is frozen: gradients pass through it to F0 / N only.
                with nullcontext() if real_target else frozen(m.decoder):
                    y_rec = m.decoder(en, f0_fake, n_fake, s)

        with full_precision(device):
            losses["F0"] = self.f0_loss(f0_real, f0_fake.float())
            losses["norm"] = self.norm_loss(n_real, n_fake.float())
            if decoding:
                y_rec = y_rec.float()
                self._decoder_loss_terms(y_rec, real if real_target else reconstructed, adversarial, losses)
            losses["ce"], losses["dur"] = self.dur_loss(text.duration_logits.float(), text.path.sum(dim=-1),
                                                        batch.token_lengths)
            losses.update(self.alignment.losses(text, batch, self.mono_loss, self.s2s_loss))
            total = self._weighted_sum(losses)
        names = PROSODY + (("diffusion",) if diffusing else ()) + (ACOUSTIC if real_target else ())
        names += self.alignment.trained_modules
        self.optimizer.step_on(total, names, losses={k: v for k, v in losses.items() if k != "d_loss"})

        if joint:
            with ctx.autocast():
                self._slm_step(batch, step, real, reconstructed, text.target_styles, text.reference, losses)
        if self.estimate_sigma_data and self.sigma_count:
            m.diffusion.sigma_data = self.sigma_sum / self.sigma_count  # what a checkpoint records
        return StepOutput.of(losses)

    def _text_pass(self, batch, diffusing: bool, losses: dict[str, torch.Tensor],
                   style_encoder_trains: bool = True) -> TextPass:
        """Alignment, the utterance's target styles, PL-BERT and the duration predictor over the whole
        utterance; diffusing, the style diffusion's losses go into `losses`."""
        m = self.model
        text_mask = text_padding_mask(batch.tokens, batch.token_lengths)
        with self.ctx.autocast():
            asr, path, s2s_logits, attention = self.alignment(m, batch, self.rng.cpu)
            with torch.no_grad():
                reference = None
                if m.multispeaker and diffusing:
                    reference = torch.cat([m.style_encoder(batch.ref_mels.unsqueeze(1)),
                                           m.predictor_encoder(batch.ref_mels.unsqueeze(1))], dim=1)
                if self.cache is None or style_encoder_trains:
                    acoustic = utterance_styles(m.style_encoder, batch.mels, batch.mel_lengths)
                else:  # frozen and in eval mode: each clip's value never changes
                    acoustic = self.cache.styles(m.style_encoder, batch)
            prosodic = utterance_styles(m.predictor_encoder, batch.mels, batch.mel_lengths)
            target_styles = torch.cat([acoustic, prosodic], dim=-1).detach()
            bert_dur = m.bert(batch.tokens, attention_mask=(~text_mask).int())
            d_en = m.bert_encoder(bert_dur).transpose(-1, -2)
            if diffusing:
                self._style_loss_terms(bert_dur, target_styles, reference, losses)
            duration_logits, p = m.predictor(d_en, prosodic, batch.token_lengths, path.to(d_en.dtype), text_mask)
        return TextPass(asr, path, s2s_logits, attention, reference, target_styles, duration_logits, p)

    def _decoder_loss_terms(self, y_rec: torch.Tensor, target: torch.Tensor, adversarial: bool,
                            losses: dict[str, torch.Tensor]) -> None:
        """Mel, and the adversarial and SLM terms where their weights are not 0; the discriminators
        take their step here."""
        if adversarial:
            losses["d_loss"] = self.disc_loss(target, y_rec.detach())
            self.optimizer.step_on(losses["d_loss"], DISCRIMINATORS, losses={"d_loss": losses["d_loss"]})
        if self.stft_loss.weight != 0:
            losses["mel"] = self.stft_loss(y_rec, target)
        if adversarial:
            with frozen(self.model.mpd, self.model.msd):
                losses["gen"] = self.gen_loss(target, y_rec)
        if self.slm_loss.weight != 0:
            losses["slm"] = self.slm_loss(target, y_rec)

    def _weighted_sum(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = {"mel": self.stft_loss.weight, "F0": self.f0_loss.weight, "norm": self.norm_loss.weight,
                   "ce": self.dur_loss.ce_weight, "dur": self.dur_loss.dur_weight, "gen": self.gen_loss.weight,
                   "slm": self.slm_loss.weight, "sty": self.sty_loss.weight, "diff": self.lambda_diff,
                   "mono": self.mono_loss.weight, "s2s": self.s2s_loss.weight}
        return sum(weights[k] * v for k, v in losses.items() if k != "d_loss")

    def _slm_step(self, batch, step, real, reconstructed, target_styles, reference, losses) -> None:
        m, g = self.model, self.rng.cpu
        in_distribution = coin(g)
        if in_distribution:
            tokens, lengths = batch.tokens, batch.token_lengths
        elif batch.ood_tokens is None:
            raise ValueError("the SLM adversarial step needs out-of-distribution texts: bind Trainer.ood_data "
                             "(upstream's OOD_texts.txt)")
        else:
            tokens, lengths = batch.ood_tokens, batch.ood_lengths
        out = self.slm_adversarial(m, self.slm_loss, self.rng, step, real, reconstructed, batch.waves,
                                   batch.mel_lengths, tokens, lengths, in_distribution, target_styles, reference)
        # Fewer than two utterances long enough for the SLM window: skip it, on every rank alike
        # (the steps below synchronise gradients across ranks).
        if not all_ranks_agree(out is not None, self.ctx.device):
            return
        losses["slm_gen"] = out.generator_loss
        self.slm_adversarial.generator_step(self.optimizer, out.generator_loss, SLM_TRAINED, m)
        if out.discriminator_loss is not None:
            losses["slm_d_loss"] = out.discriminator_loss
            self.optimizer.step_on(out.discriminator_loss, ("wd",), losses={"slm_d_loss": out.discriminator_loss})

    # --- validation ----------------------------------------------------------------------------

    def _validation_generator(self, epoch: int) -> torch.Generator:
        """Validation crops come from their own generator, reset each epoch (see Stage1)."""
        if self._val_rng is None or self._val_rng[0] != epoch:
            self._val_rng = (epoch, torch.Generator().manual_seed(1_000_003 + self.ctx.rank))
        return self._val_rng[1]

    def start_validation(self) -> None:
        """Each validation pass sees the same windows and scores the same clips."""
        self._val_rng = None
        self.scores.restart()

    @torch.no_grad()
    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        """Upstream's stage-2 validation: mel loss of a window decoded with predicted F0 / N, the
        duration L1 and the F0 loss. The window spans the shortest utterance, as upstream's."""
        m = self.model
        text_mask = text_padding_mask(batch.tokens, batch.token_lengths)
        _, attention, align_lengths = aligner_attention(m.text_aligner, batch.mels, batch.mel_lengths, batch.tokens,
                                                        batch.token_lengths, mask_unk=True)
        path = lead_padded(monotonic_path(attention, batch.token_lengths, align_lengths), align_lengths,
                           self.alignment_lead_frames)
        asr = m.text_encoder(batch.tokens, batch.token_lengths, text_mask) @ path
        prosodic = utterance_styles(m.predictor_encoder, batch.mels, batch.mel_lengths)
        d_en = m.bert_encoder(m.bert(batch.tokens, attention_mask=(~text_mask).int())).transpose(-1, -2)
        duration_logits, p = m.predictor(d_en, prosodic, batch.token_lengths, path, text_mask)
        crop = draw_crop(batch.mel_lengths, None, self._validation_generator(epoch))
        gt = crop.mels(batch.mels)
        f0_fake, n_fake = m.predictor.F0Ntrain(crop.aligned(p), m.predictor_encoder(gt.unsqueeze(1)))
        y_rec = m.decoder(crop.aligned(asr), f0_fake, n_fake, m.style_encoder(gt.unsqueeze(1)))
        f0_real, _ = prosody_targets(m.pitch_extractor, gt)
        _, dur = self.dur_loss(duration_logits, path.sum(dim=-1), batch.token_lengths)
        real = crop.waves(batch.waves, self.ctx.device).unsqueeze(1)
        log_validation_sample(self.ctx, epoch, y_rec, real)

        def decode_whole(i: int, length: int, mel: torch.Tensor) -> torch.Tensor:
            f0, n = m.predictor.F0Ntrain(p[i:i + 1, :, :length], m.predictor_encoder(mel.unsqueeze(1)))
            return m.decoder(asr[i:i + 1, :, :length], f0, n, m.style_encoder(mel.unsqueeze(1)))

        return {"mel": float(self.stft_loss(y_rec.float(), real)), "dur": float(dur),
                "F0": float(torch.nn.functional.l1_loss(f0_real, f0_fake) / self.f0_loss.divisor),
                **self.scores.score_batch(batch, epoch, decode_whole, m.sample_rate)}

    # --- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "rng": self.rng.state_dict(),
                "sigma_data_estimates": (self.sigma_sum, self.sigma_count)}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.load_state_dict(state["rng"])
        self.sigma_sum, self.sigma_count = state["sigma_data_estimates"]

    def rank_state_dict(self) -> dict:
        """This rank's generators (seeded seed + rank); the trainer saves one per rank."""
        return {"rng": self.rng.state_dict()}

    def load_rank_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state["rng"])


@gin.configurable
class FinetuneStage(Stage2):
    """Upstream's fine-tuning (train_finetune.py, Configs/config_ft.yml): stage 2 started from a whole
    stage-2 checkpoint (e.g. LibriTTS), where the aligner and text encoder train too (with stage 1's
    monotonic and s2s losses, soft or hard alignment at random), the decoder always targets the
    recording and trains from the first epoch, the MPD/MSD adversarial losses run from the first
    epoch, and both styles come from the training window.

    pretrained_checkpoint: the stage-2 checkpoint to start from (every module loads, strictly).
    Defaults are config_ft.yml's: diff_epoch 10, joint_epoch 30 (and in gin: ft_lr 1e-4).
    """

    name = "finetune"

    def __init__(self, pretrained_checkpoint: str | None = None, max_len: int = 400, diff_epoch: int = 10,
                 joint_epoch: int = 30, estimate_sigma_data: bool = True,
                 lambda_diff: float = 1.0, slm_adversarial: SLMAdversarial | None = None, seed: int | None = None):
        super().__init__(None, max_len, diff_epoch, joint_epoch, estimate_sigma_data, lambda_diff,
                         slm_adversarial, seed)
        self.checkpoint = pretrained_checkpoint
        self.alignment = TrainedAlignment()

    def _load_start(self, model) -> None:
        if self.checkpoint is None:
            raise ValueError("fine-tuning needs a stage-2 checkpoint: bind FinetuneStage.pretrained_checkpoint")
        state = torch_load(self.checkpoint)
        loaded = load_net_state(model.nets, net_entry(state, self.checkpoint))
        if "sigma_data" in state:
            model.diffusion.sigma_data = float(state["sigma_data"])
        logger.info("fine-tuning starts from %s: loaded %s", self.checkpoint, ", ".join(loaded))

    def _phases(self, epoch: int) -> tuple[bool, bool, bool, bool]:
        """The decoder targets the recording and the MPD/MSD losses run from the first epoch."""
        diffusing, joint, _, _ = super()._phases(epoch)
        return diffusing, joint, True, True

    def _style_window(self, batch, gt: torch.Tensor) -> torch.Tensor:
        """Both styles come from the training window itself."""
        return gt
