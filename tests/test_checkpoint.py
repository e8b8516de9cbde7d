"""Checkpoint I/O: upstream's layout, every key variant upstream files carry, nothing skipped silently."""
import os

import pytest
import torch

from conftest import REPO, build_tiny
from styletts2.checkpoint import (CheckpointError, atomic_save, load_aligner_weights, load_net_state,
                                  load_pitch_weights, make_checkpoint)
from styletts2.model import MODULE_NAMES, load_model


def _net(model):
    return {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in model.nets.items()}


def _fresh(seed=1):
    return build_tiny(seed=seed)


def _assert_same_weights(a, b):
    for name in a.nets:
        sa, sb = a.nets[name].state_dict(), b.nets[name].state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key}"


def test_roundtrip_rebuilds_model_from_its_own_config(tmp_path, tiny_model):
    import gin

    path = atomic_save(make_checkpoint(tiny_model.nets, epoch=3, iters=120, gin_config=gin.operative_config_str()
                                       or gin.config_str(), sigma_data=0.31), tmp_path / "ckpt.pth")
    model, meta = load_model(str(path))
    _assert_same_weights(model, tiny_model)
    assert meta["epoch"] == 3 and meta["iters"] == 120
    assert model.diffusion.sigma_data == pytest.approx(0.31)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]  # no temp file left behind


def test_upstream_variants_load_strictly(tiny_model):
    net = _net(tiny_model)
    # DataParallel prefixes (stage-2 checkpoints), on some modules only.
    for name in ("decoder", "predictor", "bert"):
        net[name] = {f"module.{k}": v for k, v in net[name].items()}
    # Only one copy of the twin diffusion entries.
    net["diffusion"] = {k: v for k, v in net["diffusion"].items() if not k.startswith("unet.")}
    # transformers < 5 kept this constant buffer in ALBERT's state dict.
    net["bert"]["module.embeddings.position_ids"] = torch.arange(512)[None]
    # torch.nn.utils.parametrizations names for weight norm and spectral norm.
    te = net["text_encoder"]
    te["cnn.0.0.parametrizations.weight.original0"] = te.pop("cnn.0.0.weight_g")
    te["cnn.0.0.parametrizations.weight.original1"] = te.pop("cnn.0.0.weight_v")
    se = net["style_encoder"]
    se["shared.0.parametrizations.weight.original"] = se.pop("shared.0.weight_orig")
    se["shared.0.parametrizations.weight.0._u"] = se.pop("shared.0.weight_u")
    se["shared.0.parametrizations.weight.0._v"] = se.pop("shared.0.weight_v")

    model = _fresh()
    loaded = load_net_state(model.nets, net)
    assert loaded == list(model.nets)
    _assert_same_weights(model, tiny_model)


def test_mismatch_lists_missing_and_unexpected_keys_per_module(tiny_model):
    net = _net(tiny_model)
    del net["decoder"]["generator.conv_post.bias"]
    net["predictor"]["shared.weight_extra"] = torch.zeros(1)
    net["text_encoder"]["embedding.weight"] = torch.zeros(3, 3)
    model = _fresh()
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_net_state(model.nets, net)
    msg = str(err.value)
    assert "decoder: 1 missing: generator.conv_post.bias" in msg
    assert "predictor: 1 unexpected: shared.weight_extra" in msg
    assert "text_encoder: 1 shape mismatch: embedding.weight" in msg
    # Nothing was loaded: checks run before any module is touched.
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in before.items())


def test_only_the_legacy_bert_buffer_is_dropped(tiny_model):
    net = _net(tiny_model)
    net["bert"]["embeddings.token_ids"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="bert: 1 unexpected: embeddings.token_ids"):
        load_net_state(_fresh().nets, net)


def test_absent_modules_are_an_error_unless_allowed(tiny_model):
    net = _net(tiny_model)
    del net["diffusion"]
    model = _fresh()
    with pytest.raises(CheckpointError, match=r"lacks module\(s\) \['diffusion'\]"):
        load_net_state(model.nets, net)
    assert "diffusion" not in load_net_state(model.nets, net, allow_absent=["diffusion"])
    assert load_net_state(model.nets, net, skip=["diffusion"]) == [n for n in model.nets if n != "diffusion"]


def test_upstream_checkpoint_needs_a_config(tmp_path, tiny_model):
    path = atomic_save(make_checkpoint(tiny_model.nets), tmp_path / "upstream.pth")
    with pytest.raises(CheckpointError, match="gin/model/ljspeech.gin"):
        load_model(str(path))
    model, _ = load_model(str(path), [str(REPO / "gin/model/tiny.gin")])
    _assert_same_weights(model, tiny_model)


def test_checkpoint_layout_is_upstreams(tiny_model):
    state = make_checkpoint(tiny_model.nets, epoch=1, iters=2, optimizer={"x": 1}, gin_config="")
    assert {"net", "optimizer", "epoch", "iters", "val_loss"} <= set(state)
    assert list(state["net"]) == [n for n in MODULE_NAMES if n in state["net"]]
    with pytest.raises(ValueError, match="clash"):
        make_checkpoint(tiny_model.nets, epoch=1, net={})


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = atomic_save({"a": torch.ones(2)}, tmp_path / "last.pth")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path)["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["last.pth"]


def test_atomic_save_gives_the_umasks_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_save({"a": torch.ones(2)}, tmp_path / "last.pth", previous=tmp_path / "last.previous.pth")
        atomic_save({"a": torch.ones(3)}, path, previous=tmp_path / "last.previous.pth")
    finally:
        os.umask(old)
    for name in ("last.pth", "last.previous.pth"):  # as an ordinary file: the group can read a shared run's checkpoints
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_a_filesystem_that_refuses_modes_keeps_the_checkpoint(tmp_path, monkeypatch):
    """vfat refuses chmod: the save must not be lost for a file mode."""
    from styletts2 import file_modes

    def refuse(*_):
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(file_modes.os, "chmod", refuse)
    path = atomic_save({"a": torch.ones(2)}, tmp_path / "last.pth")
    assert torch.equal(torch.load(path)["a"], torch.ones(2)) and os.listdir(tmp_path) == ["last.pth"]


def test_the_umask_is_read_without_changing_it(monkeypatch):
    from styletts2 import file_modes

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(file_modes.os, "umask", lambda *_: pytest.fail("the umask was set"))
        assert file_modes.file_mode() == 0o640  # from /proc/self/status, on Linux
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_pretrained_helpers_load_from_their_release_layouts(tmp_path):
    model = build_tiny(modules=("text_aligner", "pitch_extractor"))
    other = build_tiny(modules=("text_aligner", "pitch_extractor"), seed=5)
    torch.save({"model": {f"module.{k}": v for k, v in model.text_aligner.state_dict().items()}}, tmp_path / "asr.pth")
    torch.save({"net": model.pitch_extractor.state_dict()}, tmp_path / "bst.t7")
    load_aligner_weights(other.text_aligner, tmp_path / "asr.pth")
    load_pitch_weights(other.pitch_extractor, tmp_path / "bst.t7")
    _assert_same_weights(other, model)
    with pytest.raises(CheckpointError, match=r"expected the weights under \['net'\]"):
        load_pitch_weights(other.pitch_extractor, tmp_path / "asr.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_aligner_weights(other.text_aligner, tmp_path / "nope.pth")
