"""Parity of the training helper networks (aligner, pitch extractor, discriminators) with upstream,
against tests/fixtures/parity_aux.pt (written by tests/parity/make_fixtures_aux.py; upstream is not
needed here).

At the time of writing every output matched upstream bit for bit (max abs error 0). The
tolerances leave room for other CPUs/BLAS builds: 1e-5 absolute for outputs of magnitude <~ 1,
1e-4 for the spectrogram discriminator's feature maps (values up to ~9).
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))
from make_fixtures_aux import (fingerprint_error, named_tensors, seeded_state_dict,  # noqa: E402
                               state_checksums)

from styletts2.modules.aligner import ASRCNN  # noqa: E402
from styletts2.modules.discriminators import (MultiPeriodDiscriminator,  # noqa: E402
                                              MultiResSpecDiscriminator, WavLMDiscriminator)
from styletts2.modules.pitch import JDCNet  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "parity_aux.pt"
TOL = 1e-5


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=False)


def _seeded(module: torch.nn.Module, entry: dict) -> torch.nn.Module:
    """Load the recipe weights the fixture was made with, after checking they regenerate."""
    state = seeded_state_dict(module, entry["seed"])
    checksums = state_checksums(state)
    drift = [k for k, v in entry["checksums"].items()
             if abs(checksums[k] - v) > 1e-6 * (1 + abs(v))]
    assert not drift, f"the weight recipe no longer regenerates the fixture's weights: {drift[:5]}"
    module.load_state_dict(state, strict=True)
    return module


def _aligner(fixture) -> tuple[ASRCNN, dict]:
    entry = fixture["text_aligner"]
    model = ASRCNN(**entry["config"])
    model.load_state_dict(entry["state_dict"], strict=True)
    return model, entry


def _run_aligner(model, entry, *, train: bool, mask_unk: bool | None = None):
    inputs = entry["inputs"]
    model.train(train)
    torch.manual_seed(entry["rng_seed"])
    with torch.no_grad():
        out = model(inputs["mel"], inputs["mask"], inputs["text"], mask_unk=mask_unk)
        return (*out, model.get_feature(inputs["mel"]))


def _assert_close(expected, actual, tol=TOL):
    for name, (e, a) in zip(("ctc", "s2s_pred", "s2s_attn", "feature"), zip(expected, actual)):
        assert a.shape == e.shape, name
        err = float((a - e).abs().max())
        assert err < tol, f"{name}: max abs error {err:.3e}"


def test_aligner_eval_matches_upstream(fixture):
    model, entry = _aligner(fixture)
    _assert_close(entry["outputs"]["eval"], _run_aligner(model, entry, train=False))


def test_aligner_training_randomness_matches_upstream(fixture):
    # Same seed -> same unk-mask and dropout draws as upstream (CPU generator).
    model, entry = _aligner(fixture)
    _assert_close(entry["outputs"]["train"], _run_aligner(model, entry, train=True))
    _assert_close(entry["outputs"]["eval_unk"],
                  _run_aligner(model, entry, train=False, mask_unk=True))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_pitch_extractor_matches_upstream(fixture, mode):
    entry = fixture["pitch_extractor"]
    model = _seeded(JDCNet(num_class=1, seq_len=192), entry).train(mode == "train")
    with torch.no_grad():
        outputs = model(entry["inputs"]["mel"])
    for name, fp, out in zip(("f0", "gan_feature", "pooled"), entry["outputs"][mode], outputs):
        err = fingerprint_error(fp, out)
        assert err < TOL, f"{name} [{mode}]: max abs error {err:.3e}"
    if mode == "train":
        # Train mode normalises with batch statistics and updates the running ones, as upstream.
        state = model.state_dict()
        for key, expected in entry["running_after_train"].items():
            err = float((state[key] - expected).abs().max())
            assert err < TOL, f"{key}: max abs error {err:.3e}"


@pytest.mark.parametrize("name, cls, tol", [("mpd", MultiPeriodDiscriminator, TOL),
                                            ("msd", MultiResSpecDiscriminator, 1e-4)])
def test_discriminator_matches_upstream(fixture, name, cls, tol):
    entry = fixture[name]
    model = _seeded(cls(), entry).eval()
    with torch.no_grad():
        outputs = named_tensors(model(*fixture["waveforms"]))
    assert outputs.keys() == entry["outputs"].keys()
    for key, fp in entry["outputs"].items():
        err = fingerprint_error(fp, outputs[key])
        assert err < tol, f"{name} output {key}: max abs error {err:.3e}"


def test_wavlm_discriminator_matches_upstream(fixture):
    entry = fixture["wd"]
    model = WavLMDiscriminator(**entry["config"])
    model.load_state_dict(entry["state_dict"], strict=True)
    with torch.no_grad():
        out = model.eval()(entry["inputs"]["hidden"])
    assert out.shape == entry["outputs"].shape
    assert float((out - entry["outputs"]).abs().max()) < TOL
