"""Stage 0, the text aligner (styletts2/train/stage0_aligner.py), and the word timings it is measured
with (styletts2/data/word_timings.py), on a tiny espeak-ng corpus through the real runner."""
import json

import numpy as np
import pytest
import torch

import runner
from styletts2.checkpoint import torch_load
from styletts2.data.make_corpus import make_corpus
from styletts2.data.readers import read_list
from styletts2.data.word_timings import TIMINGS_FILE, BoundaryErrors, path_word_starts, token_words, \
    uniform_word_starts
from styletts2.model import StyleTTS2, parse_gin
from styletts2.train.pretrained import load_pretrained_parts
from styletts2.evaluate.intelligibility import edit_distance
from styletts2.train.stage0_aligner import (ENCODER_PARTS, Stage0Aligner, attention_on_path, ctc_greedy,
                                          ctc_targets)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), n=16)


def run_aligner(corpus, run_dir, *bindings):
    params = [f"Trainer.train_data = '{corpus / 'train_list.txt'}'", f"Trainer.val_data = '{corpus / 'val_list.txt'}'",
              f"Trainer.data_root = '{corpus}'", "Trainer.log_every_steps = 1000", *bindings]
    argv = ["--gin", "gin/stage0_aligner_tiny.gin", "--run_dir", str(run_dir)]
    for p in params:
        argv += ["--gin_param", p]
    assert runner.main(argv) == 0


# --- word timings --------------------------------------------------------------------------------

def test_token_words_follow_the_phoneme_words():
    # [0] + "ðə kˈæt, sˈæt." + [0]: spaces and punctuation belong to no word
    words = token_words("ðə kˈæt, sˈæt.")
    assert words == [-1, 0, 0, -1, 1, 1, 1, 1, -1, -1, 2, 2, 2, 2, -1, -1]


def test_word_starts_from_a_path_and_from_a_uniform_split():
    words = [-1, 0, 0, -1, 1, 1, -1]
    frames = [0, 2, 3, 5, 6, 8, 9]  # first frame of each token
    path = np.zeros((7, 10))
    for token, frame in enumerate(frames):
        path[token, frame] = 1
    starts = path_word_starts(path, words, offset_s=0.05)
    assert np.allclose(starts, [2 * 0.025 - 0.05, 6 * 0.025 - 0.05])
    assert np.allclose(uniform_word_starts(words, 0.7), [0.1, 0.4])
    # From the space before each word: the first word has none (only the leading pad), the second does
    assert np.allclose(path_word_starts(path, words, offset_s=0.05, from_space=True),
                       [2 * 0.025 - 0.05, 5 * 0.025 - 0.05])


def test_boundary_errors_summarise_absolute_errors_and_the_later_words_lag():
    errors = BoundaryErrors([], [])
    errors.add(np.array([-0.2, 0.6, 1.1]), np.array([0.0, 0.4, 0.9]), [0.0, 0.5, 1.0])
    errors.add(np.array([0.1, 0.2]), np.array([0.0, 0.1]), [0.0])  # words do not pair up: left out
    assert (errors.clips, errors.skipped) == (1, 1)
    scores = errors.summary()
    assert scores["boundary_mae_ms"] == pytest.approx((200 + 100 + 100) / 3)
    assert scores["uniform_mae_ms"] == pytest.approx((0 + 100 + 100) / 3)
    assert scores["boundary_lag_ms"] == pytest.approx(100)  # the first word's -200 ms is not a lag
    assert BoundaryErrors([], []).summary() == {}


def test_make_corpus_records_espeak_word_timings(corpus):
    timings = json.loads((corpus / TIMINGS_FILE).read_text())
    records = read_list(corpus / "train_list.txt", root=corpus) + read_list(corpus / "val_list.txt", root=corpus)
    assert len(timings) == len(records) == 16
    paired = 0
    for record in records:
        entry = timings[record.wav.stem]
        starts = [w[1] for w in entry["words"]]
        assert starts == sorted(starts) and 0 <= starts[0] < 0.3 and starts[-1] < entry["seconds"]
        paired += max(token_words(record.phonemes)) + 1 == len(starts)
    assert paired >= 14  # espeak-ng's words and the phonemizer's pair up on (nearly) every clip


# --- CTC helpers -----------------------------------------------------------------------------------

