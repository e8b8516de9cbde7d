"""SLM adversarial training (stage 2 from `joint_epoch`; upstream Modules/slmadv.py).

Speech is synthesised end to end from text, with styles sampled by the diffusion model and
durations made differentiable (a Gaussian-smoothed alignment, `styletts2.alignment`), and judged
by the WavLM discriminator `wd`. The generator loss trains PL-BERT, its projection, the prosody
predictor and the diffusion model; the discriminator loss (every `skip_update` steps) trains `wd`.

The texts are the batch's own (in-distribution) or out-of-distribution ones, half the time each
(the stage decides). Only utterances longer than the window `min_len`..`max_len` mel frames take
part, at most `batch_percentage` of the batch (memory), and at least two or the step is skipped.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gin
import torch
import torch.nn.functional as F

from styletts2.alignment import differentiable_alignment
from styletts2.host_values import on_host
from styletts2.losses import WavLMLoss
from styletts2.modules.masks import length_to_mask

from .batch_ops import ALIGN_FRAME, MEL_HOP, StageRandom, coin, frozen, full_precision, randint
from .optim import MultiOptimizer

# Classifier-free dropout of the text embedding while sampling styles, as upstream's training.
SAMPLING_MASK_PROBA = 0.1


@dataclass
class SLMOutput:
    generator_loss: torch.Tensor
    discriminator_loss: torch.Tensor | None  # None on the steps without a discriminator update


@gin.configurable
class SLMAdversarial:
    """Upstream's `slmadv_params`.

    min_len / max_len: window of synthesised speech in mel frames (400 / 500).
    batch_percentage: at most this share of the batch is synthesised (0.5).
    skip_update: the discriminator trains every this many steps (upstream `iter`: 10, LibriTTS 20).
    thresh / scale: gradient rescaling of the generator step, see `generator_step` (5 / 0.01).
    sig: width of the Gaussian duration kernel in frames (1.5).
    """

    def __init__(self, min_len: int = 400, max_len: int = 500, batch_percentage: float = 0.5,
                 skip_update: int = 10, thresh: float = 5.0, scale: float = 0.01, sig: float = 1.5):
        self.min_len, self.max_len = min_len, max_len
        self.batch_percentage = batch_percentage
        self.skip_update = skip_update
        self.thresh, self.scale, self.sig = thresh, scale, sig

    def __call__(self, model, slm: WavLMLoss, rng: StageRandom, step: int, real_crop: torch.Tensor,
                 reconstructed_crop: torch.Tensor, waves: Sequence[torch.Tensor], mel_lengths: torch.Tensor,
                 tokens: torch.Tensor, token_lengths: torch.Tensor, in_distribution: bool,
                 target_styles: torch.Tensor, reference_styles: torch.Tensor | None) -> SLMOutput | None:
        """Losses of one SLM adversarial step, or None when fewer than two utterances are long enough.

        real_crop / reconstructed_crop: the stage's training window [B, 1, T] as recorded and as the
            decoder rebuilds it from ground-truth prosody (the discriminator's regularisers use both).
        waves, mel_lengths: the batch's whole recordings (real examples for the discriminator).
        tokens, token_lengths: the texts to synthesise (the batch's own, or OOD texts).
        target_styles: the encoders' styles [B, 2 * style_dim] (used as is for half of the
            in-distribution steps); reference_styles: multispeaker reference [B, 2 * style_dim] or None.
        """
        g = rng.cpu
        text_mask = length_to_mask(token_lengths, tokens.shape[1])
        bert_dur = model.bert(tokens, attention_mask=(~text_mask).int())
        d_en = model.bert_encoder(bert_dur).transpose(-1, -2)
        if in_distribution and coin(g):
            styles = target_styles
        else:
            styles = model.diffusion.sample(None, bert_dur, num_steps=randint(g, 3, 5), features=reference_styles,
                                            generator=rng.device, embedding_mask_proba=SAMPLING_MASK_PROBA).squeeze(1)
        style_dim = styles.shape[-1] // 2
        acoustic, prosodic = styles[:, :style_dim], styles[:, style_dim:]

        # Duration logits only: the predictor's frame-level output is unused here, so it gets a
        # one-frame placeholder alignment.
        placeholder = d_en.new_zeros(d_en.shape[0], d_en.shape[-1], 1)
        logits, _ = model.predictor(d_en, prosodic, token_lengths, placeholder, text_mask)
        alignment, n_frames = differentiable_alignment(logits, token_lengths, self.sig)
        with torch.no_grad():
            t_en = model.text_encoder(tokens, token_lengths, text_mask)
        asr = t_en @ alignment
        _, prosody_features = model.predictor(d_en, prosodic, token_lengths, alignment, text_mask)

        window, picked = self._pick_windows(g, n_frames, on_host(mel_lengths).tolist(), len(waves))
        if len(picked) <= 1:
            return None

        index = [i for i, _, _ in picked]
        samples = window * ALIGN_FRAME * MEL_HOP
        real = torch.stack([waves[i][r * ALIGN_FRAME * MEL_HOP:r * ALIGN_FRAME * MEL_HOP + samples]
                            for i, _, r in picked]).to(asr.device, torch.float32)
        en = torch.stack([asr[i, :, s:s + window] for i, s, _ in picked])
        p_en = torch.stack([prosody_features[i, :, s:s + window] for i, s, _ in picked])
        f0_fake, n_fake = model.predictor.F0Ntrain(p_en, prosodic[index])
        with frozen(model.decoder):  # the decoder is not trained by this step
            fake = model.decoder(en, f0_fake, n_fake, acoustic[index]).float()

        discriminator_loss = None
        with full_precision(fake.device):
            if (step + 1) % self.skip_update == 0:
                discriminator_loss = self._discriminator_loss(slm, g, real, fake.detach(), real_crop.float(),
                                                              reconstructed_crop.float())
            with frozen(slm.wd):
                generator_loss = slm.generator(fake)
        return SLMOutput(generator_loss, discriminator_loss)

    def _pick_windows(self, g: torch.Generator, n_frames: list[int], mel_lengths: list[int],
                      batch: int) -> tuple[int, list[tuple[int, int, int]]]:
        """The window length (alignment frames) and, for up to batch_percentage of the batch, the
        items long enough for it, each as (item, start in the synthesised frames, start in the recording)."""
        window = min(max(min(n_frames) // 2 - 1, self.min_len // 2), self.max_len // 2)
        picked = []
        for i, (frames, mel_length) in enumerate(zip(n_frames, mel_lengths)):
            recorded = mel_length // ALIGN_FRAME
            if recorded <= window or frames <= window:
                continue
            picked.append((i, randint(g, 0, frames - window), randint(g, 0, recorded - window)))
            if len(picked) >= self.batch_percentage * batch:
                break
        return window, picked

    @staticmethod
    def _discriminator_loss(slm: WavLMLoss, g: torch.Generator, real: torch.Tensor, fake: torch.Tensor,
                            real_crop: torch.Tensor, reconstructed_crop: torch.Tensor) -> torch.Tensor:
        """LSGAN loss of `wd`. Half the time the "real" side is the decoder's reconstruction of the
        training window instead of a recording; then two regularisers make `wd` ignore what differs
        between them: length (scores of a prefix must match the scores of the whole) and
        reconstruction artefacts (scores of recording and reconstruction must match)."""
        if not coin(g):
            return slm.discriminator(real, fake)
        real = reconstructed_crop.detach()
        shorter = min(real.shape[-1], fake.shape[-1])
        # Crop the longer of the two; compare its scores with and without the crop.
        longer_is_real = real.shape[-1] > fake.shape[-1]
        longer = real if longer_is_real else fake
        cropped = longer[..., :shorter]
        whole_scores = slm.discriminator_forward(longer)
        crop_scores = slm.discriminator_forward(cropped)
        length_reg = F.l1_loss(crop_scores, whole_scores[..., :crop_scores.shape[-1]])
        use_crop = coin(g)
        if longer_is_real:
            loss = slm.discriminator(cropped if use_crop else real, fake)
        else:
            loss = slm.discriminator(real, cropped if use_crop else fake)
        artefact_reg = F.l1_loss(slm.discriminator_forward(real_crop.detach()),
                                 slm.discriminator_forward(reconstructed_crop.detach()))
        return loss + length_reg + artefact_reg

    def generator_step(self, optimizer: MultiOptimizer, loss: torch.Tensor, names: Sequence[str],
                       model) -> torch.Tensor:
        """Step `names` on the SLM generator loss with upstream's gradient rescaling: when the prosody
        predictor's gradient norm exceeds `thresh`, every gradient is divided by that norm; then the
        duration head (`predictor.duration_proj`, `predictor.lstm`) and the diffusion model's
        gradients are multiplied by `scale`. Returns the predictor's gradient norm, a 0-d tensor:
        the rescaling is decided on the device, with no sync.

        `MultiOptimizer.step_on` with the rescaling as its `before_step` (after DDP averaging and fp16
        unscaling, before the update): non-finite losses and gradients raise `NonFiniteLoss` first.
        """
        measured = {}

        def rescale(grads: list[torch.Tensor]) -> None:
            measured["predictor"] = norm = torch.nn.utils.get_total_norm(
                [p.grad for p in model.predictor.parameters() if p.grad is not None])
            divisor = torch.where(norm > self.thresh, norm, torch.ones_like(norm))  # divided by 1: unchanged
            for grad in grads:
                grad.div_(divisor)
            for module in (model.predictor.duration_proj, model.predictor.lstm, model.diffusion):
                for p in module.parameters():
                    if p.grad is not None:
                        p.grad.mul_(self.scale)

        optimizer.step_on(loss, names, losses={"slm_gen": loss}, before_step=rescale)
        return measured["predictor"]
