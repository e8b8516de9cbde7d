"""`pip install ".[runtime]"` into a fresh virtual environment: no torch (nor librosa) comes with
it, and the runtime CLI synthesizes a wav from an exported folder (test_runtime's fake graphs).
Installs from the package index pip is configured with: 14 s here with pip's cache warm, 2-3 minutes
when the CPU is busy, nearly all of it pip."""
import shutil
import subprocess
import sys
import venv

import pytest
import soundfile as sf
from test_runtime import make_fake_model_dir

from conftest import REPO


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime_env")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    # the wheel is built from a copy of the package: building writes build/ next to pyproject.toml
    source = root / "source"
    shutil.copytree(REPO / "styletts2", source / "styletts2", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(root / "wheel"), str(source)], check=True, cwd=root)
    wheel = next((root / "wheel").glob("styletts2-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[runtime]"], check=True, cwd=root)
    return python


def test_runtime_installs_without_torch_and_synthesizes(runtime_env, tmp_path):
    installed = subprocess.run([str(runtime_env), "-m", "pip", "list", "--format=freeze"], check=True,
                               capture_output=True, text=True).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert "onnxruntime" in names and "styletts2" in names
    assert not names & {"torch", "librosa", "numba", "scipy", "transformers"}, names
    model = make_fake_model_dir(tmp_path / "model")
    out = tmp_path / "hello.wav"
    subprocess.run([str(runtime_env), "-m", "styletts2.runtime", "Hello there.", "-m", str(model), "-o", str(out),
                    "--seed", "0"], check=True, cwd=tmp_path, capture_output=True, text=True)
    wave, rate = sf.read(out)
    assert rate == 24000 and len(wave) > 0
