"""CPU stand-ins for what only a GPU run would otherwise show (issue 15): batches pin, and the
host-device synchronisations of a training step are counted."""
import pytest
import torch
from torch import nn

from styletts2.data.collate import Batch
from styletts2.host_values import host_side, on_host
from styletts2.modules.masks import packed_lstm
from styletts2.train.batch_ops import coin, draw_crop, randint


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
    # Host-device syncs per step (CPU upper bound; 14 to 45 before the lengths kept host copies).
    counts = [r.syncs_per_step for r in results]
    assert all(n <= bound for n, bound in zip(counts, [3, 4, 3, 5, 8])), counts
    assert {"slm_gen", "slm_d_loss"} <= set(results[-1].losses)
    assert len(lines) == 6 and "syncs/step" in lines[-1]


def test_gpu_check_runs_the_phases_asked_for_with_every_utterance_in_the_slm_window():
    """Only the joint phase, at batch 2 with the whole batch allowed into the SLM step: both synthetic
    utterances are longer than its longest window, so the step runs (with 10 % shorter utterances, as
    before, the second was too short at full size)."""
    from styletts2.train.gpu_check import check, synthetic_batch

    torch.set_num_threads(1)
    batch = synthetic_batch(3, 520, 50, shortest=504)
    assert batch.mel_lengths.tolist() == [520, 512, 504]
    assert synthetic_batch(2, 100, 50).mel_lengths.tolist() == [100, 90]
    results = check(bindings=["SLMAdversarial.batch_percentage = 1.0"], batch_size=2, max_len=80, steps=1,
                    device="cpu", warmup=False, report=lambda line: None, phases=["joint"])
    assert [r.phase for r in results] == ["stage2 joint (SLM)"] and "slm_gen" in results[0].losses
    with pytest.raises(ValueError, match="phases must be some of"):
        check(phases=["stage3"])


def test_lengths_keep_their_host_copy_on_the_device():
    """`Batch.to` keeps each length tensor's host copy, so packing an LSTM's input reads no device
    value. The meta device stands in for a GPU: it holds no values that could be copied back."""
    batch = _batch().to("meta")
    assert batch.mel_lengths.device.type == "meta" and batch.ood_lengths is None
    assert on_host(batch.mel_lengths).tolist() == [10, 8] and on_host(batch.token_lengths).tolist() == [5, 4]
    with pytest.raises(NotImplementedError, match="meta"):
        on_host(batch.mel_lengths + 1)  # derived on the device: no host copy, so it is copied back


def test_host_values_are_read_without_a_counted_sync():
    """On a CPU run the counter counts every read except those of host-side values: a batch's
    lengths read through their host copy, and draws from the stage's CPU generator."""
    from styletts2.train.syncs import count_syncs

    batch, lstm, g = _batch().to("cpu"), nn.LSTM(80, 4, batch_first=True), torch.Generator().manual_seed(0)
    frames = batch.mels.transpose(1, 2)
    with count_syncs() as syncs:
        packed_lstm(lstm, frames, batch.mel_lengths)
        crop = draw_crop(batch.mel_lengths, 8, g)
        coin(g), randint(g, 3, 5)
    assert syncs.total == 0 and crop.length == 3
    with count_syncs() as syncs:
        packed_lstm(lstm, frames, batch.mel_lengths + 0)  # a device tensor in a GPU run: copied back
        batch.mel_lengths.tolist()                          # the device tensor itself, not its copy
    assert syncs.total == 2
    with pytest.raises(ValueError, match="CPU tensors only"):
        host_side(torch.zeros(1, device="meta"))


@pytest.mark.parametrize("lengths", [[6, 9], [9, 9]])
def test_plbert_mask_needs_no_sync_and_changes_nothing(lengths):
    """transformers asks the device whether a 2-D mask pads anything (a sync per call); PLBert
    prepares the 4-D mask itself, with outputs equal to transformers' own, padded or not."""
    from transformers import AlbertModel

    from styletts2.modules.plbert import PLBert
    from styletts2.train.syncs import count_syncs

    torch.manual_seed(0)
    bert = PLBert(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2).eval()
    ids = torch.randint(0, 178, (2, 9))
    mask = (torch.arange(9) < torch.tensor(lengths)[:, None]).long()
    with count_syncs() as syncs:
        ours = bert(ids, mask)
    theirs = AlbertModel.forward(bert, input_ids=ids, attention_mask=mask).last_hidden_state
    assert syncs.total == 0
    assert torch.equal(ours, theirs)


