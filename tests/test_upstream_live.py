"""Checkpoints cross between upstream's code and ours, both ways (needs the upstream checkout:
set STYLETTS2_UPSTREAM; skipped otherwise)."""
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from styletts2.checkpoint import atomic_save, load_net_state, make_checkpoint
from styletts2.model import build_model_from_config

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))
from upstream_harness import build_upstream_model, upstream_path  # noqa: E402

pytestmark = pytest.mark.skipif(upstream_path() is None, reason="STYLETTS2_UPSTREAM not set")


@pytest.mark.parametrize("config,upstream_config", [("ljspeech", "config.yml"), ("libritts", "config_libritts.yml")])
def test_checkpoints_cross_both_ways(config, upstream_config, tmp_path):
    nets, _ = build_upstream_model(upstream_config, seed=3)
    # An upstream stage-2 checkpoint: DataParallel `module.` prefixes on every module.
    upstream_state = {"net": {name: {f"module.{k}": v for k, v in m.state_dict().items()}
                              for name, m in nets.items()}, "optimizer": {}, "epoch": 100, "iters": 0}
    torch.manual_seed(0)
    ours = build_model_from_config([str(REPO / f"gin/model/{config}.gin")])
    assert load_net_state(ours.nets, upstream_state["net"]) == list(nets.keys())
    for name, module in nets.items():
        theirs = module.state_dict()
        for key, value in ours.nets[name].state_dict().items():
            assert torch.equal(value, theirs[key]), f"{name}.{key}"

    # Ours, saved, loads into upstream's modules strictly (upstream itself loads with strict=False).
    path = atomic_save(make_checkpoint(ours.nets, epoch=1), tmp_path / "ours.pth")
    saved = torch.load(path, weights_only=False)
    fresh, _ = build_upstream_model(upstream_config, seed=4)
    for name, module in fresh.items():
        module.load_state_dict(saved["net"][name], strict=True)


@pytest.mark.parametrize("upstream_config,reference", [("config.yml", "ljspeech"), ("config_libritts.yml", "libritts"),
                                                       ("config_ft.yml", "libritts")])
def test_upstream_yaml_configs_build_the_reference_models(upstream_config, reference):
    from conftest import REFERENCE
    from styletts2.manifest import read_manifest
    from styletts2.upstream_config import split_configs

    files, bindings = split_configs([str(Path(upstream_path()) / "Configs" / upstream_config)])
    model = build_model_from_config(files, bindings)
    assert sorted(model.manifest()) == sorted(read_manifest(str(REFERENCE / f"upstream_{reference}_state_dict.tsv")))


def test_upstream_backend_runs_upstream_code_on_our_weights(tmp_path):
    """bench/rtf.py --upstream: the worker's graphs (upstream's code), on our model's weights and the
    same inputs and step noises, give what our fidelity executor gives (upstream's exact path)."""
    import numpy as np

    from styletts2.bench.backends import UpstreamExecutor
    from styletts2.bench.rtf import base_feeds
    from styletts2.checkpoint import atomic_save, make_checkpoint
    from styletts2.torch_executor import TorchExecutor

    torch.manual_seed(0)
    ours = build_model_from_config([str(REPO / "gin/model/ljspeech.gin")])
    weights = atomic_save(make_checkpoint(ours.nets), tmp_path / "weights.pth")
    fidelity = TorchExecutor.fidelity(ours, 5, "cpu")
    upstream = UpstreamExecutor(Path(upstream_path()), Path(upstream_path()) / "Configs" / "config.yml", weights, 5,
                                threads=2)
    try:
        feeds = base_feeds([50, 83, 54, 156, 57, 135, 16, 65, 156, 87, 158, 54, 46], 256, 5, seed=1)
        feeds["speed"] = np.array(0.2, dtype=np.float32)  # random durations are ~25 frames per token
        with torch.no_grad():
            ours_text = fidelity.run("text_encoder", feeds)
        theirs_text = upstream.run("text_encoder", feeds)
        for name, value in ours_text.items():
            np.testing.assert_array_equal(theirs_text[name], value, err_msg=name)
        style = upstream.run("diffusion_sampler", {**feeds, **theirs_text})["style"]
        with torch.no_grad():
            ours_style = fidelity.run("diffusion_sampler", {**feeds, **ours_text})["style"]
        np.testing.assert_array_equal(style, ours_style)
        assert upstream.last_seconds > 0
        chain = {**feeds, **ours_text, "style": style}
        with torch.no_grad():
            ours_wave = fidelity.run("decoder", chain)
        theirs_wave = upstream.run("decoder", chain)
        np.testing.assert_array_equal(theirs_wave["durations"], ours_wave["durations"])
        np.testing.assert_array_equal(theirs_wave["waveform"], ours_wave["waveform"])
        assert upstream.peak_rss_mb > 100
    finally:
        upstream.close()
