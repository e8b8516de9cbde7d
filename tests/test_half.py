"""fp16 export for GPU providers (styletts2/export/half.py, `to_onnx.py --fp16`), checked on the CPU
provider: what is fp16 and what stays fp32, the contract's float32 inputs and outputs, the folder's
size, the quality record in model.json, and the runtime's audio against the fp32 export."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from conftest import REPO
from export_quality import runtime_quality
from styletts2.bench.backends import decoder_precision
from styletts2.export import to_onnx
from styletts2.export.half import DECODER_FP16_SCOPES
from styletts2.runtime.model_dir import read_model_json

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = "The old lighthouse keeper climbed the stairs."


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny random model exported twice: fp32 and fp16."""
    tmp = tmp_path_factory.mktemp("fp16")
    common = ["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify", "--calibration-speed", "4"]
    assert to_onnx.main(common + ["--out", str(tmp / "fp32")]) == 0
    assert to_onnx.main(common + ["--out", str(tmp / "fp16"), "--fp16"]) == 0
    return tmp / "fp32", tmp / "fp16"


def _float_initializers(path) -> dict[str, int]:
    """{initializer name: element type} of a graph's floating-point weights (external data included)."""
    graph = onnx.load(str(path)).graph
    return {t.name: t.data_type for t in graph.initializer
            if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16) and np.prod(t.dims) > 1}


def test_weights_are_fp16_but_the_decoder_s_signal_path(exports):
    _, fp16 = exports
    for graph in ("text_encoder", "diffusion_sampler", "diffusion_sampler_unguided", "style_encoder"):
        types = _float_initializers(fp16 / f"{graph}.onnx")
        assert types and set(types.values()) == {TensorProto.FLOAT16}, graph
    decoder = onnx.load(str(fp16 / "decoder.onnx")).graph
    producers = {out: node for node in decoder.node for out in node.output}
    weights = {t.name: t.data_type for t in decoder.initializer}
    convs = [node for node in decoder.node if node.op_type == "Conv"]
    vocoder = [n for n in convs if n.name.startswith(DECODER_FP16_SCOPES)]
    predictor = [n for n in convs if n.name.startswith(("/F0", "/N"))]
    assert vocoder and predictor
    assert all(weights.get(n.input[1]) == TensorProto.FLOAT16 for n in vocoder)
    # the predictor's weights stay float32 (read directly, or through no cast at all)
    assert all(weights.get(n.input[1], TensorProto.FLOAT) == TensorProto.FLOAT
               and n.input[1] not in producers for n in predictor)
    # float32 consumers read the graph's inputs directly: no input is rounded to fp16 and back
    inputs = {i.name for i in decoder.input}
    rounded = {n.output[0] for n in decoder.node if n.op_type == "Cast" and n.input[0] in inputs
               and n.attribute[0].i == TensorProto.FLOAT16}
    assert not [n for n in decoder.node if n.op_type == "Cast" and n.input[0] in rounded
                and n.attribute[0].i == TensorProto.FLOAT]


def test_contract_model_json_and_size(exports):
    fp32, fp16 = exports
    for name in ("text_encoder", "decoder", "diffusion_sampler_unguided"):  # the runtime's contract: float32 I/O
        want, got = onnx.load(str(fp32 / f"{name}.onnx")).graph, onnx.load(str(fp16 / f"{name}.onnx")).graph
        assert [(i.name, i.type.tensor_type.elem_type) for i in got.input] == \
               [(i.name, i.type.tensor_type.elem_type) for i in want.input]
        assert [(o.name, o.type.tensor_type.elem_type) for o in got.output] == \
               [(o.name, o.type.tensor_type.elem_type) for o in want.output]
    record = json.loads((fp16 / "model.json").read_text())["precision"]
    assert record["text_encoder"] == "fp16" and record["diffusion_sampler"] == "fp16"
    assert record["decoder"]["decoder"].startswith("fp16 vocoder layers")
    quality_record = record["decoder"]["quality_vs_fp32"]
    assert quality_record["snr_db"] > 25 and quality_record["log_mel_l1"] < 0.05
    assert decoder_precision(read_model_json(fp16)) == "fp16" and decoder_precision(read_model_json(fp32)) == "fp32"
    assert "fp16" in (fp16 / "README.md").read_text()

    def size(folder):
        return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".onnx", ".bin"))

    # measured 0.72 (the fp32 prosody predictor is a larger share of the tiny model than of a full-size
    # one); the samplers' shared transformer is still stored once
    assert size(fp16) < 0.75 * size(fp32) and (fp16 / "shared_weights.bin").is_file()


def test_runtime_runs_the_fp16_export_with_the_fp32_durations(exports):
    measured = runtime_quality(*exports, TEXT)
    assert measured["snr_db"] > 20 and measured["log_mel_l1"] < 0.05


def test_fp16_and_int8_exclude_each_other(tmp_path, capsys):
    code = to_onnx.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify", "--out",
                         str(tmp_path / "x"), "--fp16", "--int8-decoder"])
    assert code == 2 and "exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("speed", ["-1", "0", "nan"])
def test_a_calibration_speed_the_runtime_never_uses_is_refused(tmp_path, capsys, speed):
    """Speed -1 calibrated on degenerate decoder inputs and reported a better SNR than speed 1."""
    code = to_onnx.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify", "--out",
                         str(tmp_path / "x"), "--int8-decoder", "--calibration-speed", speed])
    assert code == 2 and "--calibration-speed must be a finite number of at least 0.25" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
