"""Text-to-frame alignments: monotonic alignment search, its masks, and duration expansions.

Layout used throughout (the one StyleTTS2's training code uses): attention/alignment matrices are
``[B, T_text, T_mel]``; a hard path has exactly one 1 per mel frame (column), and the text index
never decreases from one frame to the next and advances by at most one.

- ``maximum_path``: the highest-scoring monotonic path through a score matrix (upstream's
  ``utils.maximum_path``). Runs the compiled VITS kernel of the ``monotonic_align`` package when it
  imports, else an equivalent numpy dynamic program (same float32 arithmetic, same tie-breaking).
- ``gaussian_alignment`` / ``differentiable_alignment``: the soft alignment built from predicted
  duration logits that SLM adversarial training backpropagates through (upstream Modules/slmadv.py).
- ``durations_to_alignment``: integer durations -> one-hot ``[T_text, sum(d)]`` matrix (inference).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from styletts2.host_values import host_side, on_host

try:  # VITS kernel (PyPI monotonic_align): values laid out [T_mel, T_text], C-contiguous float32
    from monotonic_align.core import maximum_path_c as _vits_kernel
except ImportError:  # pragma: no cover - depends on the environment
    _vits_kernel = None
    warnings.warn(
        "monotonic_align's compiled kernel is unavailable; styletts2.alignment.maximum_path uses a "
        "slower numpy implementation (same results)",
        RuntimeWarning,
        stacklevel=2,
    )

# Score given to unreachable states; the kernel's default, kept so float32 sums match it exactly.
_NEG = np.float32(-1e9)


def mask_from_lens(scores: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    """Valid-region mask ``[B, T_text, T_mel]`` (1 inside both lengths, else 0) in ``scores``' dtype,
    as ``monotonic_align.mask_from_lens`` builds it for ``maximum_path``."""
    _, n_text, n_mel = scores.shape
    text_valid = torch.arange(n_text, device=scores.device).unsqueeze(0) < text_lengths.to(scores.device).unsqueeze(1)
    mel_valid = torch.arange(n_mel, device=scores.device).unsqueeze(0) < mel_lengths.to(scores.device).unsqueeze(1)
    return (text_valid.unsqueeze(2) & mel_valid.unsqueeze(1)).to(scores.dtype)


def maximum_path(neg_cent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Monotonic alignment search.

    Args:
        neg_cent: ``[B, T_text, T_mel]`` scores to maximise along the path (StyleTTS2 passes the
            aligner's attention weights).
        mask: ``[B, T_text, T_mel]`` valid region (``mask_from_lens``). As upstream, only the lengths
            are read from it: item b's text length is ``mask[b, :, 0].sum()``, its mel length
            ``mask[b, 0, :].sum()``.

    Returns:
        ``[B, T_text, T_mel]`` 0/1 path in ``neg_cent``'s dtype and device, zero outside the lengths.
    """
    if neg_cent.dim() != 3 or mask.shape != neg_cent.shape:
        raise ValueError(f"maximum_path expects neg_cent and mask of one shape [B, T_text, T_mel], "
                         f"got {tuple(neg_cent.shape)} and {tuple(mask.shape)}")
    # Counted as integers (a bf16 mask sums 257 ones to 256), and sent to the host in one transfer
    # with the scores: float32, exact for lengths below 2**24, and the kernels sum in float32 anyway
    # (numpy has no bfloat16).
    valid = mask.detach() != 0
    lengths = torch.cat([valid[:, :, 0].sum(1), valid[:, 0, :].sum(1)]).float()
    host = host_side(torch.cat([lengths, neg_cent.detach().float().flatten()]).cpu()).numpy()
    batch = neg_cent.shape[0]
    text_lengths, mel_lengths = host[:batch].astype(np.int32), host[batch:2 * batch].astype(np.int32)
    bad = np.nonzero((text_lengths < 1) | (mel_lengths < text_lengths))[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"maximum_path: batch item {i} has text length {text_lengths[i]} and mel length "
                         f"{mel_lengths[i]}; a monotonic path needs 1 <= text length <= mel length")

    # The kernels work on [B, T_mel, T_text]: one row per frame.
    values = np.ascontiguousarray(host[2 * batch:].reshape(neg_cent.shape).transpose(0, 2, 1))
    paths = np.zeros(values.shape, dtype=np.int32)
    if _vits_kernel is not None:
        _vits_kernel(paths, values, np.ascontiguousarray(mel_lengths), np.ascontiguousarray(text_lengths))
    else:
        _maximum_path_numpy(paths, values, mel_lengths, text_lengths)
    return torch.from_numpy(paths.transpose(0, 2, 1).copy()).to(device=neg_cent.device, dtype=neg_cent.dtype)


