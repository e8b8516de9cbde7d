"""Resume under DDP (two gloo processes, issue 15): a tiny stage-1 run stops after 2 steps and
resumes to 4. Resume is decided on rank 0, so every rank continues from the same checkpoint; the
ranks end with equal parameters, buffers (the pitch extractor's BatchNorm statistics included) and
counters, while each restores its own stage generators (seeded seed + rank), which differ. A rank
that cannot see the checkpoint rank 0 chose (a node-local run folder) stops every rank at once."""
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from ddp_ranks import join_as_rank, run_ranks

from styletts2.checkpoint import torch_load

REPO = Path(__file__).resolve().parents[1]
CONFIG = ["gin/model/tiny.gin", "gin/stage/random_init.gin", "gin/stage/tiny_adversaries.gin", "gin/stage/stage1.gin"]


def _bindings(corpus: Path, run_dir: str, max_steps: int) -> list[str]:
    return [f"Trainer.run_dir = {run_dir!r}", "Trainer.epochs = 3", "Trainer.batch_size = 1",
            f"Trainer.train_data = {str(corpus / 'train_list.txt')!r}", "Trainer.device = 'cpu'",
            f"Trainer.max_steps = {max_steps}", "Trainer.num_workers = 0", "Trainer.log_every_steps = 1",
            "Stage1.max_len = 80", "Stage1.TMA_epoch = 1000", "LengthBucketBatchSampler.bucket_multiplier = 2",
            "scan_corpus.workers = 1", "Collater.ref_frames = 80", "SpeechDataset.ref_max_frames = 80"]


def _fit(corpus: Path, run_dir: str, max_steps: int, cwd: Path | None = None) -> dict:
    import gin

    from styletts2.model import parse_gin
    from styletts2.train import stage1  # noqa: F401  (registers Stage1 and its configurables)
    from styletts2.train.trainer import Trainer

    gin.clear_config()
    parse_gin([str(REPO / c) for c in CONFIG], _bindings(corpus, run_dir, max_steps))
    if cwd is not None:  # after parsing: the configs include each other by repository-relative paths
        os.chdir(cwd)
    trainer = Trainer()
    try:
        result = trainer.fit()
    except Exception as err:  # noqa: BLE001 - reported to the test
        return {"error": f"{type(err).__name__}: {err}"}
    loop = trainer.loop
    return {"state": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "counters": (result.iters, loop.epoch, loop.batches_done), "status": result.status,
            "generators": trainer.stage.rng.state_dict()}


def _worker(rank: int, port: int, out: str, corpus: str) -> None:
    join_as_rank(rank, port)
    from styletts2.train.distributed import init_distributed, shutdown_distributed

    init_distributed("cpu", timeout_minutes=1)  # a rank left waiting fails the test instead of hanging it
    out, corpus = Path(out), Path(corpus)
    result = {"first": _fit(corpus, str(out / "run"), 2)}
    if rank == 0:
        shutil.copytree(out / "run", out / "at_two_steps")
    result["resumed"] = _fit(corpus, str(out / "run"), 4)
    # Node-local run folders: the same relative path names rank 0's checkpoint and, on rank 1, nothing.
    node = out / f"node{rank}"
    node.mkdir()
    if rank == 0:
        shutil.copytree(out / "run", node / "run")
    started = time.monotonic()
    result["unseen"] = _fit(corpus, "run", 6, cwd=node)
    result["unseen_seconds"] = time.monotonic() - started
    torch.save(result, out / f"rank{rank}.pt")
    shutdown_distributed()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    from test_trainer import write_corpus

    out = tmp_path_factory.mktemp("ddp_resume")
    corpus = write_corpus(out / "corpus", n_train=4, n_val=0)
    return out, run_ranks(_worker, out, str(corpus))


def _equal_states(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_resumed_ranks_hold_equal_parameters_buffers_and_counters(ranks):
    _, (r0, r1) = ranks
    for phase in ("first", "resumed"):
        assert "error" not in r0[phase] and "error" not in r1[phase], (r0[phase].get("error"), r1[phase].get("error"))
    assert r0["resumed"]["counters"] == r1["resumed"]["counters"] == (4, 2, 0)
    assert not _equal_states(r0["resumed"]["state"], r1["resumed"]["state"])
    assert any("pitch_extractor" in k and "running_mean" in k for k in r0["resumed"]["state"])


def test_each_rank_resumes_its_own_generators(ranks):
    out, (r0, r1) = ranks
    saved = torch_load(out / "at_two_steps" / "last.pth")["rng"]
    assert [s["stage"]["rng"]["cpu"].shape for s in saved] and not torch.equal(saved[0]["stage"]["rng"]["cpu"],
                                                                              saved[1]["stage"]["rng"]["cpu"])
    for phase in ("first", "resumed"):
        assert not torch.equal(r0[phase]["generators"]["cpu"], r1[phase]["generators"]["cpu"])


def test_a_rank_that_cannot_see_the_checkpoint_stops_every_rank(ranks):
    _, (r0, r1) = ranks
    assert "does not exist on this rank's machine" in r1["unseen"].get("error", "")
    assert "cannot resume every rank from run/last.pth (rank 1:" in r0["unseen"].get("error", "")
    assert "filesystem all nodes share" in r0["unseen"]["error"]
    assert max(r0["unseen_seconds"], r1["unseen_seconds"]) < 30
