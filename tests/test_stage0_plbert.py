"""Stage 0, PL-BERT (styletts2/train/stage0_plbert.py) and its text data (styletts2/data/plbert_*.py,
word_vocab.py): word-level phonemization, masking, the word vocabulary, a tiny trainer run, its
checkpoint in a StyleTTS2 and resume."""
import json
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from styletts2.checkpoint import torch_load
from styletts2.data.plbert_dataset import MaskedPhonemeDataset, collate_masked
from styletts2.data.plbert_text import WordSentence, read_word_sentences, split_text_words
from styletts2.data.readers import cache_path, corpus_language
from styletts2.data.word_vocab import SEPARATOR_ID, UNKNOWN_ID, WordVocab
from styletts2.model import StyleTTS2, parse_gin
from styletts2.text.espeak import espeak_version
from styletts2.text.phonemizer import EspeakPhonemizer, phonemize
from styletts2.text.symbols import SPACE_ID, SYMBOL_TO_ID
from styletts2.train.logger import TrainLogger
from styletts2.train.pretrained import load_pretrained_parts
from styletts2.train.stage0_plbert import Stage0PLBert
from styletts2.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "The kettle whistled while the rain tapped against the window.",
    "Please close the gate behind you.",
    "A small boat drifted toward the shore.",
    "Nobody expected the library to open on Sunday.",
    "She painted the fence a bright shade of yellow.",
    "Can you hear the bells ringing from the tower?",
    "We walked along the river until the sun went down.",
    "Three owls were sitting quietly on the branch.",
]
MASK_ID = SYMBOL_TO_ID["M"]


class CountingPhonemizer(EspeakPhonemizer):
    """The real phonemizer, counting its calls."""

    def __init__(self, language="en-us"):
        super().__init__(language)
        self.calls = []

    def __call__(self, text):
        self.calls.append(text)
        return super().__call__(text)


# --- word-level phonemization --------------------------------------------------------------


