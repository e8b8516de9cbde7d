"""Regenerate tests/fixtures/parity_text_modules.pt and report parity at full LJSpeech size.

    STYLETTS2_UPSTREAM=/work/upstream python tests/parity/make_fixtures_text_modules.py [--full]

Builds upstream's text encoder, PL-BERT, both style encoders and the prosody predictor as its
`build_model` does, perturbs their random weights (so unit norms and zero biases do not hide
mistakes), runs them on random inputs and saves config, weights, inputs and outputs for the small
config. Upstream's inference path is the one of Demo/Inference_LJSpeech.ipynb. With --full the
same comparison runs at the LJSpeech config size and only prints the errors.
"""
import argparse
import os
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).parent)]

from tests.test_parity_text_modules import (FIXTURE, alignment_from_durations, build_ours,  # noqa: E402
                                            run_inference_helpers, run_modules)
from styletts2.modules.masks import length_to_mask  # noqa: E402
from upstream_harness import import_upstream, upstream_path  # noqa: E402

SMALL = dict(n_token=178, hidden_dim=16, n_layer=2, style_dim=8, dim_in=4, max_dur=10, dropout=0.2,
             bert=dict(vocab_size=178, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=64, num_hidden_layers=2, dropout=0.1))
# (tokens in the longest utterance, mel frames) per size; 65 frames is the style encoder's minimum
SMALL_SHAPES = dict(tokens=12, frames=67)
FULL_SHAPES = dict(tokens=48, frames=157)


def full_config() -> dict:
    root = Path(upstream_path())
    params = yaml.safe_load((root / "Configs" / "config.yml").read_text())["model_params"]
    bert = yaml.safe_load((root / "Utils" / "PLBERT" / "config.yml").read_text())["model_params"]
    keys = ("n_token", "hidden_dim", "n_layer", "style_dim", "dim_in", "max_dur", "dropout")
    return {**{k: params[k] for k in keys}, "bert": bert}


def build_upstream(config: dict) -> dict[str, torch.nn.Module]:
    models = import_upstream()
    from transformers import AlbertConfig
    from Utils.PLBERT.util import CustomAlbert

    style = dict(dim_in=config["dim_in"], style_dim=config["style_dim"], max_conv_dim=config["hidden_dim"])
    return {
        "text_encoder": models.TextEncoder(channels=config["hidden_dim"], kernel_size=5,
                                           depth=config["n_layer"], n_symbols=config["n_token"]),
        "bert": CustomAlbert(AlbertConfig(**config["bert"])),
        "style_encoder": models.StyleEncoder(**style),
        "predictor_encoder": models.StyleEncoder(**style),
        "predictor": models.ProsodyPredictor(style_dim=config["style_dim"], d_hid=config["hidden_dim"],
                                             nlayers=config["n_layer"], max_dur=config["max_dur"],
                                             dropout=config["dropout"]),
    }


def make_inputs(config: dict, shapes: dict) -> dict:
    models = import_upstream()
    T = shapes["tokens"]
    lengths = torch.tensor([T, T * 2 // 3])
    mask = length_to_mask(lengths)
    # upstream's helper never reads `self`
    assert torch.equal(mask, models.TextEncoder.length_to_mask(None, lengths))
    tokens = torch.randint(1, config["n_token"], (2, T)).masked_fill(mask, 0)
    durations = torch.randint(1, 5, (2, T)).masked_fill(mask, 0)
    frames = int(durations.sum(1).max())
    alignment = torch.zeros(2, T, frames)
    for b in range(2):
        aln = alignment_from_durations(durations[b, :lengths[b]])[0]
        alignment[b, :aln.shape[0], :aln.shape[1]] = aln
    return {
        "tokens": tokens, "lengths": lengths, "mask": mask, "alignment": alignment,
        "d_en": torch.randn(2, config["hidden_dim"], T),
        "style": torch.randn(2, config["style_dim"]),
        "mel": torch.randn(2, 1, 80, shapes["frames"]),
        "mel_min": torch.randn(1, 1, 80, 65),
    }


def notebook_inference(predictor, inputs: dict) -> dict[str, torch.Tensor]:
    """Upstream's Demo/Inference_LJSpeech.ipynb prosody steps on the first utterance."""
    d_en, s, lengths, mask = (inputs["d_en"][:1], inputs["style"][:1], inputs["lengths"][:1],
                              inputs["mask"][:1])
    d = predictor.text_encoder(d_en, s, lengths, mask)
    x, _ = predictor.lstm(d)
    duration = torch.sigmoid(predictor.duration_proj(x)).sum(axis=-1)
    pred_dur = torch.round(duration.squeeze()).clamp(min=1)
    aln = torch.zeros(int(lengths), int(pred_dur.sum()))
    frame = 0
    for i in range(aln.size(0)):
        aln[i, frame:frame + int(pred_dur[i])] = 1
        frame += int(pred_dur[i])
    en = d.transpose(-1, -2) @ aln.unsqueeze(0)
    f0, n = predictor.F0Ntrain(en, s)
    return {"d": d, "durations": pred_dur, "F0": f0, "N": n}


def compare(config: dict, shapes: dict, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    theirs = build_upstream(config)
    with torch.no_grad():
        for module in theirs.values():
            for p in module.parameters():
                p.add_(0.05 * torch.randn_like(p))
    ours = build_ours(config)
    for name in theirs:
        ours[name].load_state_dict(theirs[name].state_dict(), strict=True)
        theirs[name].eval()
        ours[name].eval()
    inputs = make_inputs(config, shapes)
    with torch.no_grad():
        expected = run_modules(theirs, inputs)
        got = run_modules(ours, inputs)
        inference_expected = notebook_inference(theirs["predictor"], inputs)
        inference_got = run_inference_helpers(ours["predictor"], inputs)
    for name in expected:
        print(f"  {name:18s} {tuple(expected[name].shape)!s:22s} max abs err "
              f"{(got[name] - expected[name]).abs().max().item():.3g}")
    same = torch.equal(inference_got["durations"], inference_expected["durations"].long())
    print(f"  inference durations identical: {same} (total {int(inference_expected['durations'].sum())} frames)")
    for name in ("d", "F0", "N"):
        err = (inference_got[name] - inference_expected[name]).abs().max().item()
        print(f"  inference {name:8s} {tuple(inference_expected[name].shape)!s:22s} max abs err {err:.3g}")
    return {"config": config, "state": {k: m.state_dict() for k, m in theirs.items()}, "inputs": inputs,
            "expected": expected, "inference_expected": inference_expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also compare at full LJSpeech size")
    args = parser.parse_args()
    if upstream_path() is None:
        sys.exit("set STYLETTS2_UPSTREAM to an upstream StyleTTS2 checkout")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if args.full:
        print("full LJSpeech size:")
        compare(full_config(), FULL_SHAPES)
    print("small config (fixture):")
    data = compare(SMALL, SMALL_SHAPES)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
