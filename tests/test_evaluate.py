"""The offline evaluator: edit distance, the espeak-ng -> recogniser mapping, the recogniser on
espeak-ng speech, DNSMOS, speaker similarity, reference distances, and the command line."""
import json
import subprocess
import sys

import numpy as np
import pytest

from styletts2.audio.io import save_wav
from styletts2.evaluate import (ClipScores, EvalItem, Evaluator, InputError, ScoreWarning, edit_distance,
                                phoneme_error_rate, summarize)
from styletts2.evaluate.inputs import synthesize_items
from styletts2.evaluate.__main__ import main
from styletts2.evaluate.phonemes import (ESPEAK_TO_RECOGNISER, FOLD, UnknownPhonemeError, espeak_to_recogniser,
                                         recogniser_inventory)
from styletts2.evaluate.reference import dtw_path, mel_cepstral_distortion, trimmed_duration

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")

# Harvard sentences on which the recogniser's PER against espeak-ng en-us audio is near its floor
# (0.22 with the mapping; 0.40 with stress/length stripped but no mapping table)
TEXTS = ["Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
         "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage."]


@pytest.fixture(scope="module")
def speech():
    """{(voice, text): (wave, sr)} from a private espeak-ng instance (its output depends on the
    calls before, so a fresh one keeps the audio fixed)."""
    from styletts2.data.espeak_synth import EspeakSynthesizer

    espeak = EspeakSynthesizer()
    return {(voice, text): espeak.synthesize(text, voice) for voice in ("en-us", "en-gb+f3") for text in TEXTS}


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator(threads=1)


