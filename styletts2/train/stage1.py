"""Stage 1: acoustic pre-training with the text aligner (upstream train_first.py).

One step:
1. the aligner's attention over the mel gives a soft alignment; the monotonic path through it a
   hard one; `asr = t_en @ alignment`, the soft or the hard one with probability 1/2 each;
2. one random window per item (`max_len` mel frames at most, the same length for the batch); a
   batch whose window is under 80 mel frames is skipped (the style encoder cannot read it);
3. style from the window (single speaker) or from another random window of the same utterance
   (multispeaker); F0 from the pitch extractor and energy from the mel, both without gradients;
4. `y = decoder(asr window, F0, N, style)`.
Before `TMA_epoch` the mel loss alone (unweighted) trains text_encoder, style_encoder and decoder.
From `TMA_epoch` on ("TMA": transferable monotonic aligner), the MPD/MSD discriminators take a step,
then `lambda_mel * mel + mono + s2s + adversarial + SLM feature matching` trains those modules and the
aligner. The loss weights are the loss objects' `weight` bindings. `adversarial_epoch`, when bound,
starts the discriminator step and the adversarial losses at their own epoch (Stage1's docstring).
"""
from __future__ import annotations

import gin
import torch

from styletts2.losses import (DiscriminatorLoss, GeneratorLoss, MonotonicAlignmentLoss, MultiResolutionSTFTLoss,
                              S2SCrossEntropyLoss, WavLMLoss)

from .activation_checkpointing import checkpoint_activations
from .batch_ops import (MIN_STYLE_FRAMES, StageRandom, aligner_attention, coin, draw_crop, frozen,
                        full_precision, log_validation_sample, monotonic_path, prosody_targets,
                        shortest_over_ranks, text_padding_mask)
from .distributed import broadcast_buffers
from .frozen_targets import FrozenTargetCache, lead_padded, make_cache
from .optim import build_multi_optimizer
from .pretrained import load_pretrained_parts, load_wavlm
from .stage import StepOutput, TrainingContext
from .validation_scores import ValidationScores

# Modules stage 1 trains, before and from TMA_epoch. Upstream also "steps" the pitch extractor,
# which never has gradients (it runs under no_grad), so it gets no optimiser here.
ACOUSTIC = ("text_encoder", "style_encoder", "decoder")
DISCRIMINATORS = ("msd", "mpd")
TRAINED = ACOUSTIC + ("text_aligner",) + DISCRIMINATORS


