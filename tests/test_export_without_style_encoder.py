"""`export/to_onnx.py --without-style-encoder`: a single-speaker folder without the style encoder
samples every style, refuses a reference clip with a clear error, and multispeaker models refuse
the option (their sampler needs the reference style the style encoder reads)."""
import json

import numpy as np
import pytest

from conftest import REPO
from styletts2.data.make_corpus import speak_as_corpus
from styletts2.export import to_onnx
from styletts2.runtime import Synthesizer
from styletts2.runtime.model_dir import ModelDirError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_single_speaker_folder_without_the_style_encoder(tmp_path):
    out = tmp_path / "lean"
    assert to_onnx.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-verify", "--out", str(out),
                         "--without-style-encoder"]) == 0
    assert not (out / "style_encoder.onnx").exists()
    info = json.loads((out / "model.json").read_text())
    assert "style_encoder" not in info["graphs"] and "style_encoder" not in info["precision"]
    synthesizer = Synthesizer(out, providers="cpu", threads=1)
    wave = synthesizer.synthesize("A short test.", seed=0)
    assert wave.ndim == 1 and wave.size > 0 and np.isfinite(wave).all()
    with pytest.raises(ModelDirError, match="has no style_encoder graph"):
        synthesizer.synthesize("A short test.", seed=0, reference=speak_as_corpus("A reference clip of two seconds."))


def test_multispeaker_models_keep_their_style_encoder(tmp_path, capsys):
    code = to_onnx.main(["--random-init", str(REPO / "gin/model/tiny_multispeaker.gin"), "--no-verify", "--out",
                         str(tmp_path / "x"), "--without-style-encoder"])
    assert code == 2 and "multispeaker model's sampler takes a reference style" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