def _maximum_path_numpy(paths: np.ndarray, values: np.ndarray, mel_lengths: np.ndarray,
                        text_lengths: np.ndarray) -> None:
    """Numpy twin of the VITS kernel, vectorised over the batch; fills ``paths`` and accumulates
    ``values`` in place ([B, T_mel, T_text], float32) exactly as the kernel does."""
    batch, n_mel, n_text = values.shape
    x = np.arange(n_text)[None, :]
    t_y, t_x = mel_lengths[:, None], text_lengths[:, None]
    for y in range(n_mel):
        # Reachable text indices at frame y: can still finish by the last frame, cannot run ahead of y.
        band = (x >= t_x + y - t_y) & (x < np.minimum(t_x, y + 1)) & (y < t_y)
        if y == 0:
            stay = np.full((batch, n_text), _NEG, dtype=np.float32)
            advance = np.where(x == 0, np.float32(0.0), _NEG).astype(np.float32)
            advance = np.broadcast_to(advance, (batch, n_text))
        else:
            previous = values[:, y - 1, :]
            stay = np.where(x == y, _NEG, previous)
            advance = np.concatenate([np.full((batch, 1), _NEG, dtype=np.float32), previous[:, :-1]], axis=1)
        best = np.maximum(stay, advance).astype(np.float32)
        values[:, y, :] = np.where(band, values[:, y, :] + best, values[:, y, :])

    rows = np.arange(batch)
    index = text_lengths.astype(np.int64) - 1
    for y in range(n_mel - 1, -1, -1):
        active = y < mel_lengths
        paths[rows[active], y, index[active]] = 1
        if y == 0:
            break
        previous = values[rows, y - 1, :]
        stay = previous[rows, index]
        advance = previous[rows, np.maximum(index - 1, 0)]
        step = active & (index != 0) & ((index == y) | (stay < advance))
        index = index - step


def gaussian_alignment(duration_logits: torch.Tensor, sigma: float = 1.5, n_frames: int | None = None) -> torch.Tensor:
    """Differentiable alignment of one utterance from its ordinal duration logits (SLM adversarial
    training, upstream Modules/slmadv.py).

    Args:
        duration_logits: ``[T_text, n_bins]`` duration-projection logits of the valid tokens.
        sigma: width of the Gaussian kernel in frames.
        n_frames: ``round(sum(sigmoid(duration_logits)))`` when the caller has read it already
            (`differentiable_alignment` reads a batch's in one transfer); None computes it.

    Returns:
        ``[T_text, n_frames]`` soft alignment, a softmax over text tokens for every frame, with
        ``n_frames = round(sum(sigmoid(duration_logits)))``.

    Each output frame j gets, per token c, the logit curve smoothed by a Gaussian placed at the token's
    soft end position: ``sum_{m <= j} logit[c, m] * exp(-(j + 1 - m - centre_c)^2 / (2 sigma^2))``
    where ``centre_c`` is the token's cumulative soft duration minus half its own.
    """
    if duration_logits.dim() != 2:
        raise ValueError(f"gaussian_alignment expects [T_text, n_bins] logits, got {tuple(duration_logits.shape)}")
    probs = torch.sigmoid(duration_logits)
    durations = probs.sum(dim=-1)
    if n_frames is None:
        n_frames = int(torch.round(probs.sum()).item())
    centres = torch.cumsum(durations, dim=0) - durations / 2                      # [T]
    n_bins = duration_logits.shape[-1]
    frames = torch.arange(n_frames, device=duration_logits.device, dtype=duration_logits.dtype)
    bins = torch.arange(n_bins, device=duration_logits.device, dtype=duration_logits.dtype)
    offset = frames[None, :] + 1 - bins[:, None]                                 # [n_bins, n_frames]
    kernel = torch.exp(-0.5 * torch.square(offset[None] - centres[:, None, None]) / sigma ** 2)
    kernel = kernel * (offset >= 1).to(kernel.dtype)                             # only bins m <= j
    scores = torch.einsum("cm,cmj->cj", duration_logits, kernel)
    return F.softmax(scores, dim=0)


def differentiable_alignment(duration_logits: torch.Tensor, text_lengths: torch.Tensor,
                             sigma: float = 1.5) -> tuple[torch.Tensor, list[int]]:
    """Batched ``gaussian_alignment``: ``[B, T_text, n_bins]`` logits and ``[B]`` text lengths ->
    ``([B, T_text, max_frames]`` zero-padded alignments, per-item frame counts)``."""
    items = [logits[:n] for logits, n in zip(duration_logits, on_host(text_lengths).tolist())]
    # Every item's frame count in one device-to-host transfer.
    n_frames = [int(n) for n in torch.stack([torch.round(torch.sigmoid(x).sum()) for x in items]).tolist()]
    alignments = [gaussian_alignment(x, sigma, n) for x, n in zip(items, n_frames)]
    out = duration_logits.new_zeros(duration_logits.shape[0], duration_logits.shape[1], max(n_frames))
    for i, a in enumerate(alignments):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out, n_frames


def durations_to_alignment(durations: torch.Tensor) -> torch.Tensor:
    """Integer durations ``[T_text]`` -> one-hot alignment ``[T_text, sum(durations)]`` (float):
    token i covers the frames ``[sum(d[:i]), sum(d[:i+1]))``. Written with tensor ops only, so it traces
    with a dynamic frame count."""
    if durations.dim() != 1:
        raise ValueError(f"durations_to_alignment expects [T_text] durations, got {tuple(durations.shape)}")
    durations = durations.long()
    ends = torch.cumsum(durations, dim=0)
    starts = ends - durations
    frames = torch.arange(ends[-1], device=durations.device)
    return ((frames[None, :] >= starts[:, None]) & (frames[None, :] < ends[:, None])).float()