def test_words_are_phonemized_one_by_one_and_cached(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Hello, world! The CAT sat.\nthe cat, the hat.\n", encoding="utf-8")
    phonemizer = CountingPhonemizer()
    report = read_word_sentences(text, phonemizer)
    first, second = report.sentences
    assert first.keys == ("hello", ",", "world", "!", "the", "cat", "sat", ".")
    assert first.phonemes == tuple(w if w in ",!." else phonemize(w) for w in
                                   ("Hello", ",", "world", "!", "The", "CAT", "sat", "."))
    assert second.keys == ("the", "cat", ",", "the", "hat", ".") and second.where.endswith("text.txt:2")
    # Each distinct written word once, punctuation never; the table lands in the phoneme cache.
    assert sorted(phonemizer.calls) == sorted({"Hello", "world", "The", "CAT", "sat", "the", "cat", "hat"})
    cached = json.loads(cache_path(tmp_path, "en-us", espeak_version()).read_text("utf-8"))["phonemes"]
    assert cached["world"] == phonemize("world")
    again = CountingPhonemizer()
    assert read_word_sentences(text, again).sentences == report.sentences and again.calls == []


def test_every_phoneme_carries_its_word_id(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("The cat sat on the mat.\n", encoding="utf-8")
    sentence = read_word_sentences(text, CountingPhonemizer()).sentences[0]
    vocab = WordVocab.build(["the", "the", "cat", "sat", "on", "mat"], min_count=1)
    item = MaskedPhonemeDataset([sentence], vocab, word_mask_prob=0.0)[0]
    expected_tokens, expected_words = [], []
    for key, phonemes in zip(sentence.keys, sentence.phonemes):
        expected_tokens += [SYMBOL_TO_ID[c] for c in phonemes] + [SPACE_ID]
        expected_words += [vocab.id(key)] * len(phonemes) + [SEPARATOR_ID]
    assert item.labels.tolist() == expected_tokens == item.tokens.tolist()
    assert item.words.tolist() == expected_words
    assert vocab.id("mat") != UNKNOWN_ID and vocab.id(".") == UNKNOWN_ID  # "." was not in its text
    assert not item.masked.any()


def test_list_files_and_transcripts(tmp_path):
    (tmp_path / "metadata.csv").write_text("a|The cat.|\nb|A dog.|\n", encoding="utf-8")
    lst = tmp_path / "train_list.txt"
    lst.write_text("wavs/a.wav|ðə kˈæt .|0\nwavs/b.wav|ɐ dˈɔɡ .|0\nwavs/c.wav|sˈʌm .|0\n", encoding="utf-8")
    # Phonemes only: a word's phonemes are its key.
    plain = read_word_sentences(lst)
    assert [s.keys for s in plain.sentences][0] == ("ðə", "kˈæt", ".")
    # With a metadata.csv: the clips' text, phonemized word by word; a clip without text is reported.
    texts = read_word_sentences(lst, CountingPhonemizer(), transcripts=str(tmp_path / "metadata.csv"))
    assert [s.keys for s in texts.sentences] == [("the", "cat", "."), ("a", "dog", ".")]
    assert [(i.reason, i.line) for i in texts.issues] == [("no_transcript", 3)]
    # A suffix: a text file beside each wav (LibriTTS's .normalized.txt).
    (tmp_path / "wavs").mkdir()
    (tmp_path / "wavs" / "c.normalized.txt").write_text("Some.\n", encoding="utf-8")
    beside = read_word_sentences(lst, CountingPhonemizer(), transcripts=".normalized.txt")
    assert [s.keys for s in beside.sentences] == [("some", ".")] and len(beside.issues) == 2


def test_lines_without_phonemes_are_reported_and_skipped(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Good morning.\n\n--- ### ---\nA cat ( and ) a dog.\n   \n", encoding="utf-8")
    report = read_word_sentences(text, CountingPhonemizer())
    assert [s.where.rsplit(":", 1)[1] for s in report.sentences] == ["1", "4"]
    assert [(i.reason, i.line) for i in report.issues] == [("empty", 2), ("no_phonemes", 3), ("empty", 5)]
    assert report.sentences[1].keys == ("a", "cat", "and", "a", "dog", ".")
    assert report.dropped_words == {"-": 6, "#": 3, "(": 1, ")": 1}
    summary = report.summary()
    assert "2 sentence(s)" in summary and "2 empty" in summary and "1 no_phonemes" in summary
    assert "text.txt:3" in summary


def test_one_gin_binding_sets_the_language(tmp_path):
    """LANGUAGE (gin/model/common.gin) reaches the word-level phonemizer and its cache."""
    parse_gin(["gin/model/tiny.gin", "gin/trainer/default.gin"], ["LANGUAGE = 'fr-fr'"])
    assert corpus_language() == "fr-fr"
    text = tmp_path / "text.txt"
    text.write_text("Bonjour monde.\n", encoding="utf-8")
    report = read_word_sentences(text)
    french = phonemize("Bonjour", "fr-fr")
    assert french != phonemize("Bonjour", "en-us")
    # French nasal vowels carry U+0303, which the 178-symbol table lacks: dropped, and counted.
    assert report.sentences[0].phonemes[0] == french.replace("\u0303", "")
    assert report.dropped_symbols["\u0303"] >= 2
    assert cache_path(tmp_path, "fr-fr", espeak_version()).exists()
    gin.clear_config()
    assert corpus_language() == "en-us"


def test_split_text_words():
    assert split_text_words("It's 5 o’clock, isn't it?") == ["It's", "5", "o’clock", ",", "isn't", "it", "?"]


# --- masking ---------------------------------------------------------------------------------


def _synthetic_sentences(n: int, words: int = 10) -> list[WordSentence]:
    """Words of three distinct phonemes, so a random replacement is visible."""
    rng = np.random.default_rng(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = []
    for i in range(n):
        phonemes = tuple("".join(rng.choice(list(letters), 3, replace=False)) for _ in range(words))
        out.append(WordSentence(tuple(f"w{j}" for j in range(words)), phonemes, f"x:{i}"))
    return out


def test_masking_follows_the_scheme_and_is_seeded():
    sentences = _synthetic_sentences(2000)
    vocab = WordVocab.build([k for s in sentences for k in s.keys])
    dataset = MaskedPhonemeDataset(sentences, vocab, seed=3)
    counts = {"picked": 0, "mask": 0, "random": 0, "kept": 0}
    words = 0
    for index in range(len(dataset)):
        item = dataset[index]
        separators = item.labels == SPACE_ID
        assert not item.masked[separators].any() and torch.equal(item.tokens[separators], item.labels[separators])
        assert torch.equal(item.tokens[~item.masked], item.labels[~item.masked])
        for word in range(10):
            span = slice(4 * word, 4 * word + 3)
            words += 1
            if not item.masked[span].any():
                continue
            assert item.masked[span].all()  # whole words
            counts["picked"] += 1
            tokens, labels = item.tokens[span], item.labels[span]
            if (tokens == MASK_ID).all():
                counts["mask"] += 1
            elif torch.equal(tokens, labels):
                counts["kept"] += 1
            else:
                counts["random"] += 1
                # random phonemes come from the sentence itself
                assert set(tokens.tolist()) <= set(item.labels[~separators].tolist())
    picked = counts["picked"]
    assert abs(picked / words - 0.15) < 0.01, counts
    assert abs(counts["mask"] / picked - 0.8) < 0.03, counts
    assert abs(counts["random"] / picked - 0.1) < 0.025, counts
    assert abs(counts["kept"] / picked - 0.1) < 0.025, counts

    # The same (seed, epoch, index) gives the same item in any order; another epoch or seed differs.
    def draws(data, indices):
        return [data[i].tokens.tolist() for i in indices]
    again = MaskedPhonemeDataset(sentences, vocab, seed=3)
    assert draws(again, [5, 1, 3]) == draws(dataset, [5, 1, 3])
    again.set_epoch(1)
    assert draws(again, range(50)) != draws(dataset, range(50))
    assert draws(MaskedPhonemeDataset(sentences, vocab, seed=4), range(50)) != draws(dataset, range(50))


def test_long_items_are_cut_to_a_window_and_batched():
    sentences = _synthetic_sentences(4, words=30)  # 120 tokens each
    dataset = MaskedPhonemeDataset(sentences, WordVocab.build(["w0"]), max_length=50, seed=0)
    assert dataset.lengths() == [50] * 4
    item = dataset[0]
    assert len(item.tokens) == len(item.labels) == len(item.words) == len(item.masked) == 50
    batch = collate_masked([dataset[0], MaskedPhonemeDataset(sentences[:1], dataset.vocab, max_length=20)[0]])
    assert batch.tokens.shape == (2, 50) and batch.lengths.tolist() == [50, 20]
    assert not batch.masked[1, 20:].any() and batch.valid.sum().item() == 70
    moved = batch.to("cpu", non_blocking=False)
    assert all(torch.equal(getattr(moved, f), getattr(batch, f)) for f in ("tokens", "labels", "words"))


# --- vocabulary ------------------------------------------------------------------------------


def test_word_vocabulary():
    words = ["the"] * 5 + ["cat"] * 3 + ["mat"] * 3 + ["rare"]
    vocab = WordVocab.build(words, min_count=2, language="en-us")
    assert vocab.words == ["<sep>", "<unk>", "the", "cat", "mat"]  # by count, ties alphabetically
    assert vocab.ids(["the", "rare", "dog"]) == [2, UNKNOWN_ID, UNKNOWN_ID]
    assert WordVocab.build(words, min_count=1, max_words=4).words == ["<sep>", "<unk>", "the", "cat"]
    assert WordVocab.from_state_dict(vocab.state_dict()) == vocab
    with pytest.raises(ValueError):
        WordVocab.build(words, max_words=2)


# --- training --------------------------------------------------------------------------------


def _bindings(run_dir: Path, text: Path, epochs: int, *extra: str) -> list[str]:
    return [f"Trainer.run_dir = '{run_dir}'", f"Trainer.train_data = '{text}'", f"Trainer.val_data = '{text}'",
            f"Trainer.epochs = {epochs}", "Trainer.batch_size = 4", "Trainer.num_workers = 0",
            "Trainer.save_every_steps = None", "Trainer.log_every_steps = 1000",
            "LengthBucketBatchSampler.bucket_multiplier = 1", "build_multi_optimizer.lr = 3e-3", *extra]


def _train(run_dir: Path, text: Path, epochs: int, *extra: str):
    parse_gin(["gin/model/tiny.gin", "gin/trainer/default.gin", "gin/stage/stage0_plbert.gin"],
              _bindings(run_dir, text, epochs, *extra))
    trainer = Trainer()
    return trainer, trainer.fit()


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def straight_run(text, tmp_path_factory):
    """20 epochs of 2 steps on 8 sentences, every step's losses recorded."""
    losses = []
    original = TrainLogger.log_step
    TrainLogger.log_step = lambda self, step, values, lrs=None: losses.append(dict(values))
    try:
        trainer, result = _train(tmp_path_factory.mktemp("straight"), text, 20)
    finally:
        TrainLogger.log_step = original
    gin.clear_config()
    return trainer, result, losses


def test_tiny_run_overfits_a_handful_of_sentences(straight_run):
    trainer, result, losses = straight_run
    assert result.status == "completed" and result.iters == 40 and result.skipped_steps == 0
    for name, ratio in (("word_loss", 0.6), ("token_loss", 0.75)):
        series = [step[name] for step in losses if name in step]
        assert len(series) == 40 and all(np.isfinite(series)), series
        assert np.mean(series[-8:]) < ratio * np.mean(series[:4]), (name, series)
    checkpoint = torch_load(result.checkpoint)
    assert list(checkpoint["net"]) == ["bert"]
    assert checkpoint["word_vocab"] == checkpoint["stage"]["word_vocab"] == trainer.stage.vocab.state_dict()
    assert checkpoint["word_vocab"]["language"] == "en-us"
    assert "the" in checkpoint["word_vocab"]["words"]
    heads = checkpoint["stage"]["heads"]
    assert heads["word_predictor.weight"].shape == (len(trainer.stage.vocab), 64)
    assert heads["mask_predictor.weight"].shape == (178, 64)


def test_validation_reports_losses_and_accuracies(straight_run):
    trainer, _, _ = straight_run
    batch = next(iter(trainer.val_loader))
    out = trainer.stage.validation_step(batch, 0)
    assert set(out) == {"loss", "word_loss", "token_loss", "token_acc", "word_acc"}
    assert 0 <= out["token_acc"] <= 1 and 0 < out["word_acc"] <= 1
    assert out["loss"] == pytest.approx(out["word_loss"] + out["token_loss"])


def test_checkpoint_loads_into_a_styletts2_bert(straight_run):
    _, result, _ = straight_run
    parse_gin(["gin/model/tiny.gin"])
    torch.manual_seed(1)
    model = StyleTTS2(modules=("bert", "bert_encoder", "text_encoder"))
    done = load_pretrained_parts(model, ("bert",), plbert_path=str(result.checkpoint))
    assert done == {"bert": str(result.checkpoint)}
    saved = torch_load(result.checkpoint)["net"]["bert"]
    for key, value in model.bert.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_resume_is_exact_and_keeps_the_vocabulary(straight_run, text, tmp_path):
    _, straight, _ = straight_run
    run_dir = tmp_path / "resumed"
    _train(run_dir, text, 10)
    gin.clear_config()
    _, result = _train(run_dir, text, 20)
    assert result.iters == 40
    resumed, reference = torch_load(result.checkpoint), torch_load(straight.checkpoint)
    for key, value in reference["net"]["bert"].items():
        assert torch.equal(resumed["net"]["bert"][key], value), key
    assert resumed["word_vocab"] == reference["word_vocab"]

    # New text and a new min_count would give another vocabulary: the checkpoint's is kept.
    gin.clear_config()
    changed = tmp_path / "changed.txt"
    changed.write_text("\n".join(SENTENCES[:-1] + ["Zebras juggle quixotic xylophones."]) + "\n", encoding="utf-8")
    fresh = WordVocab.build([k for s in read_word_sentences(changed).sentences for k in s.keys], min_count=2)
    saved_classes = len(reference["word_vocab"]["words"]) + 2  # and the separator and unknown classes
    assert len(fresh) < saved_classes
    more, result = _train(run_dir, changed, 21, "Stage0PLBert.min_count = 2")
    assert result.iters == 42 and len(more.stage.datasets[0]) == 8
    assert more.stage.vocab.state_dict() == reference["word_vocab"]
    assert all(d.vocab is more.stage.vocab for d in more.stage.datasets)
    assert more.stage.heads.word_predictor.out_features == saved_classes
    assert torch_load(result.checkpoint)["word_vocab"] == reference["word_vocab"]


def test_the_experiment_files_build(tmp_path):
    """Each experiment parses, builds a StyleTTS2 that is its bert alone and the stage."""
    for name, hidden in (("tiny", 64), ("ljspeech", 768), ("libritts", 768)):
        gin.clear_config()
        parse_gin([f"gin/stage0_plbert_{name}.gin"])
        model = StyleTTS2()
        assert list(model.nets) == ["bert"] and model.bert.config.hidden_size == hidden
        assert gin.query_parameter("Trainer.stage").selector == "Stage0PLBert"
        assert Stage0PLBert().max_length == 512
