"""Text front-end: symbol table, tokenizer, nltk-compatible word splitting, espeak-ng phonemizer,
sentence and token-window splitting."""
import random
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from styletts2.text import phonemizer
from styletts2.text.espeak import espeak_version
from styletts2.text.phonemizer import EspeakPhonemizer, phonemize, split_words
from styletts2.text.sentences import split_sentences, split_token_windows
from styletts2.text.symbols import N_SYMBOLS, PAD_ID, SPACE_ID, SYMBOL_TO_ID, SYMBOLS
from styletts2.text.tokenizer import Tokenizer, UnknownSymbolError, UnknownSymbolWarning


# ---------------------------------------------------------------- symbol table

def test_symbol_table_layout():
    assert N_SYMBOLS == len(SYMBOLS) == 178
    assert SYMBOLS[0] == "$" and PAD_ID == 0
    assert "".join(SYMBOLS[1:17]) == ';:,.!?¡¿—…"«»“” ' and SPACE_ID == 16
    assert SYMBOLS[17] == "A" and SYMBOLS[42] == "Z" and SYMBOLS[43] == "a" and SYMBOLS[68] == "z"
    assert SYMBOLS[69] == "ɑ" and SYMBOLS[177] == "ᵻ"
    assert SYMBOL_TO_ID["ˈ"] == 156 and SYMBOL_TO_ID["ˌ"] == 157 and SYMBOL_TO_ID["ː"] == 158


def test_apostrophe_appears_twice_and_maps_to_the_later_id():
    assert SYMBOLS[174] == SYMBOLS[176] == "'"
    assert SYMBOLS[175] == "\u0329"  # combining vertical line below
    assert SYMBOL_TO_ID["'"] == 176
    assert len(SYMBOL_TO_ID) == 177
    assert all(SYMBOL_TO_ID[s] == i for i, s in enumerate(SYMBOLS) if i != 174)


# ---------------------------------------------------------------- tokenizer

def test_encode_framings():
    tok = Tokenizer()
    ids = [SYMBOL_TO_ID[c] for c in "hɪ ."]
    assert tok.encode("hɪ .", add_bos=False, add_eos=False) == ids
    assert tok.encode_for_training("hɪ .") == [0, *ids, 0]
    assert tok.encode("hɪ .", add_bos=True, add_eos=True) == [0, *ids, 0]
    assert tok.encode_for_inference("hɪ .") == [0, *ids]
    assert tok.encode("hɪ .", add_bos=True, add_eos=False) == [0, *ids]


def test_framing_must_be_chosen_explicitly():
    with pytest.raises(TypeError):
        Tokenizer().encode("hɪ")  # add_bos / add_eos are required keywords


def test_decode_round_trip_and_range():
    tok = Tokenizer()
    text = "ðə kˈæt , sˈæt ."
    assert tok.decode(tok.encode_for_training(text)) == text
    assert tok.decode([0, 16, 0], strip_pad=False) == "$ $"
    with pytest.raises(ValueError, match="178"):
        tok.decode([178])


def test_unknown_symbols_dropped_with_one_warning_naming_them():
    tok = Tokenizer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = tok.encode("(hɪ) 5", add_bos=False, add_eos=False)
    assert ids == [SYMBOL_TO_ID[c] for c in "hɪ "]
    assert len(caught) == 1 and caught[0].category is UnknownSymbolWarning
    message = str(caught[0].message)
    assert "'(' (U+0028 LEFT PARENTHESIS) x1" in message
    assert "')' (U+0029 RIGHT PARENTHESIS) x1" in message
    assert "'5' (U+0035 DIGIT FIVE) x1" in message
    assert tok.unknown_symbols("(a)(") == {"(": 2, ")": 1}


def test_strict_mode_raises_on_unknown_symbols():
    with pytest.raises(UnknownSymbolError, match=re.escape("U+0301 COMBINING ACUTE ACCENT")):
        Tokenizer(strict=True).encode("he\u0301", add_bos=True, add_eos=True)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises(text):
    with pytest.raises(ValueError, match="empty"):
        Tokenizer().encode(text, add_bos=True, add_eos=True)


def test_text_with_nothing_known_raises():
    with pytest.warns(UnknownSymbolWarning), pytest.raises(ValueError, match="no known symbol"):
        Tokenizer().encode("( )", add_bos=True, add_eos=True)


# ---------------------------------------------------------------- word splitting
# Expected outputs follow nltk 3.8's word_tokenize (punkt sentence split, then the destructive
# Treebank rules), with nltk's `` / '' quote tokens written back as '"'.

