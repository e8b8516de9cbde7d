"""Batch-level pieces both training stages share.

Frame rates: a mel frame is 300 samples; the aligner (and everything aligned to text: `asr`, the
prosody predictor's `en`) runs at half that rate, one "alignment frame" = 2 mel frames = 600
samples. Crops are chosen in alignment frames and mapped to mel frames (x2) and samples (x600).

Randomness comes from the `torch.Generator` a stage passes in (the stage saves its state, so a
resumed run draws the same crops and coin flips); nothing here touches the global RNGs.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from styletts2.alignment import mask_from_lens, maximum_path
from styletts2.audio.mel import log_norm
from styletts2.data.collate import crop_windows
from styletts2.host_values import host_side, on_host
from styletts2.modules.masks import length_to_mask

from .distributed import is_distributed

MEL_HOP = 300          # samples per mel frame
ALIGN_FRAME = 2        # mel frames per alignment frame
MIN_STYLE_FRAMES = 80  # the style encoders' shortest input (mel frames)


# --- random draws ------------------------------------------------------------------------------

class StageRandom:
    """A stage's own generators, saved with the stage so a resumed run draws what an uninterrupted
    one would: `cpu` for crop positions, coin flips and sampling step counts, `device` for what is
    drawn on the accelerator (the diffusion's noise levels, noises and classifier-free dropout
    masks). On a CPU run both are one generator."""

    def __init__(self, seed: int, device: torch.device):
        self.cpu = torch.Generator().manual_seed(seed)
        self.device = self.cpu if device.type == "cpu" else torch.Generator(device).manual_seed(seed + 1)

    def state_dict(self) -> dict:
        return {"cpu": self.cpu.get_state(), "device": self.device.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.cpu.set_state(state["cpu"])
        self.device.set_state(state["device"])


def coin(generator: torch.Generator, p: float = 0.5) -> bool:
    """True with probability p (a host draw: `StageRandom.cpu`)."""
    return bool(host_side(torch.rand((), generator=generator) < p))  # compared in float32, as it always was


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high) (numpy's randint convention, as upstream; a host draw)."""
    return host_side(torch.randint(low, high, (), generator=generator)).item()


# --- masks and alignment -----------------------------------------------------------------------

def text_padding_mask(tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
    """[B, T_text] bool, True at padding."""
    return length_to_mask(token_lengths.to(tokens.device), tokens.shape[1])


@dataclass
class AlignerOutputs:
    """The text aligner's outputs on a batch (see `run_aligner`)."""

    ctc_logits: torch.Tensor     # [B, T_align, n_token]
    s2s_logits: torch.Tensor     # [B, T_text, n_token]
    attention: torch.Tensor      # [B, T_text, T_align], zero outside each item's lengths
    align_lengths: torch.Tensor  # [B] alignment frames


def run_aligner(aligner: nn.Module, mels: torch.Tensor, mel_lengths: torch.Tensor, tokens: torch.Tensor,
                token_lengths: torch.Tensor, mask_unk: bool | None = None) -> AlignerOutputs:
    """Run the text aligner, teacher-forced on `tokens`.

    The aligner's decoder makes one more step than there are tokens (it starts from a begin
    symbol). Step i predicts token i, so the logits keep the first T_text steps. The attention rows
    start at the aligner's `token_row_offset`: step 1 in upstream (row i is step i + 1's attention),
    step 0 if bound so (row i is the attention of the step that predicts token i).
    """
    frames = (mels.shape[-1] + ALIGN_FRAME - 1) // ALIGN_FRAME
    align_lengths = (mel_lengths // ALIGN_FRAME).to(mels.device)
    frame_padding = length_to_mask(align_lengths, frames)
    ctc_logits, s2s_logits, attention = aligner(mels, frame_padding, tokens, mask_unk=mask_unk)
    offset = aligner.token_row_offset
    attention = attention[:, offset:offset + tokens.shape[1], :]
    valid = mask_from_lens(attention, token_lengths, align_lengths).bool()
    return AlignerOutputs(ctc_logits, s2s_logits[:, :tokens.shape[1]], attention.masked_fill(~valid, 0.0),
                          align_lengths)


def aligner_attention(aligner: nn.Module, mels: torch.Tensor, mel_lengths: torch.Tensor,
                      tokens: torch.Tensor, token_lengths: torch.Tensor,
                      mask_unk: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`run_aligner` as (s2s_logits [B, T_text, n_token], attention [B, T_text, T_align],
    alignment-frame lengths [B]): what stages 1 and 2 use."""
    out = run_aligner(aligner, mels, mel_lengths, tokens, token_lengths, mask_unk)
    return out.s2s_logits, out.attention, out.align_lengths


@torch.no_grad()
def monotonic_path(attention: torch.Tensor, token_lengths: torch.Tensor,
                   align_lengths: torch.Tensor) -> torch.Tensor:
    """The hard monotonic alignment [B, T_text, T_align] through the aligner's attention, in float32
    whatever the attention's dtype (under autocast a bf16 path would count durations over 256
    frames wrong)."""
    attention = attention.detach().float()
    return maximum_path(attention, mask_from_lens(attention, token_lengths, align_lengths))


# --- crops ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Crop:
    """One training window per batch item: alignment frames [starts[i], starts[i] + length)."""

    starts: list[int]
    length: int

    @property
    def mel_frames(self) -> int:
        return self.length * ALIGN_FRAME

    def aligned(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T_align] -> [B, C, length] (asr, the predictor's en)."""
        return torch.stack([x[i, :, s:s + self.length] for i, s in enumerate(self.starts)])

    def mels(self, mels: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T_mel] -> [B, n_mels, 2 * length]."""
        n = self.mel_frames
        return torch.stack([mels[i, :, s * ALIGN_FRAME:s * ALIGN_FRAME + n] for i, s in enumerate(self.starts)])

    def waves(self, waves: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """Per-item waveforms -> [B, 2 * length * 300] float32 on `device`."""
        n = self.mel_frames * MEL_HOP
        return torch.stack([waves[i][s * ALIGN_FRAME * MEL_HOP:s * ALIGN_FRAME * MEL_HOP + n]
                            for i, s in enumerate(self.starts)]).to(device, torch.float32)


def global_min(value: int, device: torch.device) -> int:
    """The minimum of `value` over DDP ranks (itself in one process). Upstream crops every rank's
    shard to the length the whole batch allows (`accelerator.gather` before cropping)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], device=device, dtype=torch.long)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def shortest_over_ranks(mel_lengths: torch.Tensor, device: torch.device) -> int:
    """The shortest mel length over this batch and every DDP rank's, read from the lengths' host copy."""
    return global_min(min(on_host(mel_lengths).tolist()), device)


