"""What the synthesizer accepts, over both kinds of executor (torch: `styletts2.inference` on the tiny
model; onnxruntime: `styletts2.runtime` on test_runtime's fake exported model): control characters
in text, option ranges, output bounds, reference clips (issue 11, items 3 and 7)."""
import dataclasses
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
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
    return inference.TorchSynthesizer(build_tiny(), device="cpu")


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


# Options, output length, reference (item 3) ------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("speed", 0), ("speed", -1), ("speed", 1e-6), ("speed", float("nan")), ("speed", float("inf")), ("speed", 100),
    ("alpha", float("nan")), ("alpha", 1.5), ("beta", float("nan")), ("beta", -0.1), ("blend", float("nan")),
    ("blend", 2), ("embedding_scale", float("nan")), ("embedding_scale", -1), ("embedding_scale", float("inf")),
    ("speed", "fast"), ("tail_frames", -1), ("tail_frames", 2.5), ("tail_frames", 101),
])
def test_options_out_of_range_name_the_option_before_any_work(synth, name, value, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("synthesis started before the options were checked")

    monkeypatch.setattr(synth, "text_to_token_pieces", no_work)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        synth.synthesize("Hello.", **{name: value})


@pytest.mark.parametrize("options, ids, message", [
    ({"speed": 0.001}, [40, 41], r"^speed must be"),  # onnxruntime went for an 800 MB allocation
    ({"tail_frames": 10 ** 6}, [40, 41], r"^tail_frames must be"),
    ({}, [40, 999], r"token id 999 is outside the model's symbol table \[0, 177\]"),  # an onnxruntime traceback
    ({}, [-1, 40], r"token id -1 is outside"),  # silently the table's last symbol
    ({}, [], "non-empty flat sequence of integers"),
    ({}, [40.0, 41.0], "non-empty flat sequence of integers, got float64"),
])
def test_synthesize_tokens_checks_options_and_ids_before_any_graph_runs(synth, options, ids, message, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a graph ran before the options and ids were checked")

    hand_made = dataclasses.replace(synth.options, **options)  # SynthesisOptions(...) itself checks nothing
    monkeypatch.setattr(synth.executor, "run", no_work)
    with pytest.raises(ValueError, match=message):
        synth.synthesize_tokens(ids, hand_made, np.random.default_rng(0), 0)


def test_synthesize_tokens_takes_the_table_s_first_and_last_ids(synth):
    ids = np.array([0, len(synth.config.symbols) - 1])
    assert synth.synthesize_tokens(ids, synth.options, np.random.default_rng(0), 0).wave.size > 0


@pytest.mark.parametrize("steps", [0, 1, 2.5, float("nan"), 1000])
def test_torch_diffusion_steps_are_checked(steps):
    with pytest.raises(ValueError, match="diffusion_steps must be an integer"):
        inference.TorchSynthesizer(build_tiny(), steps=steps, device="cpu")


def test_options_in_range_pass(synth):
    assert synth.synthesize("Hello.", seed=0, speed=0.25, alpha=0, beta=1, blend=0, embedding_scale=1).size > 0


def test_tail_frames_lengthen_each_piece(torch_synth):
    """Each piece (sentence) gets `tail_frames` more frames on its last token; a single-speaker
    model's default is the LJSpeech notebook's 5."""
    text = "Hello there. How are you?"  # two pieces
    lengths = {tail: torch_synth.synthesize(text, seed=0, tail_frames=tail).size for tail in (0, 3, None)}
    assert lengths[3] - lengths[0] == 2 * 3 * torch_synth.model.hop_length
    assert lengths[None] - lengths[0] == 2 * 5 * torch_synth.model.hop_length


def test_model_json_nan_default_is_refused(tmp_path):
    import json

    from styletts2.runtime import ModelDirError

    folder = make_fake_model_dir(tmp_path / "m")
    info = json.loads((folder / "model.json").read_text())
    info["defaults"]["alpha"] = float("nan")
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelDirError, match="defaults.*alpha must be"):
        RuntimeSynthesizer(folder, providers="cpu", threads=1)


def test_a_piece_beyond_the_frame_limit_is_an_error(synth, monkeypatch):
    import styletts2.synthesis_limits as limits

    monkeypatch.setattr(limits, "MAX_FRAMES_PER_PIECE", 3)
    with pytest.raises(ValueError, match="more than the 3 a piece may have"):
        synth.synthesize("Hello there, this is a sentence.", seed=0)


@pytest.mark.parametrize("clip", ["zeros", "tiny"])
def test_silent_reference_is_an_error(synth, clip):
    wave = np.zeros(48000, np.float32) if clip == "zeros" else np.full(48000, 1e-6, np.float32)
    with pytest.raises(ValueError, match="silent"):
        synth.reference_style(wave, 24000)



def _voice(seconds: float, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("samples, fragment", [
    ((_voice(2) * 32767).astype(np.int16), "divide integer samples by 32768"),
    (_voice(2) * 32767, r"reach 1\.96\de\+04"),  # int16 values given as floats
    (np.array([None] * 48000), "must be floats"),
    (np.full(48000, np.inf, np.float32), "NaN or infinite"),
])
def test_reference_samples_must_be_finite_floats_in_range(synth, samples, fragment):
    with pytest.raises(ValueError, match=fragment):
        synth.reference_style(samples, 24000)


def test_a_float_file_beyond_the_peak_and_a_folder_are_refused(synth, tmp_path):
    """A float wav of int16-sized (or larger) values is refused as such arrays are, before the mel
    overflows it to "0.00 s of sound"; a folder is named as one."""
    sf.write(tmp_path / "huge.wav", _voice(2) * 1e20, 24000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"huge\.wav reach 5\.\d+e\+19: float samples in \[-1, 1\] expected"):
        synth.reference_style(tmp_path / "huge.wav")
    with pytest.raises(IsADirectoryError, match="is a folder: give an audio file"):
        synth.reference_style(tmp_path)


@pytest.mark.parametrize("shape", [(1, 48000), (48000, 1), (2, 48000)])
def test_two_dimensional_samples_are_not_taken_for_a_style(synth, shape):
    """Only an array as wide as a style [1, 2S] is one; [1, N], [N, 1] and stereo arrays are samples."""
    samples = np.resize(_voice(2), shape)
    with pytest.raises(ValueError, match=re.escape(f"reference samples must be mono [samples], got shape {shape}")):
        synth.synthesize("Hello.", samples, seed=0)


@pytest.mark.parametrize("rate", [1, 16, 7999, 16000.0, True])
def test_reference_rates_that_cannot_be_audio_are_refused(synth, tmp_path, rate):
    """A rate of 1 turned 2 s of samples into hours of audio and 24 GB; a float or bool rate is a slip."""
    with pytest.raises(ValueError, match="needs an integer rate of at least 8000 Hz"):
        synth.reference_style(_voice(2), rate)
    if isinstance(rate, int) and not isinstance(rate, bool):  # a file whose header says so
        sf.write(tmp_path / "low.wav", _voice(0.1), rate)
        with pytest.raises(ValueError, match="needs an integer rate"):
            synth.reference_style(tmp_path / "low.wav")


def test_a_long_reference_gives_its_first_seconds_with_a_warning(synth, monkeypatch):
    from styletts2.runtime import synthesizer as module

    monkeypatch.setattr(module, "MAX_REFERENCE_SECONDS", 1.5)
    clip = _voice(4)
    with pytest.warns(module.ReferenceLengthWarning, match="4.0 s long; its first 2 s make the style"):
        long_style = synth.reference_style(clip, 24000)
    np.testing.assert_array_equal(long_style, synth.reference_style(clip[:36000], 24000))
    with pytest.warns(module.ReferenceLengthWarning):  # at 48 kHz: the same 1.5 s
        synth.reference_style(np.repeat(clip, 2), 48000)


def test_a_reference_style_must_be_finite(synth):
    style = np.zeros((1, 2 * synth.style_dim), np.float32)
    style[0, 1] = np.nan
    with pytest.raises(ValueError, match="must hold finite numbers"):
        synth.synthesize("Hello.", reference=style, seed=0)


def test_a_waveform_that_is_not_finite_is_an_error(runtime, monkeypatch):
    real_run = runtime.executor.run

    def nan_decoder(graph, feeds):
        out = real_run(graph, feeds)
        if graph == "decoder":
            out = {**out, "waveform": np.full_like(out["waveform"], np.nan)}
        return out

    monkeypatch.setattr(runtime.executor, "run", nan_decoder)
    with pytest.raises(FloatingPointError, match="waveform is not finite: are the model's weights"):
        runtime.synthesize("Hello.", seed=0)
    style = np.full((1, 2 * runtime.style_dim), 1e30, np.float32)
    with pytest.raises(FloatingPointError, match=r"waveform is not finite with the reference style given "
                                                 r"\(values up to 1e\+30\)"):
        runtime.synthesize("Hello.", style, seed=0)


def test_a_style_encoder_style_that_is_not_finite_is_an_error(runtime, monkeypatch):
    real_run = runtime.executor.run

    def nan_style(graph, feeds):
        out = real_run(graph, feeds)
        return {"reference_style": np.full_like(out["reference_style"], np.nan)} if graph == "style_encoder" else out

    monkeypatch.setattr(runtime.executor, "run", nan_style)
    with pytest.raises(FloatingPointError, match="style encoder's style of the reference samples is not finite"):
        runtime.reference_style(_voice(2))


def test_a_reference_log_mel_that_is_not_finite_is_an_error(runtime, monkeypatch):
    """Finite samples whose log-mel is not (model.json's mel settings refuse the known causes, e.g. a
    log_offset of -1): named as the log-mel of the reference, not blamed on the weights."""
    monkeypatch.setattr(type(runtime.mel), "__call__", lambda self, wave: np.full((80, 100), np.nan, np.float32))
    with pytest.raises(FloatingPointError, match="log-mel of the reference samples is not finite"):
        runtime.reference_style(_voice(2))


def test_runtime_cli_a_style_that_is_not_finite_is_one_line(tmp_path, capsys, monkeypatch):
    """A NaN style from the style encoder ends the CLI with one line and exit 2 (a FloatingPointError
    traceback and exit 1 before)."""
    from styletts2.runtime import executor
    from styletts2.runtime.__main__ import main

    real_run = executor.OnnxExecutor.run

    def nan_style(self, graph, feeds):
        out = real_run(self, graph, feeds)
        return {"reference_style": np.full_like(out["reference_style"], np.nan)} if graph == "style_encoder" else out

    monkeypatch.setattr(executor.OnnxExecutor, "run", nan_style)
    folder = make_fake_model_dir(tmp_path / "m")
    sf.write(tmp_path / "voice.wav", _voice(2), 24000)
    argv = ["Hello.", "-m", str(folder), "-o", str(tmp_path / "x.wav"), "--reference", str(tmp_path / "voice.wav")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "style encoder's style of " + str(tmp_path / "voice.wav") + " is not finite" in err


def test_runtime_cli_bad_speed_is_one_line(tmp_path, capsys):
    from styletts2.runtime.__main__ import main

    folder = make_fake_model_dir(tmp_path / "m")
    for value in ("nan", "1e-6", "inf"):
        assert main(["Hello.", "-m", str(folder), "-o", str(tmp_path / "x.wav"), "--speed", value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "speed must be" in err and "Traceback" not in err
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("out, fragment", [
    ("-", "writing to stdout is not supported"),
    ("", "writing to stdout is not supported"),
    ("x.txt", "give a .wav or .flac file name"),
    ("noext", "give a .wav or .flac file name"),
    ("x.mp3", "give a .wav or .flac file name"),
    (".", "is a folder"),
    ("a_file/x.wav", "is a file, not a folder"),
])
def test_runtime_cli_output_is_checked_before_the_model_opens(tmp_path, capsys, monkeypatch, out, fragment):
    from styletts2.runtime import __main__ as cli

    (tmp_path / "a_file").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "Synthesizer", None)  # reached only after the check
    assert cli.main(["Hello.", "-m", str(tmp_path / "no_model"), "-o", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["Hello there. ___", "Hello there. _ <", "Hello there. ___ ((("])
def test_a_sentence_with_no_phoneme_is_dropped_from_text_read_as_written(synth, text, monkeypatch):
    """'___' (no phoneme from espeak-ng) or '___ (((' (no known symbol) failed the whole call when
    text was read as written; normalization drops such a sentence, and so does reading as written."""
    monkeypatch.setattr(synth, "normalizer", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # brackets are outside the symbol table
        assert synth.text_to_token_pieces(text) == synth.text_to_token_pieces("Hello there.")


@pytest.mark.parametrize("text", ["___", "___ (((", "___. _ !"])
def test_text_read_as_written_with_no_phoneme_is_nothing_to_say(synth, text, monkeypatch):
    monkeypatch.setattr(synth, "normalizer", None)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="nothing to say") as caught:
        warnings.simplefilter("ignore")
        synth.text_to_token_pieces(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["? " * 1000, "...!?", "« — »"])
def test_punctuation_alone_is_nothing_to_say(synth, text):
    with pytest.raises(ValueError, match="nothing to say"):
        synth.text_to_token_pieces(text)


def test_windows_of_punctuation_alone_are_dropped():
    from styletts2.text.pieces import text_to_token_pieces
    from styletts2.text.symbols import PUNCTUATION, SYMBOL_TO_ID
    from styletts2.text.tokenizer import Tokenizer

    pieces = text_to_token_pieces("ab cd " + "? " * 40, lambda s: s, Tokenizer(), max_positions=8)
    assert pieces, "the words are still spoken"
    unspoken = {SYMBOL_TO_ID[c] for c in PUNCTUATION}
    assert all(not unspoken.issuperset(piece) for piece in pieces)
    assert [SYMBOL_TO_ID[c] for c in "ab"] == pieces[0][:2]


def _longest_unspoken_run(ids):
    from styletts2.text.symbols import PUNCTUATION, SYMBOL_TO_ID

    unspoken = {SYMBOL_TO_ID[c] for c in PUNCTUATION}
    longest = run = 0
    for i in ids:
        run = run + 1 if i in unspoken else 0
        longest = max(longest, run)
    return longest


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("text, spoken", [
    ("No" + "!" * 60, "nˈoʊ"), ("Hmm" + "," * 60 + " okay.", "həm oʊkˈeɪ"),
    ("Wait" + "?!" * 100 + " what", "wˈeɪt wˌʌt"), ("Hello " + "(" * 200 + "world" + ")" * 200 + ".", "həlˈoʊ wˈɜːld"),
    ("So" + "." * 300 + " on.", "sˈoʊ ˈɔn"), ("So" + "…" * 200 + " on.", "sˈoʊ ˈɔn"),
])
def test_runs_of_punctuation_in_a_sentence_are_bounded(text, spoken, normalize):
    """Sixty '!' after a word made 6.4 s of babble, two hundred brackets (dropped, their spaces
    left) 21 s: a run of punctuation and spaces keeps at most 16 ids, spaces at most 3 in a row."""
    from styletts2.text.normalize import TextNormalizer
    from styletts2.text.pieces import text_to_token_pieces
    from styletts2.text.symbols import PUNCTUATION
    from styletts2.text.tokenizer import Tokenizer

    tokenizer = Tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # brackets are outside the symbol table
        pieces = text_to_token_pieces(text, phonemize, tokenizer, 512, TextNormalizer() if normalize else None)
    said = " ".join(map(tokenizer.decode, pieces))
    assert "".join(c for c in said if c not in PUNCTUATION) == spoken.replace(" ", "")  # every word kept
    assert max(map(_longest_unspoken_run, pieces)) <= 16 and "    " not in said
    if text.startswith("Hello"):
        assert said == "həlˈoʊ wˈɜːld ."


@pytest.mark.parametrize("text", [
    "Wait... what?! He said “yes.” Then", "She whispered, “Oh...?!” and left.", "“Is it?”—“Yes!”—“Oh.”",
    "He said (“no” — or rather “never!”) ... then", "He paused... ... ... and went on.", "[1] (see ‘notes’)...",
    "(“Hi!”) he said, (loudly!) — then…", "What?!?! No way!!! Really???", "Wait, ... , what", "It (was) (so) odd.",
])
def test_ordinary_punctuation_keeps_upstream_tokens(text):
    """The bound never touches ordinary text: its tokens are upstream's (phonemes split as nltk
    does, symbols outside the table dropped), sentence by sentence."""
    from styletts2.text.pieces import text_to_token_pieces
    from styletts2.text.sentences import split_sentences
    from styletts2.text.tokenizer import Tokenizer

    tokenizer = Tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        upstream = [tokenizer.encode(phonemize(s), add_bos=False, add_eos=False) for s in split_sentences(text)]
        assert text_to_token_pieces(text, phonemize, tokenizer, 512) == upstream
