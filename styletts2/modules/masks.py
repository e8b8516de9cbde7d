"""Padding masks and length-aware recurrence for padded token batches.

Convention (upstream's): a mask is True at PADDING positions, so `x.masked_fill(mask, 0)` zeroes
the padding.
"""
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from styletts2.host_values import on_host


def length_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool mask, True where position >= length.

    `max_len` defaults to the longest length; pass the padded width when the batch is wider.
    """
    width = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(width, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


def packed_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run a batch-first LSTM over each sequence's true length only.

    x: [B, T, C_in] -> [B, T, C_out], zero at positions >= length. Packing keeps the backward
    direction of a bidirectional LSTM from reading the padding. Packing needs the lengths on the
    host: a batch's lengths bring their host copy (`host_values.on_host`), others are copied.
    The output is unsorted here rather than by `pad_packed_sequence`, which also unsorts the lengths
    it returns with a host copy of the device's indices: a sync per call on a GPU (measured on CUDA)
    for lengths nobody reads. Same ops, same result.
    """
    packed = pack_padded_sequence(x, on_host(lengths), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    sorted_out = PackedSequence(out.data, out.batch_sizes)  # no indices: padded in sorted order
    padded, _ = pad_packed_sequence(sorted_out, batch_first=True, total_length=x.shape[1])
    return padded.index_select(0, packed.unsorted_indices)
