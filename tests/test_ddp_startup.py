"""Start-up under DDP (two gloo processes, issue 15): rank 0 scans a corpus once and the other
ranks receive its report, waiting longer than the process group's timeout allows a barrier;
an error on rank 0 stops the waiting ranks at once."""
import time
from pathlib import Path

import pytest
import torch
from ddp_ranks import join_as_rank, run_ranks

GROUP_TIMEOUT_S = 2.0  # the process group's own timeout in this test
SCAN_S = 5.0           # rank 0's scan takes longer than that


def _worker(rank: int, port: int, out: str) -> None:
    join_as_rank(rank, port)
    from test_trainer import ToyStage

    from styletts2.data.readers import Record
    from styletts2.data.validate import ValidationReport
    from styletts2.train import distributed, trainer as trainer_module
    from styletts2.train.logger import TrainLogger

    out = Path(out)
    env = distributed.init_distributed("cpu", timeout_minutes=GROUP_TIMEOUT_S / 60)
    result = {}

    def slow_scan(path, root=None, log_summary=True):
        with open(out / "scans.txt", "a") as f:
            f.write(f"{rank}\n")
        time.sleep(SCAN_S)
        return ValidationReport(good=[Record(Path(path) / "a.wav", 0, None, "ab", Path(path) / "list.txt", 1)])

    trainer_module.scan_corpus = slow_scan
    trainer = trainer_module.Trainer(stage=ToyStage(), train_data="unused")
    trainer.env, trainer.logger, trainer.data_root = env, TrainLogger(out / f"log{rank}", enabled=False), None
    started = time.monotonic()
    try:
        result["records"] = [str(r.wav) for r in trainer._scan(str(out / "corpus"))]
    except Exception as err:  # noqa: BLE001 - reported to the test
        result["scan_error"] = f"{type(err).__name__}: {err}"
    result["scan_seconds"] = time.monotonic() - started

    def failing():
        raise ValueError("the corpus is unreadable")

    started = time.monotonic()
    try:
        distributed.share_from_main(failing)
    except Exception as err:  # noqa: BLE001
        result["error"] = f"{type(err).__name__}: {err}"
    result["error_seconds"] = time.monotonic() - started
    torch.save(result, out / f"rank{rank}.pt")
    distributed.shutdown_distributed()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_startup")
    return out, run_ranks(_worker, out)


def test_rank0_scans_once_and_the_others_wait_past_the_group_timeout(ranks):
    out, (r0, r1) = ranks
    assert "scan_error" not in r0 and "scan_error" not in r1, (r0.get("scan_error"), r1.get("scan_error"))
    assert (out / "scans.txt").read_text() == "0\n"  # the other rank did not scan again
    assert r0["records"] == r1["records"] == [str(out / "corpus" / "a.wav")]
    assert r1["scan_seconds"] > GROUP_TIMEOUT_S


def test_an_error_on_rank0_reaches_the_waiting_ranks(ranks):
    _, (r0, r1) = ranks
    assert r0["error"] == "ValueError: the corpus is unreadable"
    assert r1["error"].startswith("RuntimeError: rank 0 failed") and "the corpus is unreadable" in r1["error"]
    assert r1["error_seconds"] < 30


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5, LOCAL_RANK=0, WORLD_SIZE=2: need 0 <= RANK < WORLD_SIZE"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
])
def test_a_distributed_environment_no_group_can_hold_is_refused_at_once(monkeypatch, env, message):
    from styletts2.train import distributed

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        distributed.init_distributed("cpu", timeout_minutes=0.1)
    assert time.monotonic() - started < 2 and not torch.distributed.is_initialized()  # no rendezvous was tried


def test_a_rank_says_it_waits_for_the_others(monkeypatch, capsys):
    from styletts2.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29531")
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *args, **kwargs: None)  # no peer comes
    distributed.init_distributed("cpu")
    assert capsys.readouterr().err.splitlines() == [
        "rank 0: waiting for the other 1 rank(s) of 2 at 127.0.0.1:29531 (up to 30 min)"]
