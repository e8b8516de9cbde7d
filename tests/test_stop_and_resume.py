"""Stopping a run the way schedulers do, and recovering from a damaged run folder (issue 11, items 1 and 6)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import corpus, experiment  # noqa: F401 (corpus: the fixture, shared)
from test_trainer import write_corpus  # noqa: F401 (registers @ToyStage)

import runner
from styletts2.checkpoint import torch_load

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


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


def _run(config: Path, run_dir: Path, *args: str) -> int:
    return runner.main(["--gin", str(config), "--run_dir", str(run_dir), *args])


def test_resume_path_wins_over_last_pth(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1)
    first, run_dir = tmp_path / "first", tmp_path / "run"
    assert _run(config, first) == 0  # 3 steps
    assert _run(config, run_dir, "--gin_param", "Trainer.epochs = 2") == 0  # 6 steps
    capsys.readouterr()
    assert _run(config, run_dir, "--resume", str(first / "last.pth"), "--gin_param", "Trainer.epochs = 2") == 0
    out = capsys.readouterr().out
    assert f"resumed from {first / 'last.pth'}" in out
    assert "completed after 2 epoch(s), 6 step(s)" in out  # from step 3 of `first`, not step 6 of `run`


def test_corrupt_last_pth_falls_back_to_the_previous_one(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1, save_every_steps=2)
    run_dir = tmp_path / "run"
    assert _run(config, run_dir) == 0
    previous = run_dir / "last.previous.pth"
    assert torch_load(previous)["iters"] < torch_load(run_dir / "last.pth")["iters"] == 3
    previous_iters = torch_load(previous)["iters"]
    (run_dir / "last.pth").write_bytes((run_dir / "last.pth").read_bytes()[:1000])  # a torn write
    capsys.readouterr()
    assert _run(config, run_dir, "--gin_param", "Trainer.epochs = 2") == 0
    out = capsys.readouterr().out
    assert "last.pth" in out and "can not be read" in out and f"resumed from {previous}" in out
    assert torch_load(run_dir / "last.pth")["iters"] == 6 and previous_iters == 2


def test_a_killed_save_between_the_renames_resumes_from_the_previous_one(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1)
    run_dir = tmp_path / "run"
    assert _run(config, run_dir) == 0
    (run_dir / "last.pth").rename(run_dir / "last.previous.pth")
    capsys.readouterr()
    assert _run(config, run_dir, "--gin_param", "Trainer.epochs = 2") == 0
    out = capsys.readouterr().out
    assert f"resumed from {run_dir / 'last.previous.pth'}" in out and "completed after 2 epoch(s), 6 step(s)" in out


def test_leftover_temporary_files_are_removed_at_start(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1, max_steps=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftover = run_dir / ".last.pth.k2j3h4.tmp"
    leftover.write_bytes(b"half a checkpoint")
    unrelated = run_dir / "notes.tmp"
    unrelated.write_text("mine")
    assert _run(config, run_dir) == 0
    assert not leftover.exists() and unrelated.exists()
    assert leftover.name in capsys.readouterr().out


def test_a_corrupt_resume_path_is_a_one_line_error(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert _run(config, tmp_path / "run", "--resume", str(bad)) == 2
    assert _run(config, tmp_path / "run", "--resume", str(tmp_path / "missing.pth")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err and "missing.pth" in err
