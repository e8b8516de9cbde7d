"""Data parallelism on CPU: two gloo processes (styletts2/train/distributed.py, MultiOptimizer.step_on).

Checks that gradient averaging makes two ranks on half batches equal to one process on the union
batch (exact in exact arithmetic: the mean loss over the union is the mean of the two half-batch
means), that a non-finite loss on one rank makes every rank skip, and that the Trainer under DDP
keeps the ranks' parameters identical with only rank 0 writing the checkpoint.
"""
from pathlib import Path

import pytest
import torch
from ddp_ranks import WORLD, join_as_rank, run_ranks

from styletts2.checkpoint import torch_load
from styletts2.train.optim import build_multi_optimizer
from styletts2.train.stage import NonFiniteLoss

REPO = Path(__file__).resolve().parents[1]
STEPS = 3


def _toy_problem():
    torch.manual_seed(0)
    modules = {"a": torch.nn.Linear(4, 8), "b": torch.nn.Linear(8, 1)}
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
    return modules, x, y


def _loss(modules, x, y):
    return (modules["b"](torch.tanh(modules["a"](x))) - y).pow(2).mean()


def _worker(rank: int, port: int, out: str, corpus: str) -> None:
    join_as_rank(rank, port)
    import gin
    from test_trainer import toy_bindings  # registers @ToyStage

    from styletts2.model import parse_gin
    from styletts2.train.distributed import broadcast_module, init_distributed, shutdown_distributed
    from styletts2.train.stage import TrainingContext
    from styletts2.train.trainer import Trainer

    env = init_distributed("cpu")
    result = {}
    modules, x, y = _toy_problem()
    if rank == 1:  # a different init: broadcast must overwrite it with rank 0's
        torch.nn.init.normal_(modules["a"].weight)
    for m in modules.values():
        broadcast_module(m)
    ctx = TrainingContext(device=env.device, rank=env.rank, world_size=env.world_size)
    opt = build_multi_optimizer(modules, lr=1e-2, ctx=ctx)
    half = slice(rank * 8, rank * 8 + 8)
    for _ in range(STEPS):
        opt.step_on(_loss(modules, x[half], y[half]), ["a", "b"])
    result["toy"] = {f"{n}.{k}": v.clone() for n, m in modules.items() for k, v in m.state_dict().items()}
    loss = _loss(modules, x[half], y[half])
    try:
        opt.step_on(loss * float("nan") if rank == 1 else loss, ["a", "b"])
        result["skipped"] = False
    except NonFiniteLoss:
        result["skipped"] = True
    result["after_skip"] = {f"{n}.{k}": v.clone() for n, m in modules.items() for k, v in m.state_dict().items()}

    gin.clear_config()
    parse_gin([str(REPO / "gin/model/tiny.gin")],
              toy_bindings(Path(corpus), Path(out) / "run", epochs=1, batch_size=1, max_steps=2))
    trainer = Trainer()
    trainer_result = trainer.fit()
    result["trainer"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result["iters"] = trainer_result.iters
    torch.save(result, Path(out) / f"rank{rank}.pt")
    shutdown_distributed()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    from test_trainer import write_corpus

    out = tmp_path_factory.mktemp("ddp")
    corpus = write_corpus(out / "corpus")
    return out, run_ranks(_worker, out, str(corpus))


def test_ranks_equal_one_process_on_the_union_batch(ddp_run):
    _, ranks = ddp_run
    modules, x, y = _toy_problem()
    opt = build_multi_optimizer(modules, lr=1e-2)
    for _ in range(STEPS):
        opt.step_on(_loss(modules, x, y), ["a", "b"])
    single = {f"{n}.{k}": v for n, m in modules.items() for k, v in m.state_dict().items()}
    for rank in ranks:
        for key, value in single.items():
            torch.testing.assert_close(rank["toy"][key], value, rtol=0, atol=1e-6)
    assert all(torch.equal(ranks[0]["toy"][k], ranks[1]["toy"][k]) for k in single)


def test_nonfinite_on_one_rank_skips_on_all(ddp_run):
    _, ranks = ddp_run
    assert [r["skipped"] for r in ranks] == [True, True]
    for r in ranks:
        assert all(torch.equal(r["toy"][k], r["after_skip"][k]) for k in r["toy"])


def test_trainer_keeps_ranks_identical_and_rank0_saves(ddp_run):
    out, ranks = ddp_run
    assert [r["iters"] for r in ranks] == [2, 2]
    a, b = ranks[0]["trainer"], ranks[1]["trainer"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = torch_load(out / "run" / "last.pth")
    assert ckpt["trainer"]["world_size"] == WORLD and len(ckpt["rng"]) == WORLD
    assert ckpt["trainer"]["sampler"]["consumed"] == 2
    assert all(torch.equal(ckpt["net"]["text_encoder"][k], a[f"text_encoder.{k}"]) for k in ckpt["net"]["text_encoder"])
