"""Stopping a run the way schedulers do, and recovering from a damaged run folder (issue 11, items 1 and 6)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_runner import experiment
from test_trainer import write_corpus  # noqa: F401 (registers @ToyStage)

import runner
from styletts2.checkpoint import torch_load

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_group_signal_with_workers_saves_and_exits_130(corpus, tmp_path, signum):
    """Slurm / systemd / Kubernetes signal the whole process group, DataLoader workers included."""
    marker = tmp_path / "started"
    run_dir = tmp_path / "run"
    config = experiment(tmp_path / "exp.gin", corpus, run_dir, f"ToyStage.marker = {str(marker)!r}",
                        "ToyStage.step_seconds = 0.3", epochs=100, num_workers=2)
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]; import test_trainer, runner; "
            "sys.exit(runner.main(sys.argv[1:]))")
    # Its own session: the group signal reaches the run and its workers, not pytest.
    proc = subprocess.Popen([sys.executable, "-c", code, "--gin", str(config)], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "training never started"
        time.sleep(0.2)  # workers are prefetching the next batches now
        os.killpg(proc.pid, signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert signal.Signals(signum).name in out and "interrupted" in out
    ckpt = torch_load(run_dir / "last.pth")
    assert ckpt["iters"] >= 1 and ckpt["epoch"] < 100
