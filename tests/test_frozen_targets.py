"""FrozenTargetCache: per-clip alignment and F0 of frozen networks, reused across steps."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from styletts2.audio.mel import log_norm
from styletts2.train.batch_ops import Crop
from styletts2.train.frozen_targets import FrozenTargetCache, lead, lead_padded, make_cache


class CountingPitch(nn.Module):
    """F0 = the first mel channel; counts its calls and records its mode."""

    def __init__(self):
        super().__init__()
        self.calls, self.modes = 0, []

    def forward(self, x):
        self.calls += 1
        self.modes.append(self.training)
        f0 = x[:, 0, 0, :]
        return (f0.squeeze(0) if f0.shape[0] == 1 else f0), None, None


def make_batch(lengths=(12, 8), paths=("a.wav", "b.wav")):
    mels = torch.zeros(len(lengths), 80, max(lengths))
    for i, n in enumerate(lengths):
        mels[i, :, :n] = torch.randn(80, n)
    return SimpleNamespace(mels=mels, mel_lengths=torch.tensor(lengths), paths=list(paths))


def test_f0_is_cut_from_each_clip_computed_once_in_eval_mode():
    pitch, cache, batch = CountingPitch().train(), FrozenTargetCache(), make_batch()
    crop = Crop([1, 0], 3)  # alignment frames: mel frames [2, 8) and [0, 6)
    gt = crop.mels(batch.mels)
    f0, energy = cache.prosody(pitch, batch, crop, gt)
    assert pitch.calls == 2 and pitch.modes == [False, False] and pitch.training
    assert torch.equal(f0[0], batch.mels[0, 0, 2:8]) and torch.equal(f0[1], batch.mels[1, 0, 0:6])
    assert torch.equal(energy, log_norm(gt.unsqueeze(1)).squeeze(1))
    cache.prosody(pitch, batch, Crop([0, 1], 3), crop.mels(batch.mels))
    assert pitch.calls == 2  # both clips cached


def test_alignment_is_the_eval_mode_unmasked_one_reused_and_repadded(monkeypatch):
    import styletts2.train.frozen_targets as ft
    calls = []

    def fake_attention(aligner, mels, mel_lengths, tokens, token_lengths, mask_unk=None):
        calls.append((len(mels), mask_unk, aligner.training))
        att = torch.rand(len(mels), tokens.shape[1], mels.shape[-1] // 2)
        return None, att, mel_lengths // 2

    monkeypatch.setattr(ft, "aligner_attention", fake_attention)
    cache, aligner = FrozenTargetCache(), nn.Module().train()
    batch = make_batch()
    batch.tokens, batch.token_lengths = torch.ones(2, 5, dtype=torch.long), torch.tensor([5, 3])
    attention, path = cache.alignment(aligner, batch)
    # The same clips in another batch, in the other order and padded wider: no new aligner call.
    other = make_batch((8, 12, 16), ("b.wav", "a.wav", "a.wav"))
    other.tokens, other.token_lengths = torch.ones(3, 7, dtype=torch.long), torch.tensor([3, 5, 5])
    again, again_path = cache.alignment(aligner, other)
    assert calls == [(2, False, False)] and aligner.training and again.shape == (3, 7, 8)
    assert torch.equal(again[1, :5, :6], attention[0, :5, :6]) and torch.equal(again[0, :3, :4], attention[1, :3, :4])
    assert torch.equal(again_path[1, :5, :6], path[0, :5, :6])
    assert again[0, 3:].abs().sum() == 0 and again[0, :, 4:].abs().sum() == 0


def test_lead_moves_a_path_earlier_and_keeps_its_length():
    # Durations 3, 2, 4 over 9 alignment frames; 2 frames earlier: 1, 2, 6 (the last token repeats).
    durations = torch.tensor([3, 2, 4])
    path = torch.zeros(3, 9)
    path[torch.repeat_interleave(torch.arange(3), durations), torch.arange(9)] = 1
    moved = lead(path, 2)
    assert moved.sum(-1).tolist() == [1, 2, 6] and torch.equal(moved.sum(0), torch.ones(9))
    assert torch.equal(moved[:, :7], path[:, 2:]) and torch.equal(lead(path, 0), path)
    assert torch.equal(lead(path[:, :2], 2), path[:, :2])  # too short to move


def test_cached_alignments_come_out_with_the_lead(monkeypatch):
    import styletts2.train.frozen_targets as ft
    att = torch.rand(2, 5, 6)
    monkeypatch.setattr(ft, "aligner_attention", lambda *a, **k: (None, att, torch.tensor([6, 4])))
    batch = make_batch()
    batch.tokens, batch.token_lengths = torch.ones(2, 5, dtype=torch.long), torch.tensor([5, 3])
    plain, _ = FrozenTargetCache().alignment(nn.Module(), batch)
    cache = FrozenTargetCache(lead_frames=1)
    first, _ = cache.alignment(nn.Module(), batch)
    again, _ = cache.alignment(nn.Module(), batch)
    assert torch.equal(first, again) and torch.equal(first[0], lead(plain[0], 1))
    assert torch.equal(first[1, :3, :4], lead(plain[1, :3, :4], 1)) and first[1, :, 4:].abs().sum() == 0


def test_a_lead_without_the_cache_is_refused():
    with pytest.raises(ValueError, match="cache_frozen_targets"):
        make_cache(False, 2)
    with pytest.raises(ValueError, match="0 or more"):
        FrozenTargetCache(-1)
    assert make_cache(False, 0) is None and make_cache(True, 2).lead_frames == 2


def test_lead_padded_moves_each_item_within_its_length():
    alignment = torch.rand(2, 3, 6)
    alignment[1, :, 4:] = 0
    moved = lead_padded(alignment, torch.tensor([6, 4]), 1)
    assert torch.equal(moved[0], lead(alignment[0], 1)) and torch.equal(moved[1, :, :4], lead(alignment[1, :, :4], 1))
    assert moved[1, :, 4:].abs().sum() == 0 and lead_padded(alignment, torch.tensor([6, 4]), 0) is alignment