@gin.configurable
class Stage1:
    """Upstream's first training stage.

    max_len: longest training window in mel frames (upstream `max_len`: 400 LJSpeech, 300 LibriTTS).
    TMA_epoch: first epoch (0-based) of aligner training and adversarial losses (50 / 5).
    soft_attention_p: probability of decoding from the soft attention rather than the hard path.
    seed: seed of the stage's generators; None = drawn from the global RNG at setup (the trainer
        seeds it), plus the rank.
    cache_frozen_targets: before TMA, compute each clip's alignment and F0 once and reuse them
        (`FrozenTargetCache`: faster, not upstream's per-step computation). Off by default.
    alignment_lead_frames: move each cached alignment this many alignment frames earlier, to undo an
        aligner's lag (`FrozenTargetCache`; needs the cache; validation moves its alignments alike). 0 by default.
    adversarial_epoch: first epoch of the discriminator step and the generator's adversarial and SLM
        feature-matching losses; None (default) = `TMA_epoch`, as upstream. Set apart from it, the
        two phases are independent: before `TMA_epoch` the aligner stays frozen (and its targets
        cached) while the discriminators already train. The mel loss is weighted by `lambda_mel`
        once either phase has begun.
    score_on_path: the validation clips that `ValidationScores` decodes whole are decoded from the
        monotonic path through the attention (hard durations, as synthesis decodes) instead of the
        soft attention that upstream's validation loss uses. Off by default.
    """

    name = "stage1"

    def __init__(self, max_len: int = 400, TMA_epoch: int = 50, soft_attention_p: float = 0.5,
                 seed: int | None = None, cache_frozen_targets: bool = False, alignment_lead_frames: int = 0,
                 adversarial_epoch: int | None = None, score_on_path: bool = False):
        self.max_len = max_len
        self.cache = make_cache(cache_frozen_targets, alignment_lead_frames)
        self.alignment_lead_frames = alignment_lead_frames
        self.TMA_epoch = TMA_epoch
        self.adversarial_epoch = TMA_epoch if adversarial_epoch is None else adversarial_epoch
        self.soft_attention_p = soft_attention_p
        self.seed = seed
        self.score_on_path = score_on_path

    # --- set-up ------------------------------------------------------------------------------

    def setup(self, model, ctx: TrainingContext) -> None:
        self.model, self.ctx = model, ctx
        device = ctx.device
        load_pretrained_parts(model, ("text_aligner", "pitch_extractor"))
        self.stft_loss = MultiResolutionSTFTLoss().to(device)
        self.gen_loss = GeneratorLoss(model.mpd, model.msd)
        self.disc_loss = DiscriminatorLoss(model.mpd, model.msd)
        self.slm_loss = WavLMLoss(load_wavlm(model.wd), model.wd, model_sr=model.sample_rate).to(device)
        checkpoint_activations(model, wavlm=self.slm_loss.wavlm)  # none unless bound in gin
        self.mono_loss = MonotonicAlignmentLoss()
        self.s2s_loss = S2SCrossEntropyLoss()
        # Stage 1 trains every module at one rate (no PL-BERT / fine-tuning rates).
        self.optimizer = build_multi_optimizer(model, TRAINED, bert_lr=None, ft_lr=None, ctx=ctx)
        seed = self.seed if self.seed is not None else int(torch.randint(2**62, ()))
        self.rng = StageRandom(seed + ctx.rank, device)
        self._val_rng: tuple[int, torch.Generator] | None = None
        self.scores = ValidationScores()  # whole clips through the offline evaluator (off unless bound)

    # --- training ----------------------------------------------------------------------------

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        m, device = self.model, self.ctx.device
        m.train()  # upstream keeps every module in train mode (the pitch extractor's batch norm included)
        tma = epoch >= self.TMA_epoch
        g = self.rng.cpu

        cached = self.cache is not None and not tma
        with self.ctx.autocast():
            if cached:
                attention, path = self.cache.alignment(m.text_aligner, batch)
            else:
                # Before TMA the aligner is not trained: no graph through it.
                with torch.set_grad_enabled(tma):
                    s2s_logits, attention, align_lengths = aligner_attention(
                        m.text_aligner, batch.mels, batch.mel_lengths, batch.tokens, batch.token_lengths)
                path = monotonic_path(attention, batch.token_lengths, align_lengths)
            t_en = m.text_encoder(batch.tokens, batch.token_lengths,
                                  text_padding_mask(batch.tokens, batch.token_lengths))
            asr = t_en @ (attention if coin(g, self.soft_attention_p) else path).to(t_en.dtype)

        crop = draw_crop(batch.mel_lengths, self.max_len, g, shortest_over_ranks(batch.mel_lengths, device))
        if crop.mel_frames < MIN_STYLE_FRAMES:
            return StepOutput(skipped=True, reason=f"training window of {crop.mel_frames} mel frames is under "
                                                   f"the style encoder's {MIN_STYLE_FRAMES}")
        gt = crop.mels(batch.mels)
        wav = crop.waves(batch.waves, device)
        # Multispeaker: style from another window, so the decoder cannot copy it from its target.
        st = draw_crop(batch.mel_lengths, None, g).mels(batch.mels) if m.multispeaker else gt
        if cached:
            f0_real, n_real = self.cache.prosody(m.pitch_extractor, batch, crop, gt)
        else:
            f0_real, n_real = prosody_targets(m.pitch_extractor, gt)
            # Train mode updated its BatchNorm statistics from this rank's shard: keep rank 0's on
            # every rank, as upstream's (DDP-wrapped) pitch extractor does.
            broadcast_buffers(m.pitch_extractor)
        with self.ctx.autocast():
            s = m.style_encoder(st.unsqueeze(1))
            y_rec = m.decoder(crop.aligned(asr), f0_real, n_real, s)

        losses = self._losses(y_rec, wav.unsqueeze(1), tma, epoch >= self.adversarial_epoch,
                              attention, path, s2s_logits if tma else None, batch)
        return StepOutput.of(losses)

    def _losses(self, y_rec, real, tma: bool, adversarial: bool, attention, path, s2s_logits, batch):
        """The discriminator step (adversarial phase), then the loss of the trained modules and its step."""
        m = self.model
        losses: dict[str, torch.Tensor] = {}
        with full_precision(self.ctx.device):
            y_rec = y_rec.float()
            if adversarial:
                losses["d_loss"] = self.disc_loss(real, y_rec.detach())
                self.optimizer.step_on(losses["d_loss"], DISCRIMINATORS, losses={"d_loss": losses["d_loss"]})
            losses["mel"] = self.stft_loss(y_rec, real)
            # Upstream's pure pre-TMA phase uses the mel loss unweighted.
            weights = {"mel": self.stft_loss.weight if tma or adversarial else 1.0}
            if tma:
                losses["mono"] = self.mono_loss(attention.float(), path.float())
                losses["s2s"] = self.s2s_loss(s2s_logits.float(), batch.tokens, batch.token_lengths)
                weights.update(mono=self.mono_loss.weight, s2s=self.s2s_loss.weight)
            if adversarial:
                with frozen(m.mpd, m.msd):  # their gradients from this loss would be thrown away
                    losses["gen"] = self.gen_loss(real, y_rec)
                weights["gen"] = self.gen_loss.weight
                if self.slm_loss.weight != 0:  # a zero-weight loss is not computed
                    losses["slm"] = self.slm_loss(real, y_rec)
                    weights["slm"] = self.slm_loss.weight
            total = sum(weights[k] * losses[k] for k in weights)
        names = ACOUSTIC + ("text_aligner",) if tma else ACOUSTIC
        self.optimizer.step_on(total, names, losses={k: v for k, v in losses.items() if k != "d_loss"})
        return losses

    # --- validation ----------------------------------------------------------------------------

    def _validation_generator(self, epoch: int) -> torch.Generator:
        """Validation crops come from their own generator, reset each epoch: validating draws
        nothing from the training generators, and every epoch sees the same windows."""
        if self._val_rng is None or self._val_rng[0] != epoch:
            self._val_rng = (epoch, torch.Generator().manual_seed(1_000_003 + self.ctx.rank))
        return self._val_rng[1]

    def start_validation(self) -> None:
        """Each validation pass sees the same windows and scores the same clips."""
        self._val_rng = None
        self.scores.restart()

    @torch.no_grad()
    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        """Upstream's stage-1 validation: mel loss of a window decoded from the soft attention.
        (The aligner masks unknown tokens here too, as upstream's does in eval mode.)"""
        m = self.model
        _, attention, align_lengths = aligner_attention(m.text_aligner, batch.mels, batch.mel_lengths, batch.tokens,
                                                        batch.token_lengths, mask_unk=True)
        attention = lead_padded(attention, align_lengths, self.alignment_lead_frames)
        t_en = m.text_encoder(batch.tokens, batch.token_lengths, text_padding_mask(batch.tokens, batch.token_lengths))
        asr = t_en @ attention
        crop = draw_crop(batch.mel_lengths, self.max_len, self._validation_generator(epoch))
        gt = crop.mels(batch.mels)
        f0_real, n_real = prosody_targets(m.pitch_extractor, gt)
        y_rec = m.decoder(crop.aligned(asr), f0_real, n_real, m.style_encoder(gt.unsqueeze(1)))
        real = crop.waves(batch.waves, self.ctx.device).unsqueeze(1)
        log_validation_sample(self.ctx, epoch, y_rec, real)

        scored = asr
        if self.score_on_path:
            scored = t_en @ monotonic_path(attention, batch.token_lengths, align_lengths).to(t_en.dtype)

        def decode_whole(i: int, length: int, mel: torch.Tensor) -> torch.Tensor:
            return m.decoder(scored[i:i + 1, :, :length], *prosody_targets(m.pitch_extractor, mel),
                             m.style_encoder(mel.unsqueeze(1)))

        return {"mel": float(self.stft_loss(y_rec.float(), real)),
                **self.scores.score_batch(batch, epoch, decode_whole, m.sample_rate)}

    # --- state ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "rng": self.rng.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.load_state_dict(state["rng"])

    def rank_state_dict(self) -> dict:
        """This rank's generators (seeded seed + rank); the trainer saves one per rank."""
        return {"rng": self.rng.state_dict()}

    def load_rank_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state["rng"])