@pytest.mark.parametrize("phonemes, expected", [
    # comma, question mark; mid-text period ends a punkt sentence and is split off
    ("həlˈoʊ, wˈɜːld. hˈaʊ ɑːɹ juː? ", "həlˈoʊ , wˈɜːld . hˈaʊ ɑːɹ juː ?"),
    # ellipsis run, ?!, straight quotes, ; and :
    ('wˈeɪt... wˌʌt?! "kwˈoʊɾᵻd" tˈɛkst; jˈɛs: nˈoʊ. ',
     'wˈeɪt ... wˌʌt ? ! " kwˈoʊɾᵻd " tˈɛkst ; jˈɛs : nˈoʊ .'),
    # em dash, ellipsis character, inverted marks are not split by nltk
    ("dˈæʃ — hˈɪɹ… ænd ¡ˈoʊlæ! ¿kwˈɛ? ", "dˈæʃ — hˈɪɹ… ænd ¡ˈoʊlæ ! ¿kwˈɛ ?"),
    ("ɐ—b", "ɐ—b"),
    # curly and angle quotes
    ("ɪts “fˈaɪn” «ˌoʊkˈeɪ» ", "ɪts “ fˈaɪn ” « ˌoʊkˈeɪ »"),
    # periods inside words and before other punctuation stay attached
    ("ðə jˈuː.ˈɛs. ɡˈʌvɚnmənt, ɛtsˈɛtɹə., wɜː", "ðə jˈuː.ˈɛs . ɡˈʌvɚnmənt , ɛtsˈɛtɹə. , wɜː"),
    # a period before a curly closing quote in mid-text stays; at the end it is split
    ("hiː sˈɛd “həlˈoʊ.” ðˈɛn hiː lˈɛft. ", "hiː sˈɛd “ həlˈoʊ. ” ðˈɛn hiː lˈɛft ."),
    ("sˈɛd “nˈɛvɚ.”", "sˈɛd “ nˈɛvɚ . ”"),
    # ... but before an ASCII closing quote or bracket it ends the sentence
    ('hiː sˈɛd "həlˈoʊ." ðˈɛn', 'hiː sˈɛd " həlˈoʊ . " ðˈɛn'),
    ("ðɪs ɪz (ɐ pɚɹənθˈɛɾɪkəl.) nˈɛkst", "ðɪs ɪz ( ɐ pɚɹənθˈɛɾɪkəl . ) nˈɛkst"),
    # punkt's initials rule: one-letter word + period + lowercase word is not a sentence end
    ("ɐ. ðə", "ɐ. ðə"),
    ("ɐ. ˈɛnd", "ɐ . ˈɛnd"),
    ("ˈeɪ. bˈiː. sˈiː. ", "ˈeɪ . bˈiː . sˈiː ."),
    # nltk's comma rule consumes the next character: only the first of ',,' is split off
    ("x,,y", "x , ,y"),
    ("x:y z,", "x : y z ,"),
    # runs of spaces collapse
    ("dˈoʊnt  stˈɑːp   (nˈaʊ) ", "dˈoʊnt stˈɑːp ( nˈaʊ )"),
])
def test_split_words_matches_nltk(phonemes, expected):
    assert " ".join(split_words(phonemes)) == expected


def _period_ends_sentence_as_first_written(text, start):
    """The rule before it was made linear (it searched all the text before each period)."""
    rest = text[start + 1:]
    stripped = rest.lstrip(phonemizer._CLOSERS)
    closers = rest[: len(rest) - len(stripped)]
    if not stripped.strip():
        return True
    if not stripped[0].isspace():
        return False
    if closers:
        return set(closers) <= phonemizer._BOUNDARY_CLOSERS
    first = stripped.split(maxsplit=1)[0][0]
    return not (phonemizer._INITIAL.search(text[:start]) and (first.islower() or first in ";:,.!?"))


def test_periods_end_sentences_as_they_did_before_splitting_was_made_linear():
    rng = random.Random(0)
    parts = ["ɐ", "b", "B", "ðə", "1", " ", "  ", "\n", "\x1c", "\u00a0", ".", "..", ",", ";", "?", "(", ")", '"',
             "'", "”", "»", ":", "@", "*"]
    for _ in range(4000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 12)))
        for start in (m.start() for m in re.finditer(r"\.", text)):
            expected = _period_ends_sentence_as_first_written(text, start)
            assert phonemizer._period_ends_sentence(text, start) == expected, (text, start)


