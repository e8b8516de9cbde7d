"""Style diffusion vs upstream, on the small models locked in tests/fixtures/parity_diffusion.pt
(made by tests/parity/make_fixtures_diffusion.py, which also reports the full-size figures).

Our code is bit-exact with upstream on the machine that made the fixture (network, denoiser,
sampler, loss; also with every random draw taken from a generator with upstream's seed). The
tolerance leaves room for other CPUs' float rounding, which the sampler's steps carry along.
"""
from pathlib import Path

import pytest
import torch

from styletts2.modules.diffusion.style_diffusion import build_style_diffusion

FIXTURE = Path(__file__).parent / "fixtures" / "parity_diffusion.pt"
TOL = 1e-5


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE)


def our_outputs(ours, inp: dict, drawn: dict, const: dict) -> dict:
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    cond = dict(embedding=inp["embedding"], features=inp["features"])
    out = {}
    with torch.no_grad():
        out["net_s1"] = ours.unet(inp["x"], inp["time"], **cond)
        out["net_s2"] = ours.unet(inp["x"], inp["time"], embedding_scale=2.0, **cond)
        out["net_masked"] = ours.unet(inp["x"], inp["time"], embedding_mask=drawn["net_mask"], **cond)
        for s in (1.0, 2.0):
            out[f"denoise_s{s:g}"] = ours.diffusion.denoise_fn(inp["x_noisy"], inp["sigmas"],
                                                               embedding_scale=s, **cond)
        for name, steps, scale in const["sample_cases"]:
            noises = drawn[name]
            out[name] = ours.sample(noises[0], num_steps=steps, embedding_scale=scale,
                                    step_noises=noises[1:], **cond)
            out[name + "_seeded"] = ours.sample(None, num_steps=steps, embedding_scale=scale,
                                                generator=gen(const["seed_sample"]), **cond)
        out["sample_masked"] = ours.sample(None, num_steps=4, embedding_mask_proba=const["mask_proba"],
                                           generator=gen(const["seed_sample_masked"]), **cond)
        out["loss_plain"] = ours.diffusion.loss(inp["x0"], sigmas=drawn["loss_sigmas"],
                                                noise=drawn["loss_noise"], **cond)
        out["loss_plain_seeded"] = ours.diffusion.loss(inp["x0"], generator=gen(const["seed_loss"]),
                                                       **cond)
        out["loss_masked"] = ours(inp["x0"], embedding_mask_proba=const["mask_proba"],
                                  generator=gen(const["seed_loss"]), **cond)
    return out


@pytest.mark.parametrize("speakers", ["single", "multi"])
def test_matches_upstream(fixture, speakers):
    case = fixture[speakers]
    ours = build_style_diffusion(multispeaker=speakers == "multi", **fixture["config"])
    ours.load_state_dict(case["state_dict"], strict=True)
    ours.eval()
    ours.sigma_data = fixture["constants"]["sigma_data"]
    got = our_outputs(ours, case["inputs"], case["drawn"], fixture["constants"])
    assert len(got) == 15
    for name, value in got.items():
        ref = case["outputs"][name.removesuffix("_seeded")]
        assert value.shape == ref.shape, name
        err = (value - ref).abs().max().item()
        assert err < TOL, f"{speakers} {name}: max abs error {err:.3e}"


def test_fixture_exercises_dropout(fixture):
    """The masked cases mean something only if the drawn mask is mixed and changes the output."""
    for speakers in ("single", "multi"):
        case = fixture[speakers]
        mask = case["drawn"]["net_mask"]
        assert mask.any() and not mask.all()
        assert (case["outputs"]["net_masked"] - case["outputs"]["net_s1"]).abs().max() > 1e-3
        assert (case["outputs"]["sample_s2"] - case["outputs"]["sample_s1"]).abs().max() > 1e-3
