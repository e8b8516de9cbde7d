"""runner.py: the command line (help, config errors, an end-to-end run, SIGTERM handling)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_trainer import toy_bindings, write_corpus  # noqa: F401 (registers @ToyStage)

pytestmark = pytest.mark.usefixtures("one_thread")

import runner
from styletts2.checkpoint import torch_load

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def experiment(path: Path, corpus: Path, run_dir: Path, *extra: str, **trainer) -> Path:
    """An experiment file as users write them: include building blocks, then bind."""
    lines = ["include 'gin/model/tiny.gin'", *toy_bindings(corpus, run_dir, **trainer), *extra]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--gin_param" in out and "--resume" in out and "130" in out


def test_a_gin_file_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.main([])
    assert exit_.value.code == 2 and "--gin" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--gin_param", "Trainer.epochz = 3"], "epochz"),
    (["--gin_param", "NoSuchThing.x = 1"], "NoSuchThing"),
    (["--gin", "gin/does_not_exist.gin"], "does_not_exist"),
])
def test_bad_config_is_a_clear_error(args, message, capsys):
    argv = ["--gin", "gin/model/tiny.gin", *args]
    assert runner.main(argv) == 2
    err = capsys.readouterr().err
    assert "bad gin config" in err and message in err


@pytest.mark.parametrize("binding, message", [
    ("Trainer.epochs = 'one'", "runner.py: error: Trainer.epochs must be an integer, got 'one'"),
    ("Trainer.max_steps = 1.5", "runner.py: error: Trainer.max_steps must be an integer or None, got 1.5"),
])
def test_a_wrongly_typed_trainer_setting_is_one_line(binding, message, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", tmp_path / "no_corpus", tmp_path / "run")
    assert runner.main(["--gin", str(config), "--gin_param", binding]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [err.strip()] and message in err, err


def test_end_to_end_and_resume(corpus, tmp_path, capsys):
    config = experiment(tmp_path / "exp.gin", corpus, tmp_path / "ignored", epochs=1)
    run_dir = tmp_path / "run"
    assert runner.main(["--gin", str(config), "--run_dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    # gin wraps a binding whose value is long (the path) onto the next line: compare without layout
    logged = " ".join(out.replace("\\\n", " ").split())
    assert "operative gin config" in out and f"Trainer.run_dir = '{run_dir}'" in logged
    assert "completed after 1 epoch(s), 3 step(s)" in out
    assert torch_load(run_dir / "last.pth")["epoch"] == 1
    # more epochs on the same run dir continue from last.pth
    assert runner.main(["--gin", str(config), "--run_dir", str(run_dir), "--gin_param", "Trainer.epochs = 2"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "completed after 2 epoch(s), 6 step(s)" in out
    # --resume starts a new run dir from a given checkpoint
    other = tmp_path / "other"
    assert runner.main(["--gin", str(config), "--run_dir", str(other), "--resume", str(run_dir / "last.pth"),
                        "--gin_param", "Trainer.epochs = 3", "--gin_param", "Trainer.max_steps = 7"]) == 0
    assert "max_steps after 2 epoch(s), 7 step(s)" in capsys.readouterr().out
    assert torch_load(other / "last.pth")["iters"] == 7


def test_sigterm_saves_a_checkpoint_and_exits_130(corpus, tmp_path):
    marker = tmp_path / "started"
    run_dir = tmp_path / "run"
    config = experiment(tmp_path / "exp.gin", corpus, run_dir, f"ToyStage.marker = {str(marker)!r}",
                        "ToyStage.step_seconds = 0.3", epochs=100)
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]; import test_trainer, runner; "
            "sys.exit(runner.main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--gin", str(config)], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "training never started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "SIGTERM" in out and "interrupted" in out
    ckpt = torch_load(run_dir / "last.pth")
    assert ckpt["iters"] >= 1 and ckpt["epoch"] < 100
