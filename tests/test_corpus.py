"""espeak-ng synthesis and the tiny corpus generator (styletts2.data.espeak_synth / make_corpus)."""
import filecmp

import numpy as np
import pytest
import soundfile as sf

from styletts2.audio.mel import n_mel_frames
from styletts2.data import make_corpus as mc
from styletts2.data.espeak_synth import EspeakSynthesizer, Voice, espeak_version
from styletts2.data.readers import read_list, read_ljspeech, read_ood_texts
from styletts2.text.espeak import espeak_version as phonemizer_espeak_version
from styletts2.text.phonemizer import phonemize
from styletts2.text.tokenizer import Tokenizer

N_CLIPS = 8
VOICES = ["en-us", "en-gb+f3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return mc.make_corpus(tmp_path_factory.mktemp("corpus") / "out", n=N_CLIPS, voices=VOICES, seed=3)


def test_synthesizer_output():
    synth = EspeakSynthesizer()
    wave, rate = synth.synthesize("Hello there, general reader.", "en-us")
    assert rate == synth.sample_rate == 22050
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.5 * rate < len(wave) < 5 * rate
    assert 0.05 < np.abs(wave).max() <= 1.0


def test_synthesizer_replays_identically_and_parameters_matter():
    text = "The quick brown fox jumps over the lazy dog."
    calls = [("en-us", 175, 50), ("en-gb+f3", 150, 70)]
    first = [EspeakSynthesizer().synthesize(text, v, rate=r, pitch=p)[0] for v, r, p in calls[:1]]
    runs = []
    for _ in range(2):
        synth = EspeakSynthesizer()  # a fresh instance replays the same call sequence exactly
        runs.append([synth.synthesize(text, v, rate=r, pitch=p)[0] for v, r, p in calls])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert np.array_equal(first[0], runs[0][0])
    slow = EspeakSynthesizer().synthesize(text, "en-us", rate=100)[0]
    assert len(slow) > 1.4 * len(runs[0][0])  # 100 vs 175 words per minute


@pytest.mark.parametrize("voice", ["en-zz", "xx", "en-us+nosuchvariant"])
def test_unknown_voice_is_refused(voice):
    with pytest.raises(ValueError, match="no voice"):
        EspeakSynthesizer().synthesize("Hello.", voice)


def test_bad_parameters_are_refused():
    synth = EspeakSynthesizer()
    with pytest.raises(ValueError, match="rate"):
        synth.synthesize("Hello.", rate=20)
    with pytest.raises(ValueError, match="pitch"):
        synth.synthesize("Hello.", pitch=150)
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("  ")


def test_voice_spec_parsing():
    assert Voice.parse("en-GB+f3") == Voice("en-gb", "f3")
    assert Voice.parse("en-us") == Voice("en-us", None)
    assert str(Voice("en-gb", "m2")) == "en-gb+m2"


def test_synthesis_and_phonemizer_coexist():
    # phonemizer loads its own copy of the same library; both must keep working, in either order
    before = phonemize("Hello world.")
    synth = EspeakSynthesizer()
    wave, _ = synth.synthesize("Hello world.", "en-gb+m3", rate=120, pitch=20)
    assert phonemize("Hello world.") == before
    assert np.array_equal(EspeakSynthesizer().synthesize("Hello world.", "en-gb+m3", rate=120, pitch=20)[0], wave)
    assert espeak_version() == phonemizer_espeak_version()


def test_corpus_layout(corpus):
    records = read_ljspeech(corpus / "metadata.csv")
    assert len(records) == N_CLIPS
    ids = [r.wav.stem for r in records]
    assert sorted(p.stem for p in (corpus / "wavs").glob("*.wav")) == sorted(ids)
    for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines():
        clip_id, text, normalized = line.split("|")
        assert clip_id and 4 <= len(normalized.split()) and not any(c.isdigit() for c in normalized)

    listed = read_list(corpus / "train_list.txt") + read_list(corpus / "val_list.txt")
    assert sorted(r.wav.stem for r in listed) == sorted(ids)
    assert {r.speaker for r in listed} == {0, 1}
    assert len(read_list(corpus / "val_list.txt")) == 1  # ceil(10 % of 8)
    for line in (corpus / "train_list.txt").read_text(encoding="utf-8").splitlines():
        wav, phonemes, speaker = line.split("|")
        assert wav.startswith("wavs/") and wav.endswith(".wav") and speaker.isdigit()
        assert not Tokenizer().unknown_symbols(phonemes)

    ood = read_ood_texts(corpus / "OOD_texts.txt")
    assert len(ood) == len(mc.OOD_SENTENCES) and all(len(t) >= 50 for t in ood)


def test_text_pool_is_the_pool_less_the_validation_clips_and_the_held_out_sentences(corpus):
    pool = [normalized for _, normalized in mc.SENTENCE_POOLS["base"]]
    kept = (corpus / mc.TEXT_POOL_FILE).read_text(encoding="utf-8").splitlines()
    val_ids = {r.wav.stem for r in read_list(corpus / "val_list.txt")}
    rows = [line.split("|") for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    val_texts = [normalized for clip_id, _, normalized in rows if clip_id in val_ids]
    assert set(kept) <= set(pool) and not set(kept) & set(mc.OOD_SENTENCES)
    assert sorted(set(pool) - set(kept)) == sorted(p for p in pool if any(p in t for t in val_texts))
    assert len(pool) - len(val_texts) <= len(kept) < len(pool)  # a validation clip may read two sentences
    assert not set(mc.OOD_SENTENCES) & {n for pool in mc.SENTENCE_POOLS.values() for _, n in pool}


def test_corpus_audio(corpus):
    for wav in (corpus / "wavs").glob("*.wav"):
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
        assert info.duration >= mc.MIN_SECONDS
        assert n_mel_frames(info.frames) >= 80  # enough for the style encoders
        wave, _ = sf.read(str(wav))
        assert 0.05 < np.abs(wave).max() <= mc.PEAK + 1e-4


def test_corpus_is_deterministic(corpus, tmp_path):
    again = mc.make_corpus(tmp_path / "again", n=N_CLIPS, voices=VOICES, seed=3)
    names = ["metadata.csv", "train_list.txt", "val_list.txt", "OOD_texts.txt"]
    wavs = [f"wavs/{p.name}" for p in (corpus / "wavs").glob("*.wav")]
    match, mismatch, errors = filecmp.cmpfiles(corpus, again, names + wavs, shallow=False)
    assert not mismatch and not errors and len(match) == len(names) + N_CLIPS

    other = mc.make_corpus(tmp_path / "other", n=N_CLIPS, voices=VOICES, seed=4)
    assert (other / "metadata.csv").read_bytes() != (corpus / "metadata.csv").read_bytes()


def test_short_clips_get_another_sentence(monkeypatch):
    monkeypatch.setattr(mc, "MIN_SECONDS", 5.0)
    speaker = mc.Speaker(0, Voice("en-us"), rate=200, pitch=50, pitch_range=50)
    clip = mc.Clip("X-0", speaker, "Hi there.", "Hi there.")
    longer, wave, _ = mc.render(clip, EspeakSynthesizer(), np.random.default_rng(0))
    assert longer.normalized.startswith("Hi there. ") and len(longer.normalized) > len("Hi there. ")
    assert len(wave) >= 5.0 * mc.SAMPLE_RATE


def test_sentence_pools():
    base, wide = mc.SENTENCE_POOLS["base"], mc.SENTENCE_POOLS["wide"]
    assert base == mc.SENTENCES and wide[:len(base)] == base  # the default corpus is unchanged
    texts = [text for text, _ in wide]
    assert len(set(texts)) == len(texts) == len(base) + 143
    assert not set(texts) & set(mc.OOD_SENTENCES)  # held out stays held out
    words = {pool: {w for _, n in sentences for w in n.lower().split()} for pool, sentences in mc.SENTENCE_POOLS.items()}
    assert len(words["wide"]) > 1.5 * len(words["base"])


def test_wide_corpus_has_no_repeats(tmp_path):
    """Below the pool's size every clip reads its own sentence, from both parts of the pool."""
    n = 12
    out = mc.make_corpus(tmp_path / "wide", n=n, seed=0, sentences="wide")
    texts = [line.split("|")[1] for line in (out / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    assert len(set(texts)) == n
    base = {text for text, _ in mc.SENTENCES}
    assert any(t in base for t in texts) and any(t not in base for t in texts)
    with pytest.raises(ValueError, match="unknown sentence pool"):
        mc.make_corpus(tmp_path / "bad", n=2, sentences="huge")


def test_cli(tmp_path, capsys):
    assert mc.main([str(tmp_path / "cli"), "--n", "2", "--voices", "en-gb-scotland+m3", "--seed", "1"]) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert len(list((tmp_path / "cli" / "wavs").glob("*.wav"))) == 2
    with pytest.raises(ValueError, match="at least 1"):
        mc.make_corpus(tmp_path / "none", n=0)


@pytest.mark.parametrize("args, message", [(["--n", "0"], "--n must be at least 1"),
                                           (["--voices", "xx-nonsense"], "no voice for language 'xx-nonsense'"),
                                           (["--voices", ","], "at least one voice"),
                                           (["--val-fraction", "5"], "below 1, got 5.0")])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    """Each was a traceback (the demo passed it on before its own 'step failed')."""
    assert mc.main([str(tmp_path / "c"), "--n", "2", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m styletts2.data.make_corpus: error:") and message in err and "\n" not in err
    afile = tmp_path / "afile"
    afile.write_text("")
    assert mc.main([str(afile), "--n", "2"]) == 2 and "is a file" in capsys.readouterr().err


def test_speak_as_corpus_is_the_corpus_voice(tmp_path):
    """A held-out sentence read by the corpus's speaker: the corpus's first clip, re-read, matches it."""
    from styletts2.audio.io import load_wav
    from styletts2.data.make_corpus import speak_as_corpus

    root = mc.make_corpus(tmp_path, n=1, phonemizer=lambda text: "x")
    text = (root / "metadata.csv").read_text(encoding="utf-8").split("|")[2].strip()
    recorded, _ = load_wav(root / "wavs" / "SPK00-0000.wav", 24000)
    spoken = speak_as_corpus(text)
    assert len(spoken) == len(recorded)
    assert np.abs(spoken - recorded).max() < 1e-3  # PCM-16 rounding
    assert np.abs(speak_as_corpus(text, seed=1)[:len(recorded)] - recorded).max() > 0.01  # another speaker


def test_first_clip_is_the_first_by_name_and_an_empty_corpus_is_named(tmp_path):
    (tmp_path / "wavs").mkdir()
    with pytest.raises(FileNotFoundError, match="no clips in"):
        mc.first_clip(tmp_path)
    for name in ("SPK00-0002.wav", "SPK00-0000.wav", "SPK00-0001.wav"):
        (tmp_path / "wavs" / name).write_bytes(b"")
    assert mc.first_clip(tmp_path).name == "SPK00-0000.wav"
