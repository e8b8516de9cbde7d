"""int8 decoder export (styletts2/export/quantize.py, `to_onnx.py --int8-decoder`): which convolutions are
quantized, the quality record in model.json, and that the runtime drives the int8 export with the
fp32 export's durations."""
import json

import numpy as np
import onnx
import pytest

from conftest import REPO
from export_quality import runtime_quality
from styletts2.export import to_onnx
from styletts2.export.model_card import mel_config
from styletts2.export.quantize import (CALIBRATION_TEXTS, QUANTIZED_CONVS, calibration_feeds, quality,
                                       quantize_decoder)

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = "The old lighthouse keeper climbed the stairs."


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny random model exported twice: fp32, and with the int8 decoder."""
    tmp = tmp_path_factory.mktemp("int8")
    common = ["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify"]
    assert to_onnx.main(common + ["--out", str(tmp / "fp32")]) == 0
    assert to_onnx.main(common + ["--out", str(tmp / "int8"), "--int8-decoder", "--calibration-speed", "4"]) == 0
    return tmp / "fp32", tmp / "int8"


def _conv_weight_sources(path):
    """{Conv node name: the op type that produces its weight input}."""
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    return {node.name: producer.get(node.input[1], "initializer") for node in graph.node if node.op_type == "Conv"}


def test_only_the_vocoder_blocks_are_int8(exports):
    fp32, int8 = exports
    sources = _conv_weight_sources(int8 / "decoder.onnx")
    assert set(sources) == set(_conv_weight_sources(fp32 / "decoder.onnx"))  # same convolutions, none fused away
    quantized = {name for name, op in sources.items() if op == "DequantizeLinear"}
    assert quantized == {name for name in sources if QUANTIZED_CONVS.search(name)}
    assert quantized and not any(name.startswith("/predictor/") for name in quantized)
    assert not any(name.endswith(("conv_post/Conv", "F0_conv/Conv", "N_conv/Conv")) for name in quantized)


def test_model_json_records_precision_and_quality(exports):
    fp32, int8 = exports
    assert json.loads((fp32 / "model.json").read_text())["precision"] == {
        "text_encoder": "fp32", "diffusion_sampler": "fp32", "diffusion_sampler_unguided": "fp32",
        "decoder": "fp32", "style_encoder": "fp32"}  # single speaker too: for reference clips
    record = json.loads((int8 / "model.json").read_text())["precision"]
    assert record["text_encoder"] == "fp32" and record["diffusion_sampler"] == "fp32"
    decoder = record["decoder"]
    assert decoder["int8_convs"] > 0 and decoder["calibration_utterances"] == 4
    # measured on the tiny model: 28.6 dB, log-mel L1 0.027 (natural log)
    assert decoder["quality_vs_fp32"]["snr_db"] > 20 and decoder["quality_vs_fp32"]["log_mel_l1"] < 0.1
    assert "int8" in (int8 / "README.md").read_text()


def test_runtime_runs_the_int8_export(exports):
    measured = runtime_quality(*exports, TEXT)  # measured 28.6 dB, log-mel L1 0.027
    assert measured["snr_db"] > 20 and measured["log_mel_l1"] < 0.1


def test_quality_metrics():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(24000).astype(np.float32)
    same = quality(wave, wave, mel_config())
    assert same["snr_db"] == float("inf") and same["log_mel_l1"] == 0.0
    noisy = quality(wave, wave + 0.01 * rng.standard_normal(24000).astype(np.float32), mel_config())
    assert noisy["snr_db"] == pytest.approx(40.0, abs=0.5) and noisy["log_mel_l1"] > 0


def test_lean_calibration_quantizes_exactly_as_onnxruntime_calibrates(exports, tmp_path):
    """The ranges computed in priority order (a third of the memory at LJSpeech size) are onnxruntime's
    own: the two int8 decoders are the same bytes."""
    fp32, _ = exports
    feeds = calibration_feeds(fp32, CALIBRATION_TEXTS[:2], speed=4.0)
    for lean in (True, False):
        quantize_decoder(fp32 / "decoder.onnx", tmp_path / f"{lean}.onnx", feeds, lean_calibration=lean)
    assert (tmp_path / "True.onnx").read_bytes() == (tmp_path / "False.onnx").read_bytes()


def test_bad_calls(exports, tmp_path):
    fp32, _ = exports
    with pytest.raises(ValueError, match="at least one"):
        quantize_decoder(fp32 / "decoder.onnx", tmp_path / "d.onnx", [])
    with pytest.raises(ValueError, match="no vocoder convolution"):
        quantize_decoder(fp32 / "text_encoder.onnx", tmp_path / "t.onnx", [{}])
