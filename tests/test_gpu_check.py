"""CPU stand-ins for what only a GPU run would otherwise show (issue 15): batches pin, and the
host-device synchronisations of a training step are counted."""
import torch

from styletts2.data.collate import Batch


def _batch() -> Batch:
    return Batch(tokens=torch.ones(2, 5, dtype=torch.long), token_lengths=torch.tensor([5, 4]),
                 mels=torch.zeros(2, 80, 10), mel_lengths=torch.tensor([10, 8]),
                 waves=[torch.zeros(3000), torch.zeros(2400)], speakers=torch.zeros(2, dtype=torch.long),
                 ref_mels=torch.zeros(2, 80, 8), ood_tokens=None, ood_lengths=None, paths=["a.wav", "b.wav"])


def test_batch_pins_every_tensor(monkeypatch):
    """DataLoader(pin_memory=True) calls `pin_memory()` on what the collater returns; an object
    without one stays in pageable memory and `.to(cuda, non_blocking=True)` copies synchronously.
    (No CUDA here: pinning is faked, and recorded.)"""
    pinned = []

    def fake_pin(tensor):
        copy = tensor.clone()
        pinned.append(copy)
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    batch = _batch()
    out = batch.pin_memory()
    assert isinstance(out, Batch) and len(pinned) == 8  # 6 tensors + 2 waves; None fields stay None
    tensors = [out.tokens, out.token_lengths, out.mels, out.mel_lengths, *out.waves, out.speakers, out.ref_mels]
    assert all(any(t is p for p in pinned) for t in tensors)
    assert out.ood_tokens is None and out.paths == batch.paths
