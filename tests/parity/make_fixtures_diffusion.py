"""Parity of the style diffusion against upstream; writes tests/fixtures/parity_diffusion.pt.

    STYLETTS2_UPSTREAM=/work/upstream python tests/parity/make_fixtures_diffusion.py [--full]

For a single-speaker and a multispeaker model with the same weights on both sides (eval), it compares:
the network (guidance scale 1 and 2, and with a classifier-free dropout mask), KDiffusion.denoise_fn,
the full ADPM2 sampler (explicit noises; scale 1, 2 and 1.5 with 10 steps), the training-time sampler
with dropout drawn from a seed, and the training loss (explicit sigmas/noise, and all drawn from a seed).
Upstream draws from the global RNG; ours from a torch.Generator with the same seed, which gives the same
stream. The small models' inputs and upstream outputs are saved; --full also prints the errors at
the LJSpeech and LibriTTS sizes (upstream's full build_model; a few minutes on a busy 2-core CPU).
"""
import argparse
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_harness import build_upstream_model, import_upstream  # noqa: E402

from styletts2.modules.diffusion.style_diffusion import build_style_diffusion  # noqa: E402
from tests.test_parity_diffusion import our_outputs  # noqa: E402  (the test's side of the comparison)

SMALL = dict(style_dim=16, bert_hidden=48, bert_max_positions=24, num_layers=2, num_heads=2,
             head_features=8, multiplier=2)
SIGMA_DATA = 0.17  # not the 0.2 default, so a wrong sigma_data shows
MASK_PROBA = 0.5   # so that a batch of 3 gets a mixed dropout mask
SEED_SAMPLE, SEED_SAMPLE_MASKED, SEED_LOSS = 11, 12, 13
SAMPLE_CASES = (("sample_s1", 5, 1.0), ("sample_s2", 5, 2.0), ("sample_n10_s1.5", 10, 1.5))
CONSTANTS = dict(sigma_data=SIGMA_DATA, mask_proba=MASK_PROBA, seed_sample=SEED_SAMPLE,
                 seed_sample_masked=SEED_SAMPLE_MASKED, seed_loss=SEED_LOSS, sample_cases=SAMPLE_CASES)


def upstream_small_diffusion(multispeaker: bool):
    """Upstream build_model's diffusion section with the SMALL sizes."""
    import_upstream()
    from Modules.diffusion.diffusion import AudioDiffusionConditional
    from Modules.diffusion.modules import StyleTransformer1d, Transformer1d
    from Modules.diffusion.sampler import KDiffusion, LogNormalDistribution

    c = SMALL
    channels = c["style_dim"] * 2
    shape = dict(num_layers=c["num_layers"], num_heads=c["num_heads"],
                 head_features=c["head_features"], multiplier=c["multiplier"])
    if multispeaker:
        net = StyleTransformer1d(channels=channels, context_embedding_features=c["bert_hidden"],
                                 context_features=channels,
                                 embedding_max_length=c["bert_max_positions"], **shape)
    else:
        net = Transformer1d(channels=channels, context_embedding_features=c["bert_hidden"],
                            embedding_max_length=c["bert_max_positions"], **shape)
    diffusion = AudioDiffusionConditional(
        in_channels=1, embedding_max_length=c["bert_max_positions"],
        embedding_features=c["bert_hidden"], embedding_mask_proba=0.1, channels=channels,
        context_features=channels)
    diffusion.diffusion = KDiffusion(net=diffusion.unet,
                                     sigma_distribution=LogNormalDistribution(mean=-3.0, std=1.0),
                                     sigma_data=0.2, dynamic_threshold=0.0)
    diffusion.diffusion.net = net
    diffusion.unet = net
    return diffusion


def make_inputs(channels: int, embed: int, multispeaker: bool, batch: int, length: int) -> dict:
    g = torch.Generator().manual_seed(1234)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sigmas = (torch.randn(batch, generator=g) - 1.0).exp()
    return dict(
        x=r(batch, 1, channels), time=r(batch) * 0.5, embedding=r(batch, length, embed),
        features=r(batch, channels) * 0.3 if multispeaker else None,
        x_noisy=r(batch, 1, channels) * 0.5, sigmas=sigmas, x0=r(batch, 1, channels) * 0.2,
        mask=torch.tensor([True, False] + [i % 2 == 0 for i in range(batch - 2)]))


