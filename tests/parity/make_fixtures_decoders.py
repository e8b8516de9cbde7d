"""Regenerate tests/fixtures/parity_decoders.pt from upstream's decoders (run by hand):

    STYLETTS2_UPSTREAM=/work/upstream python tests/parity/make_fixtures_decoders.py [--full FRAMES]

Small iSTFTNet and HiFi-GAN decoders are built from upstream's own classes, their outputs recorded
for three noise settings, and the weights, inputs and outputs saved. `--full` also compares our
decoders with upstream's at full LJSpeech / LibriTTS size (built by upstream's build_model) on
FRAMES alignment frames and prints the errors (nothing is saved).

Noise. Upstream draws inside its forward: torch.rand (initial harmonic phases), then
torch.randn_like twice (the sines' additive noise, then the source module's unused noise branch).
`upstream_draws` replaces those functions for one call: rand -> zeros, the first randn_like -> a
given standard-normal tensor (or zeros), later ones -> zeros. It checks the draws happen in that
order with the expected shapes, so a change in upstream's sampling would be noticed rather than
silently compared. Ours gets the same tensor through `noise=` with `deterministic=True`. A third
setting seeds both sides identically and lets both draw (same order and shapes, so same numbers).
"""
import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_harness import build_upstream_model, import_upstream  # noqa: E402

from styletts2.modules.hifigan import HiFiGANDecoder  # noqa: E402
from styletts2.modules.istftnet import ISTFTNetDecoder  # noqa: E402
from styletts2.modules.norms import weight_norm  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "parity_decoders.pt"
SEED = 1234

# Small widths keep the fixture under ~1.5 MB; the upsampling structure (rates, kernels, n_fft,
# hop, 600 samples per frame) is the real one.
SMALL_COMMON = dict(dim_in=32, style_dim=16, upsample_initial_channel=16, hidden_dim=32, asr_res_dim=8,
                    resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]])
SMALL = {
    "istftnet": dict(SMALL_COMMON, upsample_rates=[10, 6], upsample_kernel_sizes=[20, 12],
                     gen_istft_n_fft=20, gen_istft_hop_size=5),
    "hifigan": dict(SMALL_COMMON, upsample_rates=[10, 5, 3, 2], upsample_kernel_sizes=[20, 10, 6, 4]),
}
OURS = {"istftnet": ISTFTNetDecoder, "hifigan": HiFiGANDecoder}


@contextlib.contextmanager
def upstream_draws(noise: torch.Tensor | None):
    calls = []
    rand, randn_like = torch.rand, torch.randn_like

    def fake_rand(*size, **kwargs):
        calls.append(("rand", tuple(size)))
        return torch.zeros(*size, **kwargs)

    def fake_randn_like(t, **kwargs):
        calls.append(("randn_like", tuple(t.shape)))
        if len(calls) == 2 and noise is not None:
            if noise.shape != t.shape:
                raise AssertionError(f"upstream draws sine noise of shape {tuple(t.shape)}, given {tuple(noise.shape)}")
            return noise.clone()
        return torch.zeros_like(t, **kwargs)

    torch.rand, torch.randn_like = fake_rand, fake_randn_like
    try:
        yield calls
    finally:
        torch.rand, torch.randn_like = rand, randn_like
    kinds = [c[0] for c in calls]
    if kinds != ["rand", "randn_like", "randn_like"]:
        raise AssertionError(f"unexpected upstream draw sequence {calls}")


def small_upstream_decoder(kind: str, cfg: dict) -> nn.Module:
    """Upstream's Decoder (its forward, its blocks and generator) at small widths: its __init__
    hard-codes the 1024/64/512 widths, so the same parts are assembled here at cfg's widths."""
    import_upstream()
    if kind == "istftnet":
        from Modules.istftnet import AdainResBlk1d, Decoder, Generator
        gen_args = (cfg["gen_istft_n_fft"], cfg["gen_istft_hop_size"])
    else:
        from Modules.hifigan import AdainResBlk1d, Decoder, Generator
        gen_args = ()
    style, hidden, res = cfg["style_dim"], cfg["hidden_dim"], cfg["asr_res_dim"]
    dec = Decoder.__new__(Decoder)
    nn.Module.__init__(dec)
    dec.decode = nn.ModuleList()
    dec.encode = AdainResBlk1d(cfg["dim_in"] + 2, hidden, style)
    for _ in range(3):
        dec.decode.append(AdainResBlk1d(hidden + 2 + res, hidden, style))
    dec.decode.append(AdainResBlk1d(hidden + 2 + res, cfg["upsample_initial_channel"], style, upsample=True))
    dec.F0_conv = weight_norm(nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1))
    dec.N_conv = weight_norm(nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1))
    dec.asr_res = nn.Sequential(weight_norm(nn.Conv1d(cfg["dim_in"], res, kernel_size=1)))
    dec.generator = Generator(style, cfg["resblock_kernel_sizes"], cfg["upsample_rates"],
                              cfg["upsample_initial_channel"], cfg["resblock_dilation_sizes"],
                              cfg["upsample_kernel_sizes"], *gen_args)
    return dec