def test_split_words_time_grows_linearly_with_periods_that_end_no_sentence():
    """Initials ('ɐ. ðə') made splitting quadratic: 80,000 characters took 22 s. Sixteen times the
    text must take well under 16² times as long (best of a few runs: a busy machine does not decide)."""
    def best_time(text, runs):
        times = []
        for _ in range(runs):
            begin = time.perf_counter()
            words = split_words(text)
            times.append(time.perf_counter() - begin)
        return min(times), words

    short = "ɐ. ðə " * 1000
    (short_time, short_words), (long_time, long_words) = best_time(short, 5), best_time(short * 16, 3)
    assert long_words == short_words * 16 and short_words[:2] == ["ɐ.", "ðə"]
    assert long_time / short_time < 64, (short_time, long_time)


# ---------------------------------------------------------------- espeak-ng phonemizer

def test_espeak_version_is_reported():
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", espeak_version())


def test_phonemize_matches_upstream_training_lists():
    # Lines of upstream's LJSpeech training list (Data/train_list.txt: LJ048-0203, LJ003-0182).
    assert phonemize("The three officers confirm that their primary concern was crowd and traffic control,") == (
        "ðə θɹˈiː ˈɑːfɪsɚz kənfˈɜːm ðæt ðɛɹ pɹˈaɪmɚɹi kənsˈɜːn wʌz kɹˈaʊd ænd tɹˈæfɪk kəntɹˈoʊl ,")
    assert phonemize("The tried and the untried, young and old, were herded together") == (
        "ðə tɹˈaɪd ænd ðɪ ʌntɹˈaɪd , jˈʌŋ ænd ˈoʊld , wɜː hˈɜːdᵻd təɡˈɛðɚ")


def test_phonemize_output_is_all_in_the_table():
    phonemes = EspeakPhonemizer()("Hello there! Is this, perhaps, the end? “Yes”; it is.")
    assert phonemes == "həlˈoʊ ðˈɛɹ ! ɪz ðˈɪs , pɚhˈæps , ðɪ ˈɛnd ? “ jˈɛs ” ; ɪɾ ˈɪz ."
    Tokenizer(strict=True).encode_for_training(phonemes)


@pytest.mark.parametrize("text", ["", "  \n"])
def test_phonemize_rejects_empty_text(text):
    with pytest.raises(ValueError, match="empty"):
        phonemize(text)


def test_text_with_no_phoneme_is_named_by_a_preview():
    """The whole text was quoted (a corpus line of 20,000 underscores made a 20 KB error)."""
    from styletts2.text.phonemizer import NoPhonemesError

    with pytest.raises(NoPhonemesError) as caught:
        phonemize("_" * 20000)
    assert len(str(caught.value)) < 120 and "'" + "_" * 60 + "...'" in str(caught.value)


def test_words_read_in_another_language_leave_no_language_flags():
    """espeak-ng wraps them in "(hi) ... (en-us)"; the model would speak the flags' letters."""
    assert phonemize("Hello नमस्ते world.") == "həlˈoʊ nəmˈʌsteː wˈɜːld ."

# a word of scripts that English voices spell out letter by letter (or as code points), and of some they
# read as words in their own language
SPELLED_SAMPLES = {"Arabic": "مرحبا", "CJK": "你好", "Cyrillic": "Привет", "Hebrew": "שלום", "Hiragana": "こんにちは",
                   "Katakana": "カタカナ", "Thai": "สวัสดี", "Oriya": "ନମସ୍କାର", "Telugu": "నమస్కారం", "Ethiopic": "ሰላም",
                   "Lao": "ສະບາຍດີ", "Khmer": "សួស្តី", "Tibetan": "བཀྲ་ཤིས", "Myanmar": "မင်္ဂလာ"}
WORD_SAMPLES = ["नमस्ते", "ਸਤਿ ਸ੍ਰੀ", "નમસ્તે", "নমস্কার", "வணக்கம்", "ನಮಸ್ಕಾರ", "നമസ്കാരം", "ආයුබෝවන්", "안녕하세요",
                "Բարեւ", "გამარჯობა"]


def _pieces_warnings(text: str) -> list[str]:
    from styletts2.text.pieces import text_to_token_pieces
    from styletts2.text.scripts import ForeignScriptWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text_to_token_pieces(text, EspeakPhonemizer(), Tokenizer(), max_positions=512)
    return [str(w.message) for w in caught if issubclass(w.category, ForeignScriptWarning)]


