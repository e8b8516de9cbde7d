"""User errors end in one line naming the problem and a non-zero exit, no traceback (issue 11, item 5):
runner.py, export/*.py, bench/rtf.py, `python -m styletts2.synthesize`, `python -m styletts2.runtime`."""
import logging

import gin
import pytest
import torch

import runner
from conftest import REPO, build_tiny
from styletts2.export import to_onnx, to_torchscript
from styletts2.checkpoint import CheckpointError, atomic_save, make_checkpoint
from styletts2.model import load_model
from styletts2.synthesize import main as synthesize_main

pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny model saved as a stage-2 and as a stage-1 training checkpoint, and a file that is no checkpoint."""
    folder = tmp_path_factory.mktemp("ckpt")
    model = build_tiny()
    config = gin.operative_config_str() or gin.config_str()
    paths = {}
    for stage in ("Stage2", "Stage1", "Stage0Aligner"):
        paths[stage] = atomic_save(make_checkpoint(model.nets, gin_config=f"{config}\nTrainer.stage = @{stage}\n"),
                                   folder / f"{stage}.pth")
    paths["junk"] = folder / "junk.pth"
    paths["junk"].write_bytes(b"\x00not a checkpoint")
    paths["no_net"] = folder / "no_net.pth"
    torch.save({"model": {}}, paths["no_net"])
    gin.clear_config()
    return paths


def test_missing_ljspeech_says_where_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fresh clone has no data/LJSpeech
    assert runner.main(["--gin", str(REPO / "gin/stage2_ljspeech.gin"), "--run_dir", str(tmp_path / "run"),
                        "--gin_param", "Trainer.device = 'cpu'"]) == 2
    one_line_error(capsys.readouterr().err, "runner.py: error:", "data/LJSpeech", "keithito.com",
                   "yl4579/StyleTTS2")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):
        runner.main(["--gin", str(REPO / "gin/stage2_ljspeech.gin"), "--run_dir", str(tmp_path / "run"),
                     "--gin_param", "Trainer.device = 'cpu'", "--debug"])


def test_stage1_checkpoint_is_refused_for_synthesis(checkpoints, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="Stage1 checkpoint.*cannot synthesize"):
        load_model(str(checkpoints["Stage1"]))
    assert synthesize_main(["--checkpoint", str(checkpoints["Stage1"]), "Hi.", "-o", str(tmp_path / "x.wav")]) == 2
    one_line_error(capsys.readouterr().err, "Stage1", "stage 2")
    assert to_onnx.main(["--checkpoint", str(checkpoints["Stage1"]), "--out", str(tmp_path / "e")]) == 2
    one_line_error(capsys.readouterr().err, "Stage1")
    assert not (tmp_path / "e").exists()
    load_model(str(checkpoints["Stage2"]))  # a stage-2 checkpoint loads


def test_a_stage_0_checkpoint_given_to_export_says_which_stage_takes_it(checkpoints, tmp_path, capsys):
    assert to_onnx.main(["--checkpoint", str(checkpoints["Stage0Aligner"]), "--out", str(tmp_path / "e")]) == 2
    one_line_error(capsys.readouterr().err, "Stage0Aligner checkpoint", "text aligner only",
                   "Train stage 1 with it", "load_pretrained_parts.aligner_path")


@pytest.mark.parametrize("kind, fragment", [("junk", "cannot be read"), ("no_net", "no 'net' entry"),
                                            ("missing", "not found")])
def test_bad_checkpoint_given_to_synthesize_or_export(checkpoints, tmp_path, capsys, kind, fragment):
    path = checkpoints.get(kind, tmp_path / "missing.pth")
    assert synthesize_main(["--checkpoint", str(path), "Hi.", "-o", str(tmp_path / "x.wav")]) == 2
    one_line_error(capsys.readouterr().err, "python -m styletts2.synthesize: error:", str(path), fragment)
    assert to_torchscript.main(["--checkpoint", str(path), "--out", str(tmp_path / "ts")]) == 2
    one_line_error(capsys.readouterr().err, str(path))


@pytest.mark.parametrize("text", ["", "   ", "\x00"])
def test_empty_text_given_to_synthesize(checkpoints, tmp_path, capsys, text):
    assert synthesize_main(["--checkpoint", str(checkpoints["Stage2"]), text, "-o", str(tmp_path / "x.wav")]) == 2
    one_line_error(capsys.readouterr().err, "python -m styletts2.synthesize: error:")


def test_synthesize_checks_its_output_name_before_loading(tmp_path, capsys):
    # the checkpoint does not exist: the output name is what it is told about first
    assert synthesize_main(["--checkpoint", str(tmp_path / "none.pth"), "Hello.", "-o", str(tmp_path / "x.txt")]) == 2
    one_line_error(capsys.readouterr().err, "python -m styletts2.synthesize: error: cannot write")


@pytest.mark.parametrize("device, fragment", [("cuda", "no CUDA GPU"), ("cuda:0", "no CUDA GPU"),
                                              ("gpu", "not a device name"), ("meta", "not supported")])
def test_synthesize_checks_its_device_first(checkpoints, tmp_path, capsys, monkeypatch, device, fragment):
    # as on a machine without a GPU: torch failed late there, with an AssertionError traceback
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "x.wav"
    argv = ["--checkpoint", str(checkpoints["Stage2"]), "--device", device, "Hi.", "-o", str(out)]
    assert synthesize_main(argv) == 2
    one_line_error(capsys.readouterr().err, "python -m styletts2.synthesize: error:", f"device {device!r}", fragment)
    assert not out.exists()


@pytest.mark.parametrize("binding", ["bogus", "TextEncoder.channels = (1,", "x = 'unterminated"])
def test_a_gin_binding_that_does_not_parse_is_a_user_error(checkpoints, tmp_path, capsys, binding):
    argv = ["--checkpoint", str(checkpoints["Stage2"]), "--gin_param", binding, "Hi.", "-o", str(tmp_path / "x.wav")]
    assert synthesize_main(argv) == 2
    one_line_error(capsys.readouterr().err, "python -m styletts2.synthesize: error:", repr(binding), "cannot be parsed")


def test_gin_syntax_is_checked_without_binding_anything():
    from styletts2.gin_paths import check_binding_syntax

    gin.clear_config()
    check_binding_syntax("Unknown.setting = @nowhere()")  # parses: unknown names are gin's later concern
    with pytest.raises(ValueError, match="'a.b = ' cannot be parsed"):
        check_binding_syntax("a.b = ")
    assert gin.config_str() == ""


def test_first_stage_checkpoint_that_is_no_checkpoint(checkpoints):
    from styletts2.train.stage2 import load_first_stage

    with pytest.raises(CheckpointError, match="no_net.pth: not a StyleTTS2 checkpoint"):
        load_first_stage(build_tiny(), str(checkpoints["no_net"]))


def test_no_spurious_gin_error_outside_the_repo(checkpoints, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        load_model(str(checkpoints["Stage2"]), [str(REPO / "gin/model/tiny.gin")])
    assert not [r for r in caplog.records if "Path not found" in r.getMessage()]


def test_rtf_bad_model_dir(tmp_path, capsys):
    from styletts2.bench.rtf import main as rtf_main

    assert rtf_main(["--model", str(tmp_path / "nowhere"), "--no-flops", "--backends", "onnxruntime"]) == 2
    one_line_error(capsys.readouterr().err, "rtf.py: error:", "nowhere")


@pytest.mark.parametrize("script", ["export/to_onnx.py", "export/to_torchscript.py", "export/parity_report.py",
                                    "bench/rtf.py", "bench/learning.py", "bench/matmul_rate.py"])
def test_scripts_say_how_to_install_the_package(script, tmp_path):
    """The command lines in export/ and bench/ run the installed package: in a Python without it
    (here `-S`: no site-packages), one line says to install it."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-S", str(REPO / script), "--help"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 1
    one_line_error(result.stderr, script, "not installed", "make setup")


def test_ctrl_c_ends_a_command_in_one_line(capsys):
    from styletts2.errors import INTERRUPTED_EXIT_CODE, run_guarded

    def interrupted():
        raise KeyboardInterrupt

    assert run_guarded("prog", interrupted) == INTERRUPTED_EXIT_CODE == 130
    assert capsys.readouterr().err == "prog: interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        run_guarded("prog", interrupted, debug=True)


def test_a_command_s_warnings_are_one_line(capsys):
    import sys
    import warnings

    from styletts2.errors import run_guarded

    def warns():
        warnings.warn("12 samples beyond [-1, 1] clipped", UserWarning)
        return 0

    def print_warning(message, category, filename, lineno, file=None, line=None):  # Python's own, in short
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():  # pytest's recorder set aside: the warning is printed
        warnings.simplefilter("always")
        warnings.showwarning = print_warning
        assert run_guarded("prog", warns) == 0
    assert capsys.readouterr().err == "prog: warning: 12 samples beyond [-1, 1] clipped\n"
    assert warnings.formatwarning.__module__ == "warnings"  # restored after the command
