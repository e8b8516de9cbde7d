"""Text normalization (styletts2/text/normalize): the English table (tests/data/normalize_en.tsv),
what espeak-ng makes of it, the decimal-point fix, sentence splitting around abbreviations, the
language registry, and how the normalizer is recorded (model.json, phoneme cache, gin)."""
import json
import logging
import re
import subprocess
import sys
import warnings

import gin
import pytest

from conftest import REPO
from styletts2.data.readers import (Record, cache_path, corpus_normalizer, phonemize_records, phonemize_texts)
from styletts2.text.espeak import espeak_backend
from styletts2.text.normalize import (NormalizerError, NormalizerVersionWarning, TextNormalizer,
                                      UnspeakableCharacterWarning, languages, normalize)
from styletts2.text.normalize.__main__ import main as normalize_main
from styletts2.text.phonemizer import phonemize
from styletts2.text.pieces import text_to_token_pieces
from styletts2.text.sentences import split_sentences
from styletts2.text.tokenizer import Tokenizer

TABLE = REPO / "tests" / "data" / "normalize_en.tsv"
_ESCAPES = re.compile(r"\\(n|t|x[0-9a-fA-F]{2})")


def _unescape(text: str) -> str:
    """The table's escapes (\\n, \\t, \\x1b) in inputs."""
    return _ESCAPES.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


def _rows() -> list[tuple[int, str, str]]:
    """(line, input, expected) of the table; lines without a tab are comments."""
    rows = []
    for number, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines(), start=1):
        if "\t" in line:
            written, spoken = line.split("\t")
            rows.append((number, _unescape(written), spoken))
    return rows


ROWS = _rows()


# The table -------------------------------------------------------------------------------------------

def test_the_table_has_at_least_150_cases():
    assert len(ROWS) >= 150


@pytest.mark.parametrize("line,written,spoken", ROWS, ids=[f"line{n}" for n, _, _ in ROWS])
def test_table(line, written, spoken):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnspeakableCharacterWarning)  # the emoji rows; tested below
        assert normalize(written) == spoken, f"{TABLE.name}:{line}"


def test_phonemes_of_the_table_hold_no_digits_or_symbols():
    """What espeak-ng gets is words: no digit or symbol survives into the phonemes."""
    leftovers = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnspeakableCharacterWarning)
        for line, written, _ in ROWS:
            phonemes = phonemize(normalize(written))
            if re.search(r"[0-9$%&+=@#/:]", phonemes):
                leftovers[f"line {line}"] = phonemes
    assert not leftovers


def test_normalized_text_normalizes_to_itself():
    """LJSpeech's normalized column and text normalized twice come out as they went in."""
    changed = [spoken for _, _, spoken in ROWS if normalize(spoken) != spoken]
    assert not changed


# Decimal points and sentences -------------------------------------------------------------------------

def test_no_word_is_lost_after_a_decimal_point_without_normalization():
    phonemes = phonemize("It costs 3.5 dollars today.")
    assert phonemize("dollars today.") in phonemes
    tokenizer = Tokenizer()
    pieces = text_to_token_pieces("It costs 3.5 dollars today.", phonemize, tokenizer, 512, normalize=None)
    assert tokenizer.decode(pieces[0]).endswith(phonemize("dollars today."))


def test_span_punctuation_cuts_like_phonemizer_where_it_was_right():
    """Away from decimal points the fixed punctuation handling gives what phonemizer's did."""
    from phonemizer.punctuation import Punctuation

    texts = ["Hello, world! How are you?", "“Yes,” she said... (really).", "A; b: c. D!", "...", "No marks",
             ". Hello", "Hello .", "Mixed: one, two; three... four!"]
    fixed = espeak_backend()._punctuator
    original = Punctuation(Punctuation.default_marks())
    assert type(fixed).__name__ == "SpanPunctuation"
    for text in texts:
        ours, theirs = fixed.preserve(text), original.preserve(text)
        assert ours[0] == theirs[0] and [tuple(m) for m in ours[1]] == [tuple(m) for m in theirs[1]], text