def test_ctc_helpers():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance([], [1, 2]) == 2
    logits = torch.full((6, 5), -10.0)
    for t, k in enumerate([0, 3, 3, 0, 3, 4]):
        logits[t, k] = 0.0
    assert ctc_greedy(logits, 6) == [3, 3, 4] and ctc_greedy(logits, 3) == [3]
    tokens = torch.tensor([[0, 5, 6, 7, 0], [0, 8, 0, 0, 0]])
    targets, lengths = ctc_targets(tokens, torch.tensor([5, 3]))
    assert targets.tolist() == [5, 6, 7, 8] and lengths.tolist() == [3, 1]


def test_attention_on_path_is_the_share_of_each_token_s_attention_on_it():
    path = torch.zeros(2, 3, 4)
    for i, t in enumerate([0, 1, 3]):
        path[:, i, t] = 1.0
    assert attention_on_path(path, path, torch.tensor([3, 3])) == pytest.approx(1.0)
    uniform = torch.full((2, 3, 4), 0.25)
    assert attention_on_path(uniform, path, torch.tensor([3, 2])) == pytest.approx(0.25)
    half = 0.5 * path + 0.5 * uniform
    half[1, 2] = 0.0  # a padded token: not counted
    assert attention_on_path(half, path, torch.tensor([3, 2])) == pytest.approx(0.625)


# --- training -------------------------------------------------------------------------------------

def test_tiny_aligner_trains_and_its_checkpoint_loads_as_upstreams(corpus, tmp_path, caplog):
    run_aligner(corpus, tmp_path, "Trainer.epochs = 4")
    state = torch_load(tmp_path / "last.pth")
    # upstream's release layout beside our own
    assert set(state["model"]) == set(state["net"]["text_aligner"])
    log = (tmp_path / "config.gin").read_text()
    assert "Stage0Aligner" in log

    parse_gin(["gin/model/tiny.gin"])
    model = StyleTTS2(modules=("text_aligner",))
    assert load_pretrained_parts(model, ("text_aligner",), aligner_path=str(tmp_path / "last.pth")) == {
        "text_aligner": str(tmp_path / "last.pth")}
    for key, value in state["model"].items():
        assert torch.equal(model.text_aligner.state_dict()[key], value)

    # fine-tuning: a new run starting from that file
    run_aligner(corpus, tmp_path / "ft", "Trainer.epochs = 1",
                f"load_pretrained_parts.aligner_path = '{tmp_path / 'last.pth'}'")


def test_encoder_lr_trains_the_encoder_and_ctc_head_at_their_own_rate(corpus, tmp_path):
    run_aligner(corpus, tmp_path, "Trainer.epochs = 1", "Stage0Aligner.lr = 2e-3", "Stage0Aligner.encoder_lr = 1e-3")
    state = torch_load(tmp_path / "last.pth")
    rest, *encoder = state["stage"]["optimizer"]["text_aligner"]["optimizer"]["param_groups"]
    assert rest["lr"] == 2e-3 and [group["lr"] for group in encoder] == [1e-3] * len(ENCODER_PARTS)
    weights = state["model"]
    parts = {key.split(".")[0] for key in weights if not key.startswith("to_mfcc")}  # the DCT is a buffer
    assert set(ENCODER_PARTS) | {"asr_s2s"} == parts
    counted = lambda prefixes: sum(1 for key in weights if key.split(".")[0] in prefixes)
    assert [len(group["params"]) for group in encoder] == [counted({part}) for part in ENCODER_PARTS]
    assert len(rest["params"]) == counted({"asr_s2s"})
    with pytest.raises(ValueError, match="encoder_lr must be positive"):
        Stage0Aligner(encoder_lr=0.0)


def test_aligner_learns_to_hear_phonemes(corpus, tmp_path):
    """The learning check: the CTC head reads the audio alone (no text goes in), so its phoneme
    error rate can only fall by learning acoustics. After 300 steps on 14 clips it must be well
    under the untrained aligner's (which recognises nothing: PER 1)."""
    from styletts2.train.logger import TrainLogger

    seen = {}
    original = TrainLogger.log_validation

    def capture(self, epoch, losses):
        seen[epoch] = dict(losses)
        return original(self, epoch, losses)

    TrainLogger.log_validation = capture
    try:
        run_aligner(corpus, tmp_path, "Trainer.epochs = 100", "Trainer.batch_size = 4",
                    "Trainer.validate_every_epochs = 50", f"Trainer.val_data = '{corpus / 'train_list.txt'}'")
    finally:
        TrainLogger.log_validation = original
    first, last = seen[min(seen)], seen[max(seen)]
    assert last["ctc"] < first["ctc"] and last["s2s"] < first["s2s"]
    assert last["ctc_per"] < 0.8, last
    assert 0.0 < last["attention_on_path"] <= 1.0
