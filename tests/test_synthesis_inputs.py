"""What both synthesizers (torch `styletts2.inference`, onnxruntime `styletts2.runtime`) accept:
control characters in text, option ranges, output bounds, reference clips (issue 11, items 3 and 7).
The runtime runs on test_runtime's fake exported model; the torch synthesizer on the tiny model."""
import numpy as np
import pytest
from test_runtime import make_fake_model_dir

from conftest import build_tiny
from styletts2 import inference
from styletts2.runtime import Synthesizer as RuntimeSynthesizer
from styletts2.text.phonemizer import phonemize
from styletts2.text.sentences import remove_control_characters

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return RuntimeSynthesizer(make_fake_model_dir(tmp_path_factory.mktemp("fake")), providers="cpu", threads=1)


@pytest.fixture(scope="module")
def torch_synth():
    return inference.Synthesizer(build_tiny(), device="cpu")


@pytest.fixture(params=["torch", "runtime"])
def synth(request, torch_synth, runtime):
    return torch_synth if request.param == "torch" else runtime


# Text: control characters (item 7) -------------------------------------------------------------------

def test_remove_control_characters():
    assert remove_control_characters("Hello\x00 world\x1b\x7f\x85!") == "Hello  world   !"
    assert remove_control_characters("plain text, é ü ß") == "plain text, é ü ß"


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("text", ["Hello\x00 world.", "Hello\x00world.", "Hello\x1b world.", "Hello\x7f\x9b world."])
def test_control_characters_drop_no_text(synth, text, normalize, monkeypatch):
    if not normalize:  # text read as written: the control characters reach the phonemizer
        monkeypatch.setattr(synth, "normalizer", None)
    assert synth.text_to_token_pieces(text) == synth.text_to_token_pieces("Hello world.")


def test_phonemize_keeps_the_words_after_a_nul():
    assert phonemize("Hello\x00 world") == phonemize("Hello world")


def test_only_control_characters_is_an_error(synth):
    with pytest.raises(ValueError):
        synth.text_to_token_pieces("\x00\x01\x02")