def test_abbreviations_do_not_end_sentences():
    text = "Dr. Smith met Mr. Jones, Prof. Lee etc. in the U.S. last year. J. R. R. Tolkien did not. Then he left."
    assert split_sentences(text) == ["Dr. Smith met Mr. Jones, Prof. Lee etc. in the U.S. last year.",
                                     "J. R. R. Tolkien did not.", "Then he left."]
    normalized = normalize(text)
    assert "Doctor Smith met Mister Jones" in normalized and len(split_sentences(normalized)) == 3
    pieces = text_to_token_pieces(text, phonemize, Tokenizer(), 512, normalize=TextNormalizer())
    assert len(pieces) == 3


# Languages and settings -------------------------------------------------------------------------------

def test_the_normalizer_is_chosen_by_language():
    assert languages()["en"] == "english"
    assert TextNormalizer("en-gb").name == "english" and TextNormalizer("de").name == "passthrough"
    assert normalize("On 1/2/2023 we paid 105 pounds.", "en-gb") == \
        "On the first of February twenty twenty-three we paid one hundred and five pounds."
    # the pass-through: words and digits as written (espeak-ng reads them), markup and emoji out
    with pytest.warns(UnspeakableCharacterWarning):
        assert normalize("Es kostet <b>5 €</b> 😀 Dr. Müller.", "de") == "Es kostet 5 € Dr. Müller."


def test_settings_are_checked_and_used():
    assert normalize("Open the IDE.", acronyms=False) == "Open the IDE."
    assert normalize("<b>Hi</b>", markup=False) != "Hi"
    with pytest.raises(NormalizerError, match="no setting"):
        TextNormalizer("en-us", spelling=True)
    with pytest.raises(NormalizerError, match="must be bool"):
        TextNormalizer("en-us", acronyms="yes")
    with pytest.raises(NormalizerError, match="unknown text normalizer"):
        TextNormalizer("en-us", name="klingon")


def test_emoji_are_dropped_with_a_warning_naming_them():
    with pytest.warns(UnspeakableCharacterWarning, match="GRINNING FACE") as caught:
        assert normalize("Hello 😀 world \x07!") == "Hello world!"
    assert "U+1F600" in str(caught[0].message) and "U+0007" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert normalize("Plain café text, 5 °C.") == "Plain café text, five degrees Celsius."


def test_text_normalized_to_nothing_is_named_by_a_preview():
    """20,000 emoji made an 80 KB error line when it quoted the whole text."""
    with pytest.warns(UnspeakableCharacterWarning), pytest.raises(ValueError, match="nothing to say") as caught:
        text_to_token_pieces("😀" * 20000, phonemize, Tokenizer(), 512, normalize=TextNormalizer())
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200 and "😀" * 10 in message


# What records the normalizer ---------------------------------------------------------------------------

def test_model_json_entry_round_trip(caplog):
    from styletts2.export.model_card import text_normalizer_entry
    from styletts2.runtime.model_dir import ModelDirError, read_text_normalizer

    entry = json.loads(json.dumps(text_normalizer_entry()))
    assert entry == {"name": "english", "version": TextNormalizer().version, "language": "en-us",
                     "settings": {"acronyms": True, "markup": True}}
    assert TextNormalizer.from_description(read_text_normalizer({"text_normalizer": entry}, "m")) == TextNormalizer()

    gin.parse_config("corpus_normalizer.settings = {'acronyms': False}")
    entry = json.loads(json.dumps(text_normalizer_entry()))
    assert TextNormalizer.from_description(read_text_normalizer({"text_normalizer": entry}, "m")) == \
        TextNormalizer("en-us", acronyms=False)
    gin.parse_config("corpus_normalizer.enabled = False")
    assert text_normalizer_entry() is None and read_text_normalizer({"text_normalizer": None}, "m") is None

    with caplog.at_level(logging.WARNING):  # an export from before the entry: the default, with a note
        assert read_text_normalizer({"phonemizer": {"language": "en-us"}}, "old") == TextNormalizer().describe()
    assert "records no text_normalizer" in caplog.text
    with pytest.raises(ModelDirError, match="text_normalizer"):
        read_text_normalizer({"text_normalizer": {**TextNormalizer().describe(), "name": "klingon"}}, "m")
    with pytest.warns(NormalizerVersionWarning, match="version 0"):
        TextNormalizer.from_description({**TextNormalizer().describe(), "version": "0"})


class FakePhonemizer:
    language, version = "en-us", "1.52.0"

    def __init__(self):
        self.calls = []

    def __call__(self, text):
        self.calls.append(text)
        return text.lower()


