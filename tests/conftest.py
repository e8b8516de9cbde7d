"""Shared test fixtures: paths, gin hygiene and a tiny model."""
from pathlib import Path

import gin
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
