"""The runtime's audio from a reduced-precision export against the fp32 export of the same model
(tests of `to_onnx.py --int8-decoder` and `--fp16`)."""
import json

import numpy as np
import onnx

from styletts2.export.quantize import quality
from styletts2.graph_contract import GRAPH_METADATA
from styletts2.runtime import Synthesizer


def recorded_fields(folder) -> dict[str, dict[str, str]]:
    """{graph: {field: value}}: the model.json fields the export recorded in each graph's metadata."""
    info = json.loads((folder / "model.json").read_text())
    protos = {graph: onnx.load(str(folder / info["graphs"][graph]["file"]), load_external_data=False)
              for graph in GRAPH_METADATA}
    return {graph: {e.key: e.value for e in proto.metadata_props if e.key in GRAPH_METADATA[graph]}
            for graph, proto in protos.items()}


def runtime_quality(fp32_dir, other_dir, text: str, seed: int = 4) -> dict[str, float]:
    """Both folders synthesize `text` with the same seed; the durations must be equal (the prosody
    predictor stays fp32); returns the other's SNR and log-mel distance against fp32's audio. The
    rewrites of the graphs keep what they record of model.json, which the runtime checks."""
    assert recorded_fields(other_dir) == recorded_fields(fp32_dir) == {
        "text_encoder": {"bert_max_positions": "512"}, "decoder": {"sample_rate": "24000"}}
    want = list(Synthesizer(fp32_dir, providers="cpu", threads=1).synthesize_pieces(text, seed=seed))
    got = list(Synthesizer(other_dir, providers="cpu", threads=1).synthesize_pieces(text, seed=seed))
    assert len(want) == len(got) == 1
    np.testing.assert_array_equal(want[0].durations, got[0].durations)
    return quality(want[0].wave, got[0].wave, json.loads((fp32_dir / "model.json").read_text())["mel"])