def test_phoneme_cache_key_carries_the_normalizer(tmp_path):
    records = [Record(source=tmp_path / "metadata.csv", line=1, wav=tmp_path / "a.wav", text="Dr. Who at 10:45.",
                      phonemes=None, speaker=0)]
    phonemizer = FakePhonemizer()
    out = phonemize_records(records, phonemizer)  # the gin-configured default: on
    assert phonemizer.calls == ["Doctor Who at ten forty-five."] and out[0].phonemes == "doctor who at ten forty-five."
    default_key = corpus_normalizer().key
    cached = json.loads(cache_path(tmp_path, "en-us", "1.52.0", default_key).read_text("utf-8"))
    assert cached["text_normalizer"] == TextNormalizer().describe()

    other = TextNormalizer("en-us", acronyms=False)
    assert other.key != default_key
    phonemize_texts(["Dr. Who at 10:45."], phonemizer, tmp_path, other)
    phonemize_texts(["Dr. Who at 10:45."], phonemizer, tmp_path, None)
    assert phonemizer.calls[1:] == ["Doctor Who at ten forty-five.", "Dr. Who at 10:45."]
    assert cache_path(tmp_path, "en-us", "1.52.0", other.key).exists()
    assert cache_path(tmp_path, "en-us", "1.52.0").exists()  # no normalizer: the name it always had

    gin.parse_config("corpus_normalizer.settings = {'acronyms': False}")
    assert corpus_normalizer().key == other.key  # a gin binding is a new cache


def test_records_with_phonemes_are_not_normalized(tmp_path):
    listed = Record(source=tmp_path / "list.txt", line=1, wav=tmp_path / "a.wav", text=None,
                    phonemes="ðə 1 kˈæt", speaker=0)
    assert phonemize_records([listed], FakePhonemizer()) == [listed]


# Synthesizers and command lines ------------------------------------------------------------------------

def test_runtime_normalizes_unless_told_not_to(tmp_path):
    from styletts2.runtime import Synthesizer
    from test_runtime import make_fake_model_dir

    directory = make_fake_model_dir(tmp_path / "model")
    info = json.loads((directory / "model.json").read_text("utf-8"))
    info["text_normalizer"] = TextNormalizer("en-us", acronyms=False).describe()
    (directory / "model.json").write_text(json.dumps(info), "utf-8")
    text = "Dr. Smith paid $5 for the IDE."
    synth = Synthesizer(directory, providers="cpu")
    assert synth.normalizer == TextNormalizer("en-us", acronyms=False)
    spoken = "Doctor Smith paid five dollars for the IDE."
    expected = Tokenizer().encode(phonemize(spoken), add_bos=False, add_eos=False)
    assert synth.text_to_token_pieces(text) == [expected]
    raw = Synthesizer(directory, providers="cpu", normalize=False)
    assert raw.normalizer is None and raw.text_to_token_pieces(text) != [expected]
    info["text_normalizer"] = None  # a model trained on text as written
    (directory / "model.json").write_text(json.dumps(info), "utf-8")
    assert Synthesizer(directory, providers="cpu").normalizer is None


def test_torch_synthesizer_uses_the_configured_normalizer():
    from conftest import build_tiny
    from styletts2.inference import TorchSynthesizer

    model = build_tiny()
    assert TorchSynthesizer(model, device="cpu").normalizer == TextNormalizer("en-us")
    assert TorchSynthesizer(model, device="cpu", normalize=False).normalizer is None
    gin.parse_config("corpus_normalizer.enabled = False")  # as a checkpoint trained without it says
    assert TorchSynthesizer(model, device="cpu").normalizer is None


def test_command_lines(capsys):
    assert normalize_main(["Dr. Smith paid $5.30 at 10:45 p.m."]) == 0
    assert capsys.readouterr().out.strip() == "Doctor Smith paid five dollars and thirty cents at ten forty-five P-M."
    assert normalize_main(["--bench", "--chars", "2000", "--repeats", "2"]) == 0
    assert "median" in capsys.readouterr().out
    from styletts2.runtime.__main__ import main as runtime_main
    from styletts2.synthesize import main as synthesize_main

    for main in (runtime_main, synthesize_main):
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "--no-normalize" in capsys.readouterr().out


def test_the_normalizer_imports_no_torch():
    code = "import sys, styletts2.text.normalize as n; n.normalize('5 km'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
