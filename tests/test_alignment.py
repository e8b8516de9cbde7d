"""Monotonic alignment search, masks and duration -> alignment expansions (styletts2.alignment)."""
import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from styletts2 import alignment
from styletts2.alignment import (differentiable_alignment, durations_to_alignment, gaussian_alignment,
                                 mask_from_lens, maximum_path)


def brute_force_path(scores: np.ndarray, n_text: int, n_mel: int) -> np.ndarray:
    """Best monotonic path by enumerating every one: the frames where the text index advances."""
    best, best_steps = -math.inf, None
    for steps in itertools.combinations(range(1, n_mel), n_text - 1):
        index = np.searchsorted(np.array(steps), np.arange(n_mel), side="right")
        total = scores[index, np.arange(n_mel)].astype(np.float64).sum()
        if total > best:
            best, best_steps = total, index
    path = np.zeros(scores.shape, dtype=np.float32)
    path[best_steps, np.arange(n_mel)] = 1
    return path


def numpy_path(scores: torch.Tensor, text_lengths: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
    values = np.ascontiguousarray(scores.numpy().astype(np.float32).transpose(0, 2, 1))
    paths = np.zeros(values.shape, dtype=np.int32)
    alignment._maximum_path_numpy(paths, values, mel_lengths.numpy().astype(np.int32),
                                  text_lengths.numpy().astype(np.int32))
    return torch.from_numpy(paths.transpose(0, 2, 1).copy()).float()


def random_batch(gen: torch.Generator, batch: int, max_text: int, max_extra: int, ties: bool = False):
    n_text = int(torch.randint(1, max_text + 1, (1,), generator=gen))
    n_mel = n_text + int(torch.randint(0, max_extra + 1, (1,), generator=gen))
    text_lengths = torch.randint(1, n_text + 1, (batch,), generator=gen)
    text_lengths[0] = n_text
    mel_lengths = torch.stack([torch.randint(int(t), n_mel + 1, (1,), generator=gen)[0] for t in text_lengths])
    mel_lengths[-1] = n_mel
    if ties:
        scores = torch.randint(0, 3, (batch, n_text, n_mel), generator=gen).float() / 2
    else:
        scores = torch.rand(batch, n_text, n_mel, generator=gen)
    return scores, text_lengths, mel_lengths


def test_maximum_path_equals_brute_force_on_tiny_inputs():
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        scores, text_lengths, mel_lengths = random_batch(gen, 3, 4, 5)
        mask = mask_from_lens(scores, text_lengths, mel_lengths)
        path = maximum_path(scores, mask)
        fallback = numpy_path(scores, text_lengths, mel_lengths)
        for b in range(scores.shape[0]):
            t, m = int(text_lengths[b]), int(mel_lengths[b])
            expected = np.zeros(scores.shape[1:], dtype=np.float32)
            expected[:t, :m] = brute_force_path(scores[b, :t, :m].numpy(), t, m)
            np.testing.assert_array_equal(path[b].numpy(), expected)
            np.testing.assert_array_equal(fallback[b].numpy(), expected)


@pytest.mark.parametrize("ties", [False, True])
def test_numpy_fallback_matches_compiled_kernel(ties):
    if alignment._vits_kernel is None:
        pytest.skip("monotonic_align kernel not installed")
    gen = torch.Generator().manual_seed(1)
    for _ in range(30):
        scores, text_lengths, mel_lengths = random_batch(gen, 5, 25, 60, ties=ties)
        path = maximum_path(scores, mask_from_lens(scores, text_lengths, mel_lengths))
        assert torch.equal(path, numpy_path(scores, text_lengths, mel_lengths))


def test_path_is_a_monotonic_one_hot_per_frame():
    gen = torch.Generator().manual_seed(2)
    scores, text_lengths, mel_lengths = random_batch(gen, 6, 20, 50)
    path = maximum_path(scores.double(), mask_from_lens(scores, text_lengths, mel_lengths))
    assert path.dtype == torch.float64 and path.shape == scores.shape
    for b in range(scores.shape[0]):
        t, m = int(text_lengths[b]), int(mel_lengths[b])
        assert path[b, t:].sum() == 0 and path[b, :, m:].sum() == 0
        assert torch.all(path[b, :t, :m].sum(0) == 1)
        index = path[b, :t, :m].argmax(0)
        steps = index[1:] - index[:-1]
        assert index[0] == 0 and index[-1] == t - 1
        assert torch.all((steps == 0) | (steps == 1))


def test_maximum_path_rejects_impossible_lengths():
    scores = torch.rand(2, 5, 4)
    with pytest.raises(ValueError, match="batch item 0 has text length 5 and mel length 4"):
        maximum_path(scores, mask_from_lens(scores, torch.tensor([5, 2]), torch.tensor([4, 4])))
    with pytest.raises(ValueError, match="same shape|one shape"):
        maximum_path(scores, torch.ones(2, 4, 5))


def test_masks():
    scores = torch.zeros(2, 3, 4, dtype=torch.float64)
    mask = mask_from_lens(scores, torch.tensor([2, 3]), torch.tensor([4, 1]))
    assert mask.dtype == torch.float64
    assert mask[0].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert mask[1].tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]


