"""Stage 0: train the text aligner (ASRCNN) on the corpus, as yl4579/AuxiliaryASR does.

The aligner is the model's own `text_aligner` (gin/model/*.gin give its size; the experiment builds
`StyleTTS2.modules = ('text_aligner',)`). One step, on whole utterances (no crop):
- CTC on the encoder's per-frame token logits, with the blank at id 0 (the pad symbol). Targets are
  the tokens without the `[0] ... [0]` framing, which would otherwise be blanks;
- the attention decoder's cross-entropy, teacher-forced on `[0] + ids + [0]` (the framing stages
  1 and 2 align), with 10 % of its input tokens masked to `<unk>` in training (ASRS2S's own rule);
- AdamW (betas 0.9/0.98, eps 1e-9, weight decay 5e-4 at lr 5e-4), gradients clipped to +-5 by value.
The checkpoint keeps the weights under ['net']['text_aligner'] for resume and under ['model'],
upstream's release layout, so `load_pretrained_parts.aligner_path` takes either file; a bound
`aligner_path` here starts from a released aligner (fine-tuning it on new data).

Validation reports the losses, the CTC phoneme error rate (greedy decoding), the share of the
attention on its monotonic path (`attention_on_path`: how sure the aligner is of each token's
frames, which stage 1's decoder follows more than word starts), and, on a corpus with
espeak-ng word timings (`make_corpus`), how far the word starts of the monotonic path through the
attention are from espeak-ng's, in ms, beside a uniform alignment's, and the mean signed error
of the words after each clip's first (`boundary_lag_ms`: a constant lag; `data/word_timings.py`).
The same two with each word read from the space token before it (`space_boundary_mae_ms`,
`space_boundary_lag_ms`): a trained aligner gives that token the word's onset, so the first
reading runs late by a frame or two.
"""
from __future__ import annotations

from pathlib import Path

import gin
import torch
import torch.nn.functional as F

from styletts2.data.collate import Collater
from styletts2.data.word_timings import BoundaryErrors, load_timings, path_word_starts, token_words, uniform_word_starts
from styletts2.evaluate.intelligibility import edit_distance
from styletts2.losses import S2SCrossEntropyLoss
from styletts2.modules.masks import length_to_mask
from styletts2.text.tokenizer import Tokenizer

from .batch_ops import monotonic_path, run_aligner
from .optim import build_multi_optimizer
from .pretrained import load_pretrained_parts
from .stage import StepOutput, TrainingContext

TRAINED = ("text_aligner",)
BLANK = 0  # the pad symbol: CTC's blank
# The aligner's encoder and CTC head: what `Stage0Aligner.encoder_lr` trains, the attention decoder
# (`asr_s2s`) keeping `lr`.
ENCODER_PARTS = ("init_cnn", "cnns", "projection", "ctc_linear")


def ctc_greedy(logits: torch.Tensor, length: int) -> list[int]:
    """Best-path CTC decoding of one item's [T, n_token] logits: collapse repeats, drop blanks."""
    best = logits[:length].argmax(-1).tolist()
    return [t for i, t in enumerate(best) if t != BLANK and (i == 0 or t != best[i - 1])]


def attention_on_path(attention: torch.Tensor, path: torch.Tensor, token_lengths: torch.Tensor) -> float:
    """The share of each token's attention that falls on the monotonic path through it, averaged over
    the batch's tokens: 1 for an aligner sure of every phoneme's frames. Two aligners placing words
    equally well (61 ms) gave stage 1 decoders at PER 0.71 and 0.55 with 45 % and 83 % on the path
    (bench/README.md, "The demo")."""
    on_path = (attention.float() * path.float()).sum(-1)  # [B, T_text]
    padded = length_to_mask(token_lengths.to(attention.device), attention.shape[1])
    return float(on_path[~padded].mean())


def guided_attention_loss(attention: torch.Tensor, token_lengths: torch.Tensor, align_lengths: torch.Tensor,
                          sigma: float) -> torch.Tensor:
    """Tachibana et al.'s diagonal prior: attention far from the diagonal of each item's
    (tokens x frames) rectangle costs up to 1, so the expected cost per token is what is averaged."""
    n_tokens, n_frames = attention.shape[1:]
    token_lengths, align_lengths = token_lengths.to(attention.device), align_lengths.to(attention.device)
    n = torch.arange(n_tokens, device=attention.device)[None, :, None] / token_lengths[:, None, None]
    t = torch.arange(n_frames, device=attention.device)[None, None, :] / align_lengths[:, None, None]
    weight = 1 - torch.exp(-((n - t) ** 2) / (2 * sigma ** 2))
    valid = (n < 1) & (t < 1)
    return (attention.float() * weight * valid).sum() / token_lengths.sum()


