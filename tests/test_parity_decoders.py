"""Our iSTFTNet and HiFi-GAN decoders against outputs recorded from upstream's (small widths, real
upsampling structure; see tests/parity/make_fixtures_decoders.py, which also documents how
upstream's random draws were replaced).

Three noise settings per decoder: zero noise (ours: deterministic=True), a given standard-normal
source noise (ours: noise=...), and both sides seeded identically and drawing their own noise.
Upstream's outputs equal ours bit for bit on the machine that made the fixture; elsewhere the
comparison is as a signal (tests/cross_machine.py says why).
"""
from pathlib import Path

import pytest
import torch

from cross_machine import assert_same_waveform
from styletts2.modules.hifigan import HiFiGANDecoder
from styletts2.modules.istftnet import ISTFTNetDecoder

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "parity_decoders.pt"
DECODERS = {"istftnet": ISTFTNetDecoder, "hifigan": HiFiGANDecoder}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def _decoder(fixture, kind):
    entry = fixture["decoders"][kind]
    decoder = DECODERS[kind](**entry["config"])
    decoder.load_state_dict(entry["state_dict"], strict=True)
    return decoder.eval(), entry["outputs"]


def _args(fixture):
    inputs = fixture["inputs"]
    return inputs["asr"], inputs["F0_curve"], inputs["N"], inputs["s"]


@pytest.mark.parametrize("kind", DECODERS)
def test_zero_noise_matches_upstream(fixture, kind):
    decoder, expected = _decoder(fixture, kind)
    decoder.deterministic = True
    with torch.no_grad():
        wav = decoder(*_args(fixture))
    assert_same_waveform(wav, expected["zero_noise"], TOLERANCE)


@pytest.mark.parametrize("kind", DECODERS)
def test_given_noise_matches_upstream(fixture, kind):
    decoder, expected = _decoder(fixture, kind)
    with torch.no_grad():
        wav = decoder(*_args(fixture), noise=fixture["noise"])
    assert_same_waveform(wav, expected["given_noise"], TOLERANCE)
    # The noise is not negligible: it changes the output well beyond the tolerance.
    assert (expected["given_noise"] - expected["zero_noise"]).abs().max().item() > 1e-2


@pytest.mark.parametrize("kind", DECODERS)
def test_seeded_draws_match_upstream(fixture, kind):
    decoder, expected = _decoder(fixture, kind)
    torch.manual_seed(fixture["seed"])
    with torch.no_grad():
        wav = decoder(*_args(fixture))
    assert_same_waveform(wav, expected["seeded"], TOLERANCE)