def test_live_tensor_bytes_counts_state_activations_and_frees():
    """One AdamW step of a linear layer, counted from Python as the CUDA allocator would:
    parameters, then saved activations, gradients, and the two moments."""
    from styletts2.train.memory import LiveTensorBytes, PeakMemory

    torch.manual_seed(0)
    layer = nn.Linear(256, 128)
    weights = sum(p.numel() for p in layer.parameters()) * 4
    x = torch.randn(32, 256)
    optimizer = torch.optim.AdamW(layer.parameters())
    with LiveTensorBytes("cpu") as live:
        live.track(layer, optimizer, {"x": x}, [x, x.view(-1)])  # one storage counts once
        assert live.current_bytes == weights + x.nbytes
        hidden = layer(x).relu()  # [32, 128], kept by relu for backward and by the name
        loss = hidden.square().mean()
        assert live.current_bytes >= weights + x.nbytes + hidden.nbytes
        loss.backward()
        optimizer.step()
        del hidden, loss
        # gradients and AdamW's two moments per parameter, plus each parameter's step counter
        assert live.current_bytes == 4 * weights + x.nbytes + 2 * 4
        peak_after_step = live.peak_bytes
        layer.zero_grad(set_to_none=True)
        assert live.current_bytes == 3 * weights + x.nbytes + 2 * 4
    assert peak_after_step >= 4 * weights + x.nbytes + 32 * 128 * 4
    with PeakMemory("cpu", state=(layer, optimizer)) as memory:  # x is not tracked: not counted
        layer(x).sum().backward()  # the output is freed before the gradients exist
    assert 4 * weights <= memory.peak_gb * 2**30 <= 4 * weights + 32 * 128 * 4


def test_count_from_python_is_the_cpu_count_and_adds_no_row_on_the_cpu():
    """`count_from_python` asks for the CPU's count beside CUDA's allocator; on the CPU that count is
    the peak itself, and train_memory adds no '(counted from Python)' row."""
    from styletts2.bench.train_memory import measure
    from styletts2.train.memory import PeakMemory

    layer = nn.Linear(64, 32)
    with PeakMemory("cpu", state=(layer,), count_from_python=True) as memory:
        layer(torch.randn(8, 64)).sum().backward()
    assert memory.counted_gb == memory.peak_gb > 0
    torch.set_num_threads(1)
    peaks = measure("gin/model/tiny.gin", [], [2], 80, "fp32", "cpu", report=lambda line: None,
                    phases=["stage2"], count_from_python=True)
    assert list(peaks) == ["stage2"] and peaks["stage2"][2] > 0


@pytest.mark.parametrize("args, fragment", [(["--device", "cuda"], "no CUDA GPU"), (["--device", "gpu"], "not a device"),
                                            (["--model", "/nonexistent.gin"], "no such gin file"),
                                            (["--batch_size", "0"], "batch_size of at least 1"),
                                            (["--steps", "0"], "steps of at least 1"), (["--phases", "x"], "phases"),
                                            (["--gin_param", "bogus"], "'bogus' cannot be parsed")])
def test_gpu_check_user_errors_are_one_line_exit_2(monkeypatch, capsys, args, fragment):
    """Exit 1 is the documented out-of-memory code: a user error must not read as one."""
    from styletts2.train import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    assert gpu_check.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m styletts2.train.gpu_check: error: ") and fragment in err


def test_gpu_check_out_of_memory_still_exits_1(monkeypatch):
    from styletts2.train import gpu_check

    def out_of_memory(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    torch.set_num_threads(1)
    monkeypatch.setattr(gpu_check, "_run_phase", out_of_memory)
    with pytest.raises(SystemExit) as stopped:
        gpu_check.main(["--phases", "stage1", "--device", "cpu", "--max_len", "80"])
    assert str(stopped.value.code).startswith("gpu_check: OUT OF MEMORY in stage1 (batch 2)")  # sys.exit: code 1


def test_gpu_check_non_finite_losses_exit_3(monkeypatch, capsys):
    """Not 2, the exit code of a user error."""
    from styletts2.train import gpu_check

    def non_finite(name, *_, **__):
        return gpu_check.PhaseResult(name, 1.0, 0.1, 0.0, {"mel": float("nan")})

    torch.set_num_threads(1)
    monkeypatch.setattr(gpu_check, "_run_phase", non_finite)
    with pytest.raises(SystemExit) as stopped:
        gpu_check.main(["--phases", "stage1", "--device", "cpu", "--max_len", "80"])
    assert stopped.value.code == 3 and "NON-FINITE" in capsys.readouterr().out