def draw_crop(mel_lengths: torch.Tensor, max_len: int | None, generator: torch.Generator,
              shortest_mel: int | None = None) -> Crop:
    """Upstream's crop: one length for the batch, min(shortest / 2 - 1, max_len // 2) alignment
    frames, and a uniform start per item in [0, mel_length / 2 - length).

    max_len: in mel frames; None = no cap (the style-reference crop, stage-2 validation).
    shortest_mel: the shortest mel length to size the window by (default: this batch's; pass
        `shortest_over_ranks(...)` for the length over all ranks).
    """
    shortest = min(on_host(mel_lengths).tolist()) if shortest_mel is None else shortest_mel
    # crop_windows sizes the window by the batch's own shortest item; cap it with the one given.
    cap = ALIGN_FRAME * (shortest // ALIGN_FRAME - 1)
    if max_len is not None:
        cap = min(cap, max_len)
    starts, lengths = crop_windows(mel_lengths, cap, to_shortest=True, generator=generator)
    return Crop(starts.tolist(), lengths.tolist()[0])


# --- targets and styles -------------------------------------------------------------------------

@torch.no_grad()
def prosody_targets(pitch_extractor: nn.Module, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 (Hz, from JDCNet) and log energy N of mel crops [B, n_mels, T] -> ([B, T], [B, T])."""
    f0, _, _ = pitch_extractor(mels.unsqueeze(1))
    if f0.dim() == 1:  # JDCNet squeezes a batch of one
        f0 = f0.unsqueeze(0)
    return f0, log_norm(mels.unsqueeze(1)).squeeze(1)


def utterance_styles(encoder: nn.Module, mels: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    """Style of each whole utterance [B, style_dim], one item at a time: the encoder's average
    pooling would otherwise include the padding."""
    return torch.cat([encoder(mels[i:i + 1, :, :n].unsqueeze(1)) for i, n in enumerate(on_host(mel_lengths).tolist())])


def full_precision(device: torch.device):
    """Losses and discriminators run in float32 even when the networks run under autocast (their
    STFTs and small-valued sums are what reduced precision gets wrong)."""
    return torch.autocast(device.type, enabled=False)


# --- gradients ---------------------------------------------------------------------------------

@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Parameters of `modules` get no gradient inside the block (gradients still flow through them
    to their inputs). Used where upstream computes gradients it then zeroes unused, e.g. the
    discriminators' gradients from the generator loss."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def log_validation_sample(ctx, epoch: int, reconstruction: torch.Tensor, recording: torch.Tensor) -> None:
    """Log the first item of a validation batch (decoded and real), once per epoch."""
    if ctx.log_audio is None or ctx.sampled_epoch == epoch:
        return
    ctx.sampled_epoch = epoch
    ctx.log_audio("val/reconstruction", reconstruction[0], epoch)
    ctx.log_audio("val/recording", recording[0], epoch)