def test_missing_kernel_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "monotonic_align.core", None)  # makes the import fail
    spec = importlib.util.spec_from_file_location("alignment_without_kernel", Path(alignment.__file__))
    module = importlib.util.module_from_spec(spec)
    with pytest.warns(RuntimeWarning, match="numpy implementation"):
        spec.loader.exec_module(module)
    assert module._vits_kernel is None
    scores, text_lengths, mel_lengths = random_batch(torch.Generator().manual_seed(3), 3, 6, 10)
    mask = mask_from_lens(scores, text_lengths, mel_lengths)
    assert torch.equal(module.maximum_path(scores, mask), numpy_path(scores, text_lengths, mel_lengths))


def reference_gaussian_alignment(logits: np.ndarray, sigma: float) -> np.ndarray:
    """Direct float64 evaluation of the formula in gaussian_alignment's docstring."""
    probs = 1 / (1 + np.exp(-logits))
    durations = probs.sum(-1)
    n_frames = int(np.round(probs.sum()))
    centres = np.cumsum(durations) - durations / 2
    scores = np.zeros((logits.shape[0], n_frames))
    for c in range(logits.shape[0]):
        for j in range(n_frames):
            for m in range(min(j, logits.shape[1] - 1) + 1):
                scores[c, j] += logits[c, m] * np.exp(-0.5 * (j + 1 - m - centres[c]) ** 2 / sigma ** 2)
    scores = np.exp(scores - scores.max(0))
    return scores / scores.sum(0)


def test_gaussian_alignment_matches_its_formula_and_is_differentiable():
    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(5, 12, generator=gen) * 2).requires_grad_(True)
    attn = gaussian_alignment(logits, sigma=1.5)
    expected = reference_gaussian_alignment(logits.detach().double().numpy(), 1.5)
    assert attn.shape == expected.shape == (5, round(torch.sigmoid(logits).sum().item()))
    np.testing.assert_allclose(attn.detach().numpy(), expected, atol=1e-5)
    torch.testing.assert_close(attn.sum(0), torch.ones(attn.shape[1]))
    (attn * torch.randn(attn.shape, generator=gen)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_differentiable_alignment_pads_each_utterance():
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 6, 10, generator=gen)
    lengths = torch.tensor([6, 3])
    attn, n_frames = differentiable_alignment(logits, lengths, sigma=1.5)
    assert n_frames == [gaussian_alignment(logits[0]).shape[1], gaussian_alignment(logits[1, :3]).shape[1]]
    assert attn.shape == (2, 6, max(n_frames))
    torch.testing.assert_close(attn[1, :3, : n_frames[1]], gaussian_alignment(logits[1, :3]))
    assert attn[1, 3:].abs().sum() == 0 and attn[1, :, n_frames[1]:].abs().sum() == 0


def test_durations_to_alignment():
    aln = durations_to_alignment(torch.tensor([2, 1, 0, 3]))
    assert aln.tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]]
    assert durations_to_alignment(torch.tensor([2.0, 3.0])).shape == (2, 5)
    with pytest.raises(ValueError):
        durations_to_alignment(torch.ones(1, 3))


def test_durations_to_alignment_traces_with_a_dynamic_frame_count():
    traced = torch.jit.trace(durations_to_alignment, (torch.tensor([1, 2, 3]),))
    out = traced(torch.tensor([4, 1, 2]))
    assert torch.equal(out, durations_to_alignment(torch.tensor([4, 1, 2])))
