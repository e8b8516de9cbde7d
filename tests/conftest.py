"""Shared test fixtures: paths, gin hygiene, a tiny model and a voice-like clip."""
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _clean_global_state():
    """Each test starts with no gin config, grad mode on and the default thread count."""
    gin.clear_config()
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    yield
    gin.clear_config()
    torch.set_grad_enabled(grad)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: extra intra-op threads only add contention.
    Test files that want it say `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_tiny(modules=None, seed: int = 0):
    from styletts2.model import INFERENCE_MODULES, build_model_from_config

    torch.manual_seed(seed)
    return build_model_from_config([str(REPO / "gin/model/tiny.gin")],
                                   modules=modules if modules is not None else INFERENCE_MODULES).eval()


@pytest.fixture
def tiny_model():
    return build_tiny()


def voice_like(seconds=2.0, sr=24000, seed=0):
    """A harmonic, amplitude-modulated signal with a noise floor (every mel bin holds energy)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 1.5 * t)) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 30)) * 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    return (wave + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
