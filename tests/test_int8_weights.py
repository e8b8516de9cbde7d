"""8-bit weight storage (styletts2/export/int8_weights.py, `to_onnx.py --int8-weights`): rounding per
output channel, float32 arithmetic once onnxruntime has folded the dequantization, the prosody
predictor's weights untouched, and a whole export that the runtime drives at a quarter of the bytes."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import REPO
from export_quality import runtime_quality
from styletts2.export import to_onnx
from styletts2.export.common import ExportError
from styletts2.export.int8_weights import MIN_ELEMENTS, keeps_float, quantize_weight, store_int8

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quantize_weight_rounds_each_output_channel_to_its_own_scale():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 16, 3)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)[:, None, None]
    weight[3] = 0  # an all-zero channel stays zero (no division by zero)
    values, scale = quantize_weight(weight, axis=0)
    assert values.dtype == np.int8 and scale.shape == (8, 1, 1)
    assert np.abs(values).max() == 127 and not values[3].any()
    assert np.all(np.abs(values * scale - weight) <= scale / 2 + 1e-7)
    _, per_column = quantize_weight(weight[:, :, 0], axis=-1)
    assert per_column.shape == (1, 16)


def _graph(tmp_path):
    """A vocoder Conv and MatMul and a predictor Conv, each with a weight above MIN_ELEMENTS."""
    rng = np.random.default_rng(1)
    conv = rng.standard_normal((64, 32, 9)).astype(np.float32)   # 18432 elements
    matmul = rng.standard_normal((64, 300)).astype(np.float32)   # 19200
    kept = rng.standard_normal((64, 64, 5)).astype(np.float32)   # 20480, read by the predictor
    assert min(conv.size, matmul.size, kept.size) >= MIN_ELEMENTS
    nodes = [helper.make_node("Conv", ["x", "conv_w"], ["h"], pads=[4, 4], name="/decoder/encode/Conv"),
             helper.make_node("Conv", ["h", "kept_w"], ["p"], pads=[2, 2], name="/F0.0/conv1/Conv"),
             helper.make_node("Transpose", ["p"], ["pt"], perm=[0, 2, 1], name="t"),
             helper.make_node("MatMul", ["pt", "mm_w"], ["y"], name="/decoder/generator/MatMul")]
    inits = [numpy_helper.from_array(w, n) for w, n in ((conv, "conv_w"), (matmul, "mm_w"), (kept, "kept_w"))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, 300])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_stored_weights_fold_back_into_float32_layers(tmp_path):
    proto = _graph(tmp_path)
    onnx.save(proto, str(tmp_path / "fp32.onnx"))
    assert store_int8(proto, keeps_float("decoder")) == 2
    types = {t.name: t.data_type for t in proto.graph.initializer}
    assert types["conv_w_int8"] == types["mm_w_int8"] == TensorProto.INT8 and types["kept_w"] == TensorProto.FLOAT
    assert "conv_w" not in types and "mm_w" not in types
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp_path / "int8.onnx"))
    x = {"x": np.random.default_rng(2).standard_normal((1, 32, 20)).astype(np.float32)}
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    want = ort.InferenceSession(str(tmp_path / "fp32.onnx"), providers=["CPUExecutionProvider"]).run(None, x)[0]
    got = ort.InferenceSession(str(tmp_path / "int8.onnx"), options, providers=["CPUExecutionProvider"]).run(None, x)[0]
    snr = 10 * np.log10(np.sum(want ** 2) / np.sum((want - got) ** 2))
    assert 30 < snr < 80  # rounded weights: close, not equal (measured 37 dB)
    # onnxruntime folded Cast and Mul into float32 weights: nothing dequantizes at run time
    optimized = {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert not optimized & {"Cast", "Mul", "DequantizeLinear"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny random model exported twice: fp32, and with the int8 decoder and 8-bit weights."""
    tmp = tmp_path_factory.mktemp("int8_weights")
    common = ["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify", "--calibration-speed", "4"]
    assert to_onnx.main(common + ["--out", str(tmp / "fp32")]) == 0
    assert to_onnx.main(common + ["--out", str(tmp / "int8"), "--int8-decoder", "--int8-weights"]) == 0
    return tmp / "fp32", tmp / "int8"


def _float_bytes(folder):
    total = 0
    for path in folder.glob("*.onnx"):
        for tensor in onnx.load(str(path)).graph.initializer:  # shared weights loaded with it
            if tensor.data_type == TensorProto.FLOAT and np.prod(tensor.dims) >= MIN_ELEMENTS:
                total += tensor.ByteSize()
    return total


def test_the_export_stores_most_weight_bytes_in_8_bits_and_leaves_the_predictor_alone(exports):
    fp32, int8 = exports
    assert _float_bytes(int8) < 0.4 * _float_bytes(fp32)
    for graph in ("decoder", "text_encoder"):  # the prosody predictor; PL-BERT
        kept = [_kept_weights(folder / f"{graph}.onnx", keeps_float(graph)) for folder in (fp32, int8)]
        assert kept[0] and kept[0] == kept[1], graph  # the same float32 bytes


def _kept_weights(path, keep_float):
    """{name: bytes} of the float weights that the nodes with `keep_float(node)` read."""
    graph = onnx.load(str(path)).graph
    read = {name for node in graph.node if keep_float(node) and not node.name.endswith(("_int8_to_float", "_int8_scale"))
            for name in node.input}
    return {t.name: numpy_helper.to_array(t).tobytes() for t in graph.initializer
            if t.name in read and t.data_type == TensorProto.FLOAT and len(t.dims) >= 2}


def test_model_json_records_the_cost_and_the_runtime_speaks(exports):
    fp32, int8 = exports
    info = json.loads((int8 / "model.json").read_text())
    record = info["int8_weights"]
    # measured on the tiny model: text encoder 43 / 46 dB, style 62 dB, decoder waveform 80 dB
    assert record["weights"]["decoder"] > 0 and record["weights"]["text_encoder"] > 0
    assert min(record["quality_vs_float_weights"][name] for name in ("t_en", "d_en", "style")) > 25
    assert record["quality_vs_float_weights"]["decoder"]["snr_db"] > 25
    assert "stored in 8 bits" in info["precision"]["text_encoder"] and "weights" in info["precision"]["decoder"]
    assert "stored in 8 bits" in (int8 / "README.md").read_text()
    measured = runtime_quality(fp32, int8, "The old lighthouse keeper climbed the stairs.")
    assert measured["snr_db"] > 15 and measured["log_mel_l1"] < 0.15


def test_fp16_and_int8_weights_exclude_each_other():
    with pytest.raises(ExportError, match="exclude each other"):
        to_onnx.check_precision_flags(True, True)
