"""Parity of the text-side modules with upstream StyleTTS2, locked by a fixture.

tests/fixtures/parity_text_modules.pt holds a small config, upstream's (perturbed random) weights,
the inputs and upstream's outputs; tests/parity/make_fixtures_text_modules.py regenerates it
from an upstream checkout and also reports the full-size errors. Upstream is not needed here.
"""
from pathlib import Path

import pytest
import torch
from torch import nn

from styletts2.modules.plbert import PLBert
from styletts2.modules.prosody_predictor import ProsodyPredictor
from styletts2.modules.style_encoder import StyleEncoder
from styletts2.modules.text_encoder import TextEncoder

FIXTURE = Path(__file__).parent / "fixtures" / "parity_text_modules.pt"
# Same operations in the same order as upstream, in float32: the differences are rounding only
# (the packed LSTMs and attention kernels may sum in another order).
TOLERANCE = 1e-5


def build_ours(config: dict) -> dict[str, nn.Module]:
    """Our modules sized as upstream's `build_model` sizes them from its `model_params`."""
    style = dict(dim_in=config["dim_in"], style_dim=config["style_dim"], max_conv_dim=config["hidden_dim"])
    return {
        "text_encoder": TextEncoder(channels=config["hidden_dim"], kernel_size=5, depth=config["n_layer"],
                                    n_symbols=config["n_token"]),
        "bert": PLBert(**config["bert"]),
        "style_encoder": StyleEncoder(**style),
        "predictor_encoder": StyleEncoder(**style),
        "predictor": ProsodyPredictor(style_dim=config["style_dim"], d_hid=config["hidden_dim"],
                                      nlayers=config["n_layer"], max_dur=config["max_dur"],
                                      dropout=config["dropout"]),
    }


def run_modules(mods: dict[str, nn.Module], inputs: dict) -> dict[str, torch.Tensor]:
    """The training-time calls, written against the API that upstream's modules and ours share."""
    tokens, lengths, mask = inputs["tokens"], inputs["lengths"], inputs["mask"]
    predictor = mods["predictor"]
    durations, en = predictor(inputs["d_en"], inputs["style"], lengths, inputs["alignment"], mask)
    f0, n = predictor.F0Ntrain(en, inputs["style"])
    return {
        "t_en": mods["text_encoder"](tokens, lengths, mask),
        "bert": mods["bert"](tokens, attention_mask=(~mask).int()),
        "style": mods["style_encoder"](inputs["mel"]),
        "style_min_frames": mods["style_encoder"](inputs["mel_min"]),
        "prosodic_style": mods["predictor_encoder"](inputs["mel"]),
        "duration_logits": durations,
        "en": en,
        "F0": f0,
        "N": n,
    }


def alignment_from_durations(durations: torch.Tensor) -> torch.Tensor:
    """[T] frames per token -> [1, T, sum] one-hot token-to-frame alignment."""
    frame_token = torch.repeat_interleave(torch.arange(len(durations)), durations)
    return nn.functional.one_hot(frame_token, len(durations)).T.float().unsqueeze(0)


def run_inference_helpers(predictor: ProsodyPredictor, inputs: dict) -> dict[str, torch.Tensor]:
    """Our inference path on the first (unpadded) utterance: encode -> durations -> prosody."""
    d_en, style, lengths, mask = (inputs["d_en"][:1], inputs["style"][:1], inputs["lengths"][:1],
                                  inputs["mask"][:1])
    d = predictor.encode(d_en, style, lengths, mask)
    durations = predictor.durations(d)[0]
    en = d.transpose(1, 2) @ alignment_from_durations(durations)
    f0, n = predictor.prosody(en, style)
    return {"d": d, "durations": durations, "F0": f0, "N": n}


@pytest.fixture(scope="module")
def fixture():
    data = torch.load(FIXTURE, weights_only=True)
    mods = build_ours(data["config"])
    for name, module in mods.items():
        module.load_state_dict(data["state"][name], strict=True)
        module.eval()
    return data, mods


@pytest.fixture(scope="module")
def outputs(fixture):
    data, mods = fixture
    with torch.no_grad():
        return run_modules(mods, data["inputs"])


@pytest.mark.parametrize("name", ["t_en", "bert", "style", "style_min_frames", "prosodic_style",
                                  "duration_logits", "en", "F0", "N"])
def test_matches_upstream(fixture, outputs, name):
    expected = fixture[0]["expected"][name]
    assert outputs[name].shape == expected.shape
    # Relative to the output's scale: some random-weight outputs reach 1e9, where float32's own
    # rounding (and so the CPU's kernel choice) moves the last bits by thousands.
    scale = max(1.0, expected.abs().max().item())
    assert (outputs[name] - expected).abs().max().item() < TOLERANCE * scale


def test_text_encoder_padding_is_zero(fixture, outputs):
    inputs = fixture[0]["inputs"]
    assert inputs["lengths"][1] < inputs["lengths"][0]  # the fixture really has padding
    assert torch.all(outputs["t_en"].transpose(1, 2)[inputs["mask"]] == 0)


def test_inference_helpers_match_upstream_notebook(fixture):
    data, mods = fixture
    with torch.no_grad():
        ours = run_inference_helpers(mods["predictor"], data["inputs"])
    expected = data["inference_expected"]
    assert torch.equal(ours["durations"], expected["durations"].long())
    for name in ("d", "F0", "N"):
        assert ours[name].shape == expected[name].shape
        assert (ours[name] - expected[name]).abs().max().item() < TOLERANCE, name
