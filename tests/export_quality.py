"""The runtime's audio from a reduced-precision export against the fp32 export of the same model
(tests of `to_onnx.py --int8-decoder` and `--fp16`)."""
import json

import numpy as np

from styletts2.export.quantize import quality
from styletts2.runtime import Synthesizer


def runtime_quality(fp32_dir, other_dir, text: str, seed: int = 4) -> dict[str, float]:
    """Both folders synthesize `text` with the same seed; the durations must be equal (the prosody
    predictor stays fp32); returns the other's SNR and log-mel distance against fp32's audio."""
    want = list(Synthesizer(fp32_dir, providers="cpu", threads=1).synthesize_pieces(text, seed=seed))
    got = list(Synthesizer(other_dir, providers="cpu", threads=1).synthesize_pieces(text, seed=seed))
    assert len(want) == len(got) == 1
    np.testing.assert_array_equal(want[0].durations, got[0].durations)
    return quality(want[0].wave, got[0].wave, json.loads((fp32_dir / "model.json").read_text())["mel"])