def upstream_outputs(up, inp: dict) -> tuple[dict, dict]:
    """Upstream outputs, and the noises it drew (to give to ours explicitly)."""
    from Modules.diffusion.sampler import ADPM2Sampler, DiffusionSampler, KarrasSchedule

    up.diffusion.sigma_data = SIGMA_DATA
    net, kd = up.unet, up.diffusion
    sampler = DiffusionSampler(kd, sampler=ADPM2Sampler(),
                               sigma_schedule=KarrasSchedule(sigma_min=0.0001, sigma_max=3.0, rho=9.0),
                               clamp=False)
    b, c = inp["x"].shape[0], inp["x"].shape[-1]
    cond = dict(embedding=inp["embedding"], features=inp["features"])
    out, drawn = {}, {}
    with torch.no_grad():
        out["net_s1"] = net(inp["x"], inp["time"], **cond)
        out["net_s2"] = net(inp["x"], inp["time"], embedding_scale=2.0, **cond)
        # Upstream draws the dropout mask inside the network: replay its draw to learn the mask.
        torch.manual_seed(SEED_SAMPLE)
        out["net_masked"] = net(inp["x"], inp["time"], embedding_mask_proba=MASK_PROBA, **cond)
        torch.manual_seed(SEED_SAMPLE)
        drawn["net_mask"] = torch.bernoulli(torch.full((b, 1, 1), MASK_PROBA)).bool().view(b)
        for s in (1.0, 2.0):
            out[f"denoise_s{s:g}"] = kd.denoise_fn(inp["x_noisy"], sigmas=inp["sigmas"],
                                                   embedding_scale=s, **cond)
        for name, steps, scale in SAMPLE_CASES:
            torch.manual_seed(SEED_SAMPLE)
            noise = torch.randn(b, 1, c)
            out[name] = sampler(noise, num_steps=steps, embedding_scale=scale, **cond)
            torch.manual_seed(SEED_SAMPLE)
            drawn[name] = torch.stack([torch.randn(b, 1, c) for _ in range(steps)])  # noise + steps
        # Stage-2 training's sampling: dropout at every denoiser call, everything from the seed.
        torch.manual_seed(SEED_SAMPLE_MASKED)
        noise = torch.randn(b, 1, c)
        out["sample_masked"] = sampler(noise, num_steps=4, embedding_scale=1,
                                       embedding_mask_proba=MASK_PROBA, **cond)
        # Training loss: KDiffusion directly (upstream's single-speaker path, no dropout) ...
        torch.manual_seed(SEED_LOSS)
        out["loss_plain"] = kd(inp["x0"], **cond)
        torch.manual_seed(SEED_LOSS)
        drawn["loss_sigmas"] = kd.sigma_distribution(num_samples=b)
        drawn["loss_noise"] = torch.randn_like(inp["x0"])
        # ... and the container (upstream's multispeaker path), with dropout.
        torch.manual_seed(SEED_LOSS)
        out["loss_masked"] = up(inp["x0"], embedding_mask_proba=MASK_PROBA, **cond)
    return out, drawn


def report(tag: str, ref: dict, got: dict) -> None:
    for name, value in got.items():
        err = (value - ref[name.removesuffix("_seeded")]).abs().max().item()
        print(f"{tag:28s} {name:24s} max abs err {err:.3e}")


def compare(tag: str, up, ours, inp: dict) -> tuple[dict, dict]:
    up.eval()
    ours.load_state_dict(up.state_dict(), strict=True)
    ours.eval()
    ours.sigma_data = SIGMA_DATA
    ref, drawn = upstream_outputs(up, inp)
    report(tag, ref, our_outputs(ours, inp, drawn, CONSTANTS))
    return ref, drawn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also check the full-size configs")
    args = parser.parse_args()
    fixture = {"config": SMALL, "constants": CONSTANTS}
    for multispeaker in (False, True):
        key = "multi" if multispeaker else "single"
        torch.manual_seed(0)
        up = upstream_small_diffusion(multispeaker)
        ours = build_style_diffusion(multispeaker=multispeaker, **SMALL)
        c = SMALL["style_dim"] * 2
        inp = make_inputs(c, SMALL["bert_hidden"], multispeaker, batch=3, length=9)
        ref, drawn = compare(f"small {key}", up, ours, inp)
        fixture[key] = dict(state_dict=up.state_dict(), inputs=inp, drawn=drawn, outputs=ref)
    out = REPO / "tests" / "fixtures" / "parity_diffusion.pt"
    torch.save(fixture, out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")

    if args.full:
        for config, multispeaker in (("config.yml", False), ("config_libritts.yml", True)):
            up = build_upstream_model(config)[0]["diffusion"]
            ours = build_style_diffusion(multispeaker=multispeaker)
            inp = make_inputs(256, 768, multispeaker, batch=2, length=60)
            compare(f"full {config}", up, ours, inp)
            del up, ours


if __name__ == "__main__":
    main()
