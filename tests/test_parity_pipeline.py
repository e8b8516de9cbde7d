"""The whole torch synthesis path equals upstream's inference notebook (full LJSpeech size).

Fixture: tests/parity/make_fixtures_pipeline.py (upstream's outputs for our seeded random weights).
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))
import make_fixtures_pipeline as pipeline  # noqa: E402
from make_fixtures_aux import state_checksums  # noqa: E402
from cross_machine import assert_same_waveform  # noqa: E402

FIXTURE = torch.load(pipeline.FIXTURE)


@pytest.fixture(scope="module")
def ours():
    torch.set_grad_enabled(False)
    model, weights = pipeline.build_ours("ljspeech")
    torch.set_grad_enabled(True)
    return model, weights


def test_weights_are_the_fixtures(ours):
    _, weights = ours
    for name, sums in FIXTURE["checksums"].items():
        assert state_checksums(weights[name]) == pytest.approx(sums, rel=1e-6), f"initialisation of {name} changed"


def test_tokens_to_waveform_equal_upstream(ours):
    model, _ = ours
    assert pipeline.TOKENS == FIXTURE["tokens"]
    wave, durations, style = pipeline.run_ours(model, FIXTURE["noise"], FIXTURE["step_noises"])
    assert torch.equal(durations, FIXTURE["durations"])
    assert (style - FIXTURE["style"]).abs().max() <= 1e-5
    # The random-weight decoder has an enormous gain (its wave reaches 4e11): compared as a signal
    # when this machine's kernels are not the recording machine's (tests/cross_machine.py).
    assert_same_waveform(wave[None], FIXTURE["wave"][None], 1e-5 * FIXTURE["wave"].abs().max().item())


def test_notebook_tail_is_the_single_speaker_default(ours):
    """The LJSpeech notebook adds 5 frames to the last token; the synthesizer's default for a
    single-speaker model does the same and renders the notebook's waveform."""
    model, _ = ours
    notebook = FIXTURE["notebook"]
    wave, durations, _ = pipeline.run_ours(model, FIXTURE["noise"], FIXTURE["step_noises"], tail_frames=None)
    assert torch.equal(durations, notebook["durations"])
    assert torch.equal(durations[:-1], FIXTURE["durations"][:-1])
    assert int(durations[-1]) == int(FIXTURE["durations"][-1]) + notebook["tail_frames"]
    assert_same_waveform(wave[None], notebook["wave"][None], 1e-5 * notebook["wave"].abs().max().item())