def perturb_snake_alphas(module: nn.Module, generator: torch.Generator) -> None:
    """Snake alphas start at 1; spread them so the parity check exercises them."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if ".alpha" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=generator))


def tame_hifigan_output(module: nn.Module) -> None:
    """Random HiFi-GAN weights drive the final tanh into saturation, where errors would hide."""
    with torch.no_grad():
        module.generator.conv_post.weight_g.mul_(0.25)


def make_inputs(batch: int, frames: int, dim_in: int, style_dim: int, generator: torch.Generator) -> dict:
    """Aligned features, a plausible F0 contour (voiced 90-260 Hz with unvoiced gaps), energy, style."""
    t = torch.linspace(0, 1, 2 * frames)
    f0 = torch.stack([150 + 60 * torch.sin(2 * math.pi * (1.5 + b) * t) + 40 * b for b in range(batch)])
    f0 = f0 + 5 * torch.randn(f0.shape, generator=generator)
    f0[:, : 2 * frames // 8] = 0  # leading silence
    f0[:, frames: frames + frames // 4] = 0  # an unvoiced stretch
    return {
        "asr": torch.randn(batch, dim_in, frames, generator=generator),
        "F0_curve": f0,
        "N": torch.randn(batch, 2 * frames, generator=generator),
        "s": torch.randn(batch, style_dim, generator=generator),
    }


def upstream_outputs(upstream: nn.Module, inputs: dict, noise: torch.Tensor) -> dict:
    args = (inputs["asr"], inputs["F0_curve"], inputs["N"], inputs["s"])
    out = {}
    with torch.no_grad():
        with upstream_draws(None):
            out["zero_noise"] = upstream(*args)
        with upstream_draws(noise):
            out["given_noise"] = upstream(*args)
        torch.manual_seed(SEED)
        out["seeded"] = upstream(*args)
    return out


def our_outputs(ours: nn.Module, inputs: dict, noise: torch.Tensor) -> dict:
    args = (inputs["asr"], inputs["F0_curve"], inputs["N"], inputs["s"])
    out = {}
    with torch.no_grad():
        ours.deterministic = True
        out["zero_noise"] = ours(*args)
        out["given_noise"] = ours(*args, noise=noise)
        ours.deterministic = False
        torch.manual_seed(SEED)
        out["seeded"] = ours(*args)
    return out


def compare(kind: str, upstream: nn.Module, ours: nn.Module, inputs: dict, noise: torch.Tensor) -> dict:
    ours.load_state_dict(upstream.state_dict(), strict=True)
    upstream.eval()
    ours.eval()
    theirs = upstream_outputs(upstream, inputs, noise)
    mine = our_outputs(ours, inputs, noise)
    for name in theirs:
        err = (theirs[name] - mine[name]).abs().max().item()
        print(f"{kind:9s} {name:12s} shape {tuple(theirs[name].shape)} max|ours - upstream| = {err:.3e} "
              f"(max |wav| {theirs[name].abs().max().item():.3f})")
    return theirs


def make_small_fixture() -> None:
    gen = torch.Generator().manual_seed(0)
    inputs = make_inputs(batch=2, frames=6, dim_in=SMALL_COMMON["dim_in"], style_dim=SMALL_COMMON["style_dim"],
                         generator=gen)
    samples = inputs["F0_curve"].shape[1] * 300
    noise = torch.randn(2, samples, 9, generator=gen)
    fixture = {"inputs": inputs, "noise": noise, "seed": SEED, "decoders": {}}
    for kind, cfg in SMALL.items():
        torch.manual_seed(1)
        upstream = small_upstream_decoder(kind, cfg)
        perturb_snake_alphas(upstream, gen)
        if kind == "hifigan":
            tame_hifigan_output(upstream)
        ours = OURS[kind](**cfg)
        outputs = compare(kind, upstream, ours, inputs, noise)
        fixture["decoders"][kind] = {"config": cfg, "state_dict": upstream.state_dict(), "outputs": outputs}
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1e6:.2f} MB)")


def full_size_parity(frames: int) -> None:
    for kind, config in (("istftnet", "config.yml"), ("hifigan", "config_libritts.yml")):
        model, cfg = build_upstream_model(config)
        upstream = model.decoder
        params = cfg["model_params"]
        dec = params["decoder"]
        kwargs = dict(dim_in=params["hidden_dim"], style_dim=params["style_dim"], dim_out=params["n_mels"],
                      **{k: v for k, v in dec.items() if k != "type"})
        ours = OURS[kind](**kwargs)
        del model
        gen = torch.Generator().manual_seed(0)
        perturb_snake_alphas(upstream, gen)
        inputs = make_inputs(batch=1, frames=frames, dim_in=params["hidden_dim"], style_dim=params["style_dim"],
                             generator=gen)
        noise = torch.randn(1, 2 * frames * 300, 9, generator=gen)
        start = time.time()
        compare(kind, upstream, ours, inputs, noise)
        print(f"{kind}: {frames} frames ({frames * 600 / 24000:.2f} s of audio), {time.time() - start:.0f} s")
        if kind == "istftnet":
            with torch.no_grad():
                ours.deterministic = True
                args = (inputs["asr"], inputs["F0_curve"], inputs["N"], inputs["s"])
                ref = ours(*args)
                ours.stft_backend = "conv"
                err = (ours(*args) - ref).abs().max().item()
            print(f"istftnet  stft_backend conv vs torch (ours, zero noise): max abs diff {err:.3e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", type=int, metavar="FRAMES", help="also check full-size decoders on FRAMES frames")
    parser.add_argument("--no-fixture", action="store_true", help="do not rewrite the small fixture")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if not args.no_fixture:
        make_small_fixture()
    if args.full:
        full_size_parity(args.full)


if __name__ == "__main__":
    main()