# Edit distance and PER --------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, distance", [
    ("", "", 0), ("abc", "", 3), ("", "ab", 2), ("abc", "abc", 0), ("kitten", "sitting", 3),
    ("flaw", "lawn", 2), ("abc", "acb", 2), (["t͡ʃ", "i", "z"], ["t͡ʃ", "iz"], 2),
])
def test_edit_distance(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_phoneme_error_rate():
    assert phoneme_error_rate(["a", "b", "c", "d"], ["a", "x", "c"]) == 0.5
    assert phoneme_error_rate(["a"], []) == 1.0
    assert phoneme_error_rate(["a"], ["b", "c", "d"]) == 3.0  # insertions can take it past 1
    with pytest.raises(ValueError, match="empty reference"):
        phoneme_error_rate([], ["a"])


# The espeak-ng -> recogniser mapping ------------------------------------------------------------

def test_mapping_targets_are_recogniser_symbols():
    inventory = recogniser_inventory()
    for unit, tokens in ESPEAK_TO_RECOGNISER.items():
        assert tokens and all(t in inventory for t in tokens), unit
    assert all(target in inventory for target in FOLD.values())


def test_espeak_to_recogniser():
    # phonemizer output: stress, length, word spaces and punctuation go; affricates are tied,
    # diphthongs are one token, ɚ/ɜː are ɝ, ɡ is g, the flap is t, a syllabic n is schwa + n
    assert espeak_to_recogniser("ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ .") == [
        "ð", "ə", "k", "w", "ɪ", "k", "b", "ɹ", "aʊ", "n", "f", "ɑ", "k", "s", "d͡ʒ", "ʌ", "m", "p", "s",
        "oʊ", "v", "ɝ", "ð", "ə", "l", "eɪ", "z", "i", "d", "ɑ", "g"]
    assert espeak_to_recogniser("tʃˈɜːtʃ , bˈʌʔn̩ wˈɔːɾɚ ɐbˈaʊt bᵻfˌɔːɹ bˈɔɪ") == [
        "t͡ʃ", "ɝ", "t͡ʃ", "b", "ʌ", "t", "ə", "n", "w", "ɔ", "t", "ɝ", "ə", "b", "aʊ", "t",
        "b", "ɪ", "f", "ɔ", "ɹ", "b", "ɔɪ"]
    with pytest.raises(UnknownPhonemeError, match="U\\+0298"):
        espeak_to_recogniser("ʘa")  # a click: no mapping, reported rather than dropped
    with pytest.raises(UnknownPhonemeError):
        espeak_to_recogniser("ə\u0303")  # a lone combining tilde would become a token of its own


# The recogniser on espeak-ng speech -------------------------------------------------------------

def test_per_separates_speech_from_reversed_and_noise(speech, evaluator):
    rng = np.random.default_rng(0)
    items, reversed_items, noise_items = [], [], []
    for i, text in enumerate(TEXTS):
        wave, sr = speech["en-us", text]
        items.append(EvalItem(f"s{i}", wave, sr, text))
        reversed_items.append(EvalItem(f"r{i}", wave[::-1].copy(), sr, text))
        noise_items.append(EvalItem(f"n{i}", (0.1 * rng.standard_normal(len(wave))).astype(np.float32), sr, text))
    ev = Evaluator(("per",))
    per = lambda its: summarize(ev.score(its))["per"]  # noqa: E731
    clean, backwards, noise = per(items), per(reversed_items), per(noise_items)
    assert clean < 0.32, clean           # the recogniser's floor on espeak-ng is ~0.25
    assert backwards > 0.7, backwards
    assert noise > 0.9, noise
    assert ev.transcribe(np.zeros(16000, np.float32), 16000) == []


# Reference distances ----------------------------------------------------------------------------

def test_dtw_path_is_optimal():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((25, 4))
    i, j = dtw_path(x, y)
    cost = np.linalg.norm(x[:, None] - y[None], axis=-1)
    best = np.full((31, 26), np.inf)
    best[0, 0] = 0
    for a in range(1, 31):
        for b in range(1, 26):
            best[a, b] = cost[a - 1, b - 1] + min(best[a - 1, b - 1], best[a - 1, b], best[a, b - 1])
    assert (i[0], j[0], i[-1], j[-1]) == (0, 0, 29, 24)
    assert np.all(np.diff(i) >= 0) and np.all(np.diff(j) >= 0) and np.all(np.diff(i) + np.diff(j) >= 1)
    assert cost[i, j].sum() == pytest.approx(best[-1, -1])


def test_mcd_and_duration_ratio(speech):
    wave, sr = speech["en-us", TEXTS[0]]
    other, _ = speech["en-us", TEXTS[1]]
    other_voice, _ = speech["en-gb+f3", TEXTS[0]]
    assert mel_cepstral_distortion(wave, sr, wave, sr) < 1e-6
    padded = np.concatenate([np.zeros(sr // 2, np.float32), 0.5 * wave, np.zeros(sr, np.float32)])
    assert mel_cepstral_distortion(padded, sr, wave, sr) < 0.5  # trimmed, and the gain is c0's
    assert mel_cepstral_distortion(other_voice, sr, wave, sr) > 3.0
    assert mel_cepstral_distortion(other, sr, wave, sr) > 3.0
    assert trimmed_duration(padded, sr) / trimmed_duration(wave, sr) == pytest.approx(1.0, abs=0.03)
    assert len(padded) / len(wave) > 1.5


# All metrics through the API --------------------------------------------------------------------

def test_evaluator_all_metrics(speech, evaluator):
    text = TEXTS[2]
    wave, sr = speech["en-us", text]
    reference, reference_rate = speech["en-gb+f3", text]
    noise = (0.1 * np.random.default_rng(2).standard_normal(len(wave))).astype(np.float32)
    items = [EvalItem("same", wave, sr, text, wave, sr), EvalItem("other", reference, reference_rate, text, wave, sr),
             EvalItem("noise", noise, sr, text, wave, sr), EvalItem("no_reference", wave, sr, text)]
    same, other, noisy, alone = scores = evaluator.score(items)
    assert all(isinstance(s, ClipScores) for s in scores)
    assert same.per == 0 and same.per_against == "reference" and alone.per_against == "text"
    assert same.mcd < 1e-6 and same.f0_cents == 0 and same.duration_ratio == 1 and same.similarity > 0.99
    assert other.f0_cents > 900  # the f3 variant speaks about an octave higher
    assert noisy.per == 1 and noisy.similarity < other.similarity < 0.9
    assert same.dnsmos_ovrl > noisy.dnsmos_ovrl + 0.8 and same.dnsmos_bak > noisy.dnsmos_bak + 1
    assert alone.similarity is None and alone.mcd is None and alone.dnsmos_ovrl == same.dnsmos_ovrl
    assert alone.duration_s == pytest.approx(len(wave) / sr)
    row = same.as_dict()
    assert {"name", "per", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "similarity", "mcd", "f0_cents",
            "duration_ratio", "duration_s"} <= set(row)
    mean = summarize(scores)
    assert mean["clips"] == 4 and mean["mcd_n"] == 3
    assert mean["mcd"] == pytest.approx(np.mean([same.mcd, other.mcd, noisy.mcd]))


def test_unscorable_clips_are_reported_not_fatal(speech):
    wave, sr = speech["en-us", TEXTS[0]]
    ev = Evaluator(("per", "reference"))
    nan = np.full(sr, np.nan, np.float32)
    silent = np.zeros(sr, np.float32)
    with pytest.warns(ScoreWarning) as caught:
        diverged, quiet = ev.score([EvalItem("nan", nan, sr, TEXTS[0]), EvalItem("quiet", silent, sr, TEXTS[0], wave, sr)])
    assert diverged.per is None and "NaN" in diverged.notes[0] and diverged.duration_s == 1.0
    assert quiet.per == 1.0 and quiet.mcd is None and "reference: the clip holds no sound" in quiet.notes[0]
    assert len(caught) == 2
    with pytest.raises(ValueError, match="NaN"):
        EvalItem("bad_reference", wave, sr, TEXTS[0], nan, sr)  # reference audio must be real audio


def test_synthesize_items_pairs_texts_references_and_saved_wavs(folder):
    texts = []

    def fake_synthesize(text):
        texts.append(text)
        return np.full(2400 * len(texts), 0.1, np.float32)

    items = synthesize_items(folder / "list.txt", fake_synthesize, 24000, folder / "refs", folder / "out")
    assert texts == TEXTS[:2] and [i.name for i in items] == ["clip0", "clip1"]
    assert items[1].sample_rate == 24000 and len(items[1].wave) == 4800
    assert items[0].reference_rate == speech_rate(folder / "refs" / "clip0.wav") and items[0].reference.size > 0
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["clip0.wav", "clip1.wav"]
    with pytest.raises(InputError, match="reference folder not found"):
        synthesize_items(folder / "list.txt", fake_synthesize, 24000, folder / "nowhere")


def speech_rate(path):
    import soundfile

    return soundfile.info(str(path)).samplerate


def test_evaluator_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric"):
        Evaluator(("per", "wer"))


# Command line -----------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, speech):
    """wavs/ and refs/ with two clips each, and their text list."""
    for i, text in enumerate(TEXTS[:2]):
        save_wav(tmp_path / "wavs" / f"clip{i}.wav", speech["en-us", text][0], speech["en-us", text][1])
        save_wav(tmp_path / "refs" / f"clip{i}.wav", *speech["en-gb+f3", text])
    (tmp_path / "list.txt").write_text("".join(f"clip{i}|{t}\n" for i, t in enumerate(TEXTS[:2])), encoding="utf-8")
    return tmp_path


def test_cli_folder_writes_json(folder, capsys):
    out = folder / "scores.json"
    rc = main(["--texts", str(folder / "list.txt"), "--wavs", str(folder / "wavs"), "--references",
               str(folder / "refs"), "--metrics", "per,reference", "--no-f0", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "clip0" in printed and "mean" in printed and "MCD dB" in printed
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [c["name"] for c in result["clips"]] == ["clip0", "clip1"]
    assert all(c["per_against"] == "reference" and c["mcd"] > 0 for c in result["clips"])
    assert result["mean"]["clips"] == 2 and result["mean"]["per"] is not None
    assert result["metrics"] == ["per", "reference"] and result["versions"]["hama"] == "1.7.0"


def test_cli_text_list_mismatch(folder, capsys):
    (folder / "list.txt").write_text(f"clip0|{TEXTS[0]}\nclip9|Not there.\n", encoding="utf-8")
    rc = main(["--texts", str(folder / "list.txt"), "--wavs", str(folder / "wavs"), "--metrics", "per"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("python -m styletts2.evaluate: error:") and "list.txt:2" in err and "clip9" in err
    assert "\n" not in err
    (folder / "list.txt").write_text("clip0 has no separator\n", encoding="utf-8")
    assert main(["--texts", str(folder / "list.txt"), "--wavs", str(folder / "wavs"), "--metrics", "per"]) == 2
    assert "list.txt:1" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--json", "{folder}"], "--json {folder} is a folder"),
    (["--save-wavs", "{folder}/list.txt"], "--save-wavs writes synthesized clips"),
    (["--metrics", ","], "--metrics names no metric"),
])
def test_cli_refuses_outputs_it_cannot_write_before_scoring(folder, capsys, extra, message):
    """A --json folder was found only after every clip was scored (a traceback and a stray temporary)."""
    extra = [arg.format(folder=folder) for arg in extra]
    assert main(["--texts", str(folder / "list.txt"), "--wavs", str(folder / "wavs"), *extra]) == 2
    captured = capsys.readouterr()
    assert message.format(folder=folder) in captured.err and "\n" not in captured.err.strip()
    assert captured.out == "" and not list(folder.glob("*.tmp"))


def test_a_save_wavs_path_that_is_a_file_is_refused(folder, capsys):
    assert main(["--texts", str(folder / "list.txt"), "--model", str(folder), "--save-wavs",
                 str(folder / "list.txt")]) == 2
    assert "--save-wavs " + str(folder / "list.txt") + " is a file" in capsys.readouterr().err


def test_json_that_cannot_be_written_leaves_no_temporary(tmp_path):
    from styletts2.evaluate.report import write_json

    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_json(tmp_path / "taken", [], ("per",), {})
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]


def test_json_gets_the_umasks_mode(tmp_path):
    import os

    from styletts2.evaluate.report import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "scores.json", [], ("per",), {})
    finally:
        os.umask(old)
    assert (tmp_path / "scores.json").stat().st_mode & 0o777 == 0o644  # not NamedTemporaryFile's 0600


def test_cli_missing_folder_is_one_line(tmp_path):
    (tmp_path / "list.txt").write_text("a|Hello.\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "styletts2.evaluate", "--texts", str(tmp_path / "list.txt"),
                          "--wavs", str(tmp_path / "nowhere"), "--metrics", "per"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == f"python -m styletts2.evaluate: error: wav folder not found: {tmp_path / 'nowhere'}"
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_runtime_synthesizer_reads_an_exported_folder(tmp_path):
    """`--model DIR`: the texts are synthesized by the onnxruntime runtime from the exported folder."""
    from test_runtime import make_fake_model_dir
    from styletts2.evaluate.inputs import runtime_synthesizer

    synthesize, rate = runtime_synthesizer(make_fake_model_dir(tmp_path / "m"), threads=1)
    wave = synthesize("Hello there.")
    assert rate == 24000 and wave.ndim == 1 and len(wave) > 0 and np.isfinite(wave).all()
    with pytest.raises(InputError, match="model.json"):
        runtime_synthesizer(tmp_path, threads=1)  # a folder that is no export


def test_a_clip_without_text_is_scored_against_its_reference_alone(speech, evaluator):
    wave, sr = speech["en-us", TEXTS[0]]
    scores = Evaluator(("per",)).score_item(EvalItem("same", wave, sr, "", reference=wave, reference_rate=sr))
    assert scores.per == 0 and scores.per_against == "reference" and scores.per_text is None
    with pytest.warns(ScoreWarning, match="nothing to score against"):
        silent = Evaluator(("per",)).score_item(EvalItem("none", wave, sr, "", reference=np.zeros(sr, np.float32),
                                                         reference_rate=sr))
    assert silent.per is None and "nothing to score against" in silent.notes[0]