def ctc_targets(tokens: torch.Tensor, token_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens without their `[0] ... [0]` framing, concatenated, and their lengths."""
    inner = [tokens[i, 1:int(n) - 1] for i, n in enumerate(token_lengths)]
    return torch.cat(inner), torch.tensor([len(x) for x in inner], dtype=torch.long)


@gin.configurable
class Stage0Aligner:
    """AuxiliaryASR's training of the text aligner.

    lr, betas, weight_decay: the AdamW of AuxiliaryASR.
    ctc_weight, s2s_weight: weights of the two objectives (1 and 1 upstream).
    grad_clip_value: gradients clipped elementwise to this value (None: off).
    guided_attention_weight, guided_attention_sigma: a diagonal prior on the decoder's attention
        (`guided_attention_loss`; not in AuxiliaryASR, so 0 = off by default). Small aligners on
        small corpora learn to attend in a fraction of the steps with it.
    encoder_lr: the rate of the CNN encoder and the CTC head (ENCODER_PARTS), the attention decoder
        keeping `lr`; None = `lr` for all, as AuxiliaryASR. Not AuxiliaryASR's: at a high rate the
        encoder of a small aligner can collapse its features to two or three directions (loudness,
        not phonemes) in its first few hundred steps and not recover (bench/README.md, "The
        aligner's plateau"); a lower rate for it alone avoided that in every seed tried, while the
        attention keeps the rate that places word starts well.
    """

    name = "stage0_aligner"

    def __init__(self, lr: float = 5e-4, betas: tuple[float, float] = (0.9, 0.98), weight_decay: float = 5e-4,
                 ctc_weight: float = 1.0, s2s_weight: float = 1.0, grad_clip_value: float | None = 5.0,
                 guided_attention_weight: float = 0.0, guided_attention_sigma: float = 0.2,
                 encoder_lr: float | None = None):
        if encoder_lr is not None and not encoder_lr > 0:
            raise ValueError(f"Stage0Aligner.encoder_lr must be positive (or None for lr), got {encoder_lr}")
        self.lr, self.betas, self.weight_decay = lr, tuple(betas), weight_decay
        self.encoder_lr = encoder_lr
        self.ctc_weight, self.s2s_weight = ctc_weight, s2s_weight
        self.grad_clip_value = grad_clip_value
        self.guided_attention_weight, self.guided_attention_sigma = guided_attention_weight, guided_attention_sigma

    def build_data(self, path: str, trainer):
        """The speech corpus as stages 1 and 2 read it; notes the silence the dataset adds in front
        of each clip, which word starts are measured without."""
        dataset, lengths = trainer.speech_data(path)
        self.edge_padding_s = dataset.edge_padding / dataset.sample_rate
        return dataset, lengths, Collater()

    def setup(self, model, ctx: TrainingContext) -> None:
        self.model, self.ctx = model, ctx
        load_pretrained_parts(model, TRAINED)  # a released aligner to fine-tune, when bound
        # Passed only when set, so that a gin binding of `build_multi_optimizer.submodule_lr` is not overridden.
        encoder = {} if self.encoder_lr is None else {
            "submodule_lr": {"text_aligner": dict.fromkeys(ENCODER_PARTS, self.encoder_lr)}}
        self.optimizer = build_multi_optimizer(model, TRAINED, lr=self.lr, betas=self.betas,
                                               weight_decay=self.weight_decay, ctx=ctx, **encoder)
        self.s2s_loss = S2SCrossEntropyLoss()
        self.tokenizer = Tokenizer()
        self._timings: dict[Path, dict | None] = {}

    # --- losses ------------------------------------------------------------------------------

    def _forward(self, batch):
        out = run_aligner(self.model.text_aligner, batch.mels, batch.mel_lengths, batch.tokens, batch.token_lengths)
        targets, target_lengths = ctc_targets(batch.tokens, batch.token_lengths)
        log_probs = out.ctc_logits.float().log_softmax(-1).transpose(0, 1)  # [T, B, n_token]
        # zero_infinity: a clip too short for its text gives no gradient instead of inf.
        ctc = F.ctc_loss(log_probs, targets.to(log_probs.device), out.align_lengths.cpu(), target_lengths,
                         blank=BLANK, zero_infinity=True)
        s2s = self.s2s_loss(out.s2s_logits.float(), batch.tokens, batch.token_lengths)
        losses = {"ctc": ctc, "s2s": s2s}
        if self.guided_attention_weight:
            losses["guided"] = guided_attention_loss(out.attention, batch.token_lengths, out.align_lengths,
                                                     self.guided_attention_sigma)
        return out, losses

    def _clip(self, gradients: list[torch.Tensor]) -> None:
        for g in gradients:
            g.clamp_(-self.grad_clip_value, self.grad_clip_value)

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        self.model.train()
        with self.ctx.autocast():
            _, losses = self._forward(batch)
        total = self.ctc_weight * losses["ctc"] + self.s2s_weight * losses["s2s"]
        if "guided" in losses:
            total = total + self.guided_attention_weight * losses["guided"]
        self.optimizer.step_on(total, TRAINED, losses=losses,
                               before_step=self._clip if self.grad_clip_value else None)
        return StepOutput.of(losses)

    # --- validation ----------------------------------------------------------------------------

    def _corpus_timings(self, wav: str) -> dict | None:
        """The word timings of the corpus a clip belongs to (`<corpus>/wavs/<id>.wav`), if any."""
        folder = Path(wav).resolve().parent
        for corpus in (folder.parent, folder):
            if corpus not in self._timings:
                self._timings[corpus] = load_timings(corpus)
            if self._timings[corpus] is not None:
                return self._timings[corpus]
        return None

    def boundary_errors(self, batch, path: torch.Tensor, align_lengths: torch.Tensor,
                        edge_padding_s: float) -> tuple[BoundaryErrors, BoundaryErrors]:
        """Word-start errors of this batch's monotonic paths against espeak-ng's timings, each word
        read from its first phoneme, then from the space before it."""
        errors, from_space = BoundaryErrors([], []), BoundaryErrors([], [])
        path = path.cpu().numpy()
        for i, wav in enumerate(batch.paths):
            entry = (self._corpus_timings(wav) or {}).get(Path(wav).stem)
            if entry is None:
                continue
            n_tokens = int(batch.token_lengths[i])
            words = token_words(self.tokenizer.decode(batch.tokens[i, :n_tokens]))
            clip_path, reference = path[i, :n_tokens, :int(align_lengths[i])], [w[1] for w in entry["words"]]
            uniform = uniform_word_starts(words, entry["seconds"])
            errors.add(path_word_starts(clip_path, words, edge_padding_s), uniform, reference)
            from_space.add(path_word_starts(clip_path, words, edge_padding_s, from_space=True), uniform, reference)
        return errors, from_space

    @torch.no_grad()
    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        out, losses = self._forward(batch)
        errors, length = 0, 0
        for i, n in enumerate(batch.token_lengths):
            target = batch.tokens[i, 1:int(n) - 1].tolist()
            errors += edit_distance(ctc_greedy(out.ctc_logits[i], int(out.align_lengths[i])), target)
            length += len(target)
        scores = {k: float(v) for k, v in losses.items()}
        scores["ctc_per"] = errors / max(length, 1)
        path = monotonic_path(out.attention, batch.token_lengths, out.align_lengths)
        scores["attention_on_path"] = attention_on_path(out.attention, path, batch.token_lengths)
        errors, from_space = self.boundary_errors(batch, path, out.align_lengths, self.edge_padding_s)
        scores.update(errors.summary())
        scores.update({f"space_{k}": v for k, v in from_space.summary().items() if k.startswith("boundary")})
        if self.ctx.log_image is not None and getattr(self, "_imaged", None) != epoch:
            self._imaged = epoch
            n, t = int(batch.token_lengths[0]), int(out.align_lengths[0])
            self.ctx.log_image("val/attention", out.attention[0, :n, :t], epoch)
        return scores

    # --- checkpoint ------------------------------------------------------------------------------

    def release_entries(self) -> dict:
        """AuxiliaryASR's layout: the aligner's weights under ['model']."""
        return {"model": self.model.text_aligner.state_dict()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
