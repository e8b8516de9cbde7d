"""Style diffusion: state-dict layout, the builder, the sampler's noise handling and call count,
classifier-free guidance and dropout, the training loss, and errors on bad input."""
from pathlib import Path

import gin
import pytest
import torch

from styletts2.manifest import manifest_rows, read_manifest
from styletts2.modules.diffusion.sampler import (DiffusionSampler, KarrasSchedule, network_passes,
                                                 sample)
from styletts2.modules.diffusion.style_diffusion import build_style_diffusion
from styletts2.modules.diffusion.transformer import StyleTransformer1d, Transformer1d

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TINY = dict(style_dim=8, bert_hidden=16, bert_max_positions=12, num_layers=1, num_heads=2,
            head_features=4)
C, E = 16, 16


def tiny(multispeaker: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    return build_style_diffusion(multispeaker=multispeaker, **TINY).eval()


def inputs(batch: int = 2, length: int = 5, multispeaker: bool = False, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(embedding=torch.randn(batch, length, E, generator=g),
                features=torch.randn(batch, C, generator=g) if multispeaker else None)


def noises(num_steps: int, batch: int = 2, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, C, generator=g), torch.randn(num_steps - 1, batch, 1, C, generator=g)


@pytest.mark.parametrize("config,multispeaker,count", [("ljspeech", False, 92), ("libritts", True, 96)])
def test_manifest_matches_upstream(config, multispeaker, count):
    model = build_style_diffusion(multispeaker=multispeaker)
    reference = [r for r in read_manifest(str(REFERENCE / f"upstream_{config}_state_dict.tsv"))
                 if r[0] == "diffusion"]
    assert len(reference) == count
    assert manifest_rows({"diffusion": model}) == reference
    assert isinstance(model.unet, StyleTransformer1d if multispeaker else Transformer1d)
    assert model.multispeaker == multispeaker


def test_network_is_registered_twice_and_shared():
    model = tiny()
    assert model.unet is model.diffusion.net
    state = model.state_dict()
    net_keys = [k for k in state if k.startswith("diffusion.net.")]
    assert sorted(k.replace("diffusion.net.", "unet.") for k in net_keys) == \
        sorted(k for k in state if k.startswith("unet."))
    other = tiny(seed=5)
    other.load_state_dict(state, strict=True)
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)


def test_builder_is_gin_configurable():
    gin.parse_config("""
        build_style_diffusion.style_dim = 8
        build_style_diffusion.bert_hidden = 16
        build_style_diffusion.bert_max_positions = 12
        build_style_diffusion.num_layers = 1
        build_style_diffusion.multispeaker = True
        build_style_diffusion.sigma_data = 0.3
        build_style_diffusion.embedding_mask_proba = 0.25
    """)
    model = build_style_diffusion()
    assert model.multispeaker and len(model.unet.blocks) == 1
    assert model.unet.fixed_embedding.embedding.weight.shape == (12, 16)
    assert model.sigma_data == 0.3 and model.embedding_mask_proba == 0.25


def test_sigma_data_is_settable_and_used():
    model = tiny()
    x = torch.randn(2, 1, C)
    before = model.diffusion.denoise_fn(x, 0.5, **inputs())
    model.sigma_data = 0.35
    assert model.diffusion.sigma_data == 0.35
    after = model.diffusion.denoise_fn(x, 0.5, **inputs())
    assert (before - after).abs().max() > 1e-4


def test_karras_schedule():
    sigmas = KarrasSchedule()(5)
    assert len(sigmas) == 5
    assert sigmas[0] == pytest.approx(3.0) and sigmas[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


@pytest.mark.parametrize("multispeaker", [False, True])
def test_sampler_is_deterministic_given_noises(multispeaker):
    model = tiny(multispeaker)
    cond = inputs(multispeaker=multispeaker)
    noise, steps = noises(5)
    rng = torch.get_rng_state()
    with torch.no_grad():
        a = model.sample(noise, num_steps=5, step_noises=steps, **cond)
        b = model.sample(noise, num_steps=5, step_noises=list(steps), **cond)
        c = model.sample(noise, num_steps=5, step_noises=steps + 0.1, **cond)
    assert torch.equal(torch.get_rng_state(), rng), "explicit noises must not touch the global RNG"
    assert a.shape == (2, 1, C)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-6, "the last step's noise (sigma_up > 0) must reach the sample"


def test_generator_draws_the_noises_in_order():
    model = tiny()
    cond = inputs()
    noise, steps = noises(4, seed=9)  # drawn from the same stream: initial noise, then steps
    with torch.no_grad():
        explicit = model.sample(noise, num_steps=4, step_noises=steps, **cond)
        drawn = model.sample(None, num_steps=4, generator=torch.Generator().manual_seed(9), **cond)
    assert torch.equal(explicit, drawn)


def test_batch_items_are_independent():
    model = tiny(True)
    cond = inputs(multispeaker=True)
    noise, steps = noises(5)
    with torch.no_grad():
        both = model.sample(noise, num_steps=5, embedding_scale=2.0, step_noises=steps, **cond)
        first = model.sample(noise[:1], embedding=cond["embedding"][:1], features=cond["features"][:1],
                             num_steps=5, embedding_scale=2.0, step_noises=steps[:, :1])
    assert (both[:1] - first).abs().max() < 1e-5


@pytest.mark.parametrize("scale,passes", [(1.0, 8), (2.0, 16), (torch.tensor(1.0), 16)])
def test_number_of_network_passes(scale, passes):
    model = tiny()
    counts = {"calls": 0, "passes": 0}
    model.unet.register_forward_hook(lambda *a: counts.__setitem__("calls", counts["calls"] + 1))
    model.unet.to_out.register_forward_hook(lambda *a: counts.__setitem__("passes", counts["passes"] + 1))
    noise, steps = noises(5)
    with torch.no_grad():
        DiffusionSampler(model.diffusion)(noise, num_steps=5, embedding_scale=scale,
                                          step_noises=steps, **inputs())
    assert counts == {"calls": 8, "passes": passes}
    assert network_passes(5, scale) == passes


def test_guidance_scale_as_tensor_matches_float():
    model = tiny(True)
    cond = inputs(multispeaker=True)
    noise, steps = noises(3)
    with torch.no_grad():
        for scale in (1.0, 2.0):
            as_float = sample(model.diffusion, noise, num_steps=3, embedding_scale=scale,
                              step_noises=steps, **cond)
            as_tensor = sample(model.diffusion, noise, num_steps=3, embedding_scale=torch.tensor(scale),
                               step_noises=steps, **cond)
            per_item = sample(model.diffusion, noise, num_steps=3,
                              embedding_scale=torch.tensor([scale, scale]), step_noises=steps, **cond)
            assert (as_float - as_tensor).abs().max() < 1e-5
            assert (as_float - per_item).abs().max() < 1e-5


def test_guidance_extrapolates_from_the_unconditional_output():
    model = tiny()
    x, t = torch.randn(2, 1, C), torch.randn(2)
    emb = inputs()["embedding"]
    with torch.no_grad():
        cond = model.unet(x, t, emb)
        uncond = model.unet.run(x, t, model.unet.fixed_embedding(emb))
        guided = model.unet(x, t, emb, embedding_scale=3.0)
    assert (guided - (uncond + 3.0 * (cond - uncond))).abs().max() < 1e-5


def test_dropout_mask_only_when_asked():
    model = tiny()
    x, t = torch.randn(2, 1, C), torch.randn(2)
    emb = inputs()["embedding"]
    rng = torch.get_rng_state()
    with torch.no_grad():
        plain = model.unet(x, t, emb)
        masked = model.unet(x, t, emb, embedding_mask=torch.tensor([True, False]))
        uncond = model.unet.run(x, t, model.unet.fixed_embedding(emb))
    assert torch.equal(torch.get_rng_state(), rng), "the network itself never draws random numbers"
    assert torch.equal(masked[1], plain[1])
    assert (masked[0] - uncond[0]).abs().max() < 1e-6
    assert (masked[0] - plain[0]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="embedding_mask"):
        model.unet(x, t, emb, embedding_mask=torch.tensor([True]))


def test_loss_is_reproducible_and_trains():
    model = tiny(True).train()
    cond = inputs(batch=4, multispeaker=True)
    x0 = torch.randn(4, 1, C) * 0.2
    sigmas, noise = torch.rand(4) + 0.05, torch.randn(4, 1, C)
    a = model.diffusion.loss(x0, sigmas=sigmas, noise=noise, **cond)
    b = model.diffusion.loss(x0, sigmas=sigmas, noise=noise, **cond)
    assert a.dim() == 0 and torch.equal(a, b)
    a.backward()
    assert model.unet.to_out[1].weight.grad.abs().sum() > 0
    assert model.unet.to_features[0].weight.grad.abs().sum() > 0
    # The container's loss defaults to the configured dropout (0.1), drawn after sigmas and noise.
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    with torch.no_grad():
        via_container = model(x0, generator=seeded(), **cond)
        direct = model.diffusion.loss(x0, embedding_mask_proba=0.1, generator=seeded(), **cond)
    assert torch.equal(via_container, direct)


def test_loss_weight_is_edm_lambda():
    model = tiny()
    model.sigma_data = 0.25
    s = torch.tensor([0.1, 1.0])
    expected = (s ** 2 + 0.25 ** 2) / (s * 0.25) ** 2
    assert torch.allclose(model.diffusion.loss_weight(s), expected)


def test_bad_inputs_are_reported():
    single, multi = tiny(), tiny(True)
    cond, mcond = inputs(), inputs(multispeaker=True)
    noise, steps = noises(5)
    with pytest.raises(ValueError, match="num_steps"):
        single.sample(noise, num_steps=1, **cond)
    with pytest.raises(ValueError, match="noise"):
        single.sample(noise[:, :, :4], **cond)
    with pytest.raises(ValueError, match="step_noises"):
        single.sample(noise, num_steps=5, step_noises=steps[:3], **cond)
    with pytest.raises(ValueError, match="features"):
        multi.sample(noise, embedding=mcond["embedding"])
    with pytest.raises(ValueError, match="features"):
        single.sample(noise, embedding=cond["embedding"], features=torch.zeros(2, C))
    with pytest.raises(ValueError, match="more than the 12"):
        single.sample(noise, embedding=torch.zeros(2, 13, E))
    with pytest.raises(ValueError, match="embedding"):
        single.sample(noise, embedding=torch.zeros(2, 5, E + 1))
    with pytest.raises(ValueError, match="sigmas"):
        single.diffusion.loss(torch.zeros(2, 1, C), sigmas=torch.ones(3), **cond)
