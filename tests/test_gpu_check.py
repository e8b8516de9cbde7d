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


def test_sync_counter_counts_value_reads_per_call_site():
    from styletts2.train.syncs import count_syncs

    x = torch.arange(4.0)
    with count_syncs() as syncs:
        x[0].item()
        bool(x[1] > 0)
        x.tolist()
        x[x > 1]                  # value-sized output
        x.cpu()
        x * 2 + 1                 # no read
        x.to("cpu")               # the training device, on a CPU run
        torch.nn.utils.get_total_norm([x])  # inside torch: no sync of its own
    assert syncs.total == 5 and len(syncs.table().splitlines()) == 5
    with count_syncs("cuda") as syncs:  # a GPU run: reads of CPU tensors do not sync
        x[0].item()
    assert syncs.total == 0


def test_gpu_check_runs_every_phase_on_cpu():
    """One step of each phase of tiny stages 1 and 2, in fp16 with loss scaling."""
    from styletts2.train.gpu_check import check

    torch.set_num_threads(1)
    lines = []
    results = check(bindings=["SLMAdversarial.batch_percentage = 1.0"], batch_size=2, max_len=80, precision="fp16",
                    steps=1, device="cpu", warmup=False, report=lines.append)
    assert [r.phase for r in results] == ["stage1", "stage1 TMA", "stage2", "stage2 diffusion", "stage2 joint (SLM)"]
    assert all(r.steps_per_second > 0 and r.peak_memory_gb > 0 and r.syncs_per_step > 0 for r in results)
    assert {"slm_gen", "slm_d_loss"} <= set(results[-1].losses)
    assert len(lines) == 6 and "syncs/step" in lines[-1]