@pytest.mark.parametrize("script", sorted(SPELLED_SAMPLES))
def test_scripts_that_english_spells_out_warn_and_are_spelled(script):
    from styletts2.text.scripts import foreign_scripts

    word = SPELLED_SAMPLES[script]
    assert set(foreign_scripts(word)) == {script}
    [message] = _pieces_warnings(f"Hello {word} world.")
    assert f"({script} x" in message
    # spelled out: several phonemes a letter, where a word read as one has about two
    letters = sum(c.isalpha() for c in word)
    assert len(phonemize(f"Hello {word} world.")) - len(phonemize("Hello world.")) >= 4 * letters


@pytest.mark.parametrize("word", WORD_SAMPLES)
def test_scripts_that_english_reads_as_words_pass_silently(word):
    from styletts2.text.scripts import foreign_scripts

    assert not foreign_scripts(word) and not _pieces_warnings(f"Hello {word} world.")
    letters = sum(c.isalpha() for c in word)
    assert len(phonemize(f"Hello {word} world.")) - len(phonemize("Hello world.")) < 3.5 * letters


@pytest.mark.parametrize("text", ["Café déjà vu, naïve Straße.", "3 µm, 1ª, the ﬁrst ℓ.", "The area is π r squared.",
                                  "A 10 Ω resistor.", "ΔT is small, the α channel.", "Rock ʼn roll."])
def test_latin_text_and_greek_symbols_pass_silently(text):
    from styletts2.text.scripts import foreign_scripts

    assert not foreign_scripts(text) and not _pieces_warnings(text)


def test_half_width_kana_and_the_long_vowel_mark_are_kana():
    from styletts2.text.scripts import foreign_scripts

    assert foreign_scripts("ｶﾀｶﾅ") == {"Katakana": 4} and foreign_scripts("ー") == {"Katakana": 1}


def test_a_text_warns_once_not_once_a_sentence():
    [message] = _pieces_warnings("Привет мир. Как дела? Всё хорошо. Спасибо.")
    assert "Cyrillic x" in message


def test_other_languages_are_not_checked():
    from styletts2.text.scripts import warn_foreign_scripts

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_foreign_scripts("Привет", "ru")
        warn_foreign_scripts("Привет", None)


def test_phonemize_from_threads_gives_each_thread_its_own_words():
    """espeak-ng keeps one voice and one buffer per process: without the lock, threads phonemizing
    at once got each other's words or phonemizer's line-count error."""
    texts = [f"Sentence number {word} is spoken by thread {word}." for word in ("one", "two", "three", "four")]
    expected = [phonemize(text) for text in texts]

    def worker(index: int) -> list[str]:
        return [phonemize(texts[index]) for _ in range(40)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(worker, range(4)))
    for index, got in enumerate(results):
        assert got == [expected[index]] * 40


# ---------------------------------------------------------------- sentences and windows

def test_split_sentences():
    text = 'Hello there. How are you?  I am fine; thanks: really!He said "hi." Pay 3.50 now'
    assert split_sentences(text) == [
        "Hello there.", "How are you?", "I am fine;", "thanks:", 'really!He said "hi."', "Pay 3.50 now"]


def test_split_sentences_never_returns_empty_or_unspeakable_pieces():
    assert split_sentences("... Hello. ! World.") == ["... Hello. !", "World."]
    assert split_sentences("One.") == ["One."]
    with pytest.raises(ValueError):
        split_sentences("  ")


def test_split_token_windows_cuts_at_spaces_without_loss():
    tok = Tokenizer()
    words = ["ðə", "kwˈɪk", "bɹˈaʊn", "fˈɑːks", "dʒˈʌmps"] * 40
    ids = tok.encode(" ".join(words), add_bos=False, add_eos=False)
    windows = split_token_windows(ids, max_len=64, n_special=2)
    assert all(0 < len(w) <= 62 for w in windows) and len(windows) > 1
    joined = windows[0]
    for w in windows[1:]:
        joined = joined + [SPACE_ID] + w
    assert joined == ids
    assert all(w[0] != SPACE_ID and w[-1] != SPACE_ID for w in windows)  # no word is cut


def test_split_token_windows_short_and_oversized_words():
    assert split_token_windows([5, 16, 6], max_len=512) == [[5, 16, 6]]
    assert split_token_windows([7] * 10, max_len=6, n_special=2) == [[7] * 4, [7] * 4, [7] * 2]
    with pytest.raises(ValueError):
        split_token_windows([], max_len=512)


def test_text_and_wav_io_import_without_torch():
    # The onnxruntime runtime uses these modules where torch is absent.
    import subprocess
    import sys

    code = ("import sys, styletts2.text.tokenizer, styletts2.text.phonemizer, styletts2.text.sentences, "
            "styletts2.audio.io; assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

