"""Validation scored by the offline evaluator (styletts2/train/validation_scores.py): the scores of
whole decoded clips against their recordings, the per-validation clip count, and the trainer's
best.pth criterion leaving the scores out."""
import numpy as np
import pytest
import torch

from styletts2.train.trainer import Trainer
from styletts2.train.validation_scores import ValidationScores

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recordings():
    from styletts2.data.make_corpus import SAMPLE_RATE, speak_as_corpus

    assert SAMPLE_RATE == 24000
    return [torch.from_numpy(np.asarray(speak_as_corpus(text), np.float32))
            for text in ("The juice of lemons makes fine punch.", "The box was thrown beside the parked truck.")]


def test_a_clip_decoded_as_its_recording_scores_far_better_than_noise(recordings):
    scores = ValidationScores(clips=2, threads=1)
    same = scores.score(recordings, recordings, 24000)
    rng = torch.Generator().manual_seed(0)
    noise = scores.score([0.1 * torch.randn(len(w), generator=rng) for w in recordings], recordings, 24000)
    assert set(same) == set(noise) == {"score_per", "score_dnsmos"}
    assert same["score_per"] < 0.05 and noise["score_per"] > 0.9, (same, noise)
    assert same["score_dnsmos"] > noise["score_dnsmos"] + 0.5, (same, noise)
    assert scores.score([], [], 24000) == {}


def test_the_clip_count_restarts_with_each_validation():
    scores = ValidationScores(clips=5)
    assert [scores.wanted(3, 4), scores.wanted(3, 4)] == [4, 4]  # nothing scored yet: still wanted
    scores._scored = 4
    assert [scores.wanted(3, 4), scores.wanted(8, 4)] == [1, 4]
    assert ValidationScores().wanted(0, 16) == 0  # off by default


@pytest.mark.parametrize("kwargs", [{"clips": -1}, {"metrics": ("per", "mcd")}, {"metrics": ()}])
def test_bad_settings_are_value_errors(kwargs):
    with pytest.raises(ValueError, match="ValidationScores"):
        ValidationScores(**kwargs)


def test_best_checkpoint_criterion_leaves_the_scores_out():
    trainer = Trainer.__new__(Trainer)  # only the criterion is exercised
    trainer.val_metric = None
    assert trainer._val_score({"mel": 0.25, "dur": 0.5, "score_per": 0.9, "score_dnsmos": 2.0}) == 0.75
    trainer.val_metric = "score_per"
    assert trainer._val_score({"mel": 0.25, "score_per": 0.9}) == 0.9
