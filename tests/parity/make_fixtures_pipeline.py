"""Parity of the whole torch synthesis path (tokens -> waveform) with upstream's inference notebooks.

The modules are each checked on their own (the other make_fixtures_* scripts); this checks their
composition: style sampling, the [acoustic | prosodic] split, reference mixing, durations and the
alignment expansion, F0/N, the HiFi-GAN one-frame delay and tail trim. Full-size models with our
random initialisation under a fixed seed (the test rebuilds it, so no weights are stored; per-key
checksums catch a changed initialisation); the decoders' source noise is switched off on both sides
and the sampler's noises are given.

    STYLETTS2_UPSTREAM=/work/upstream python tests/parity/make_fixtures_pipeline.py [--libritts]

writes tests/fixtures/parity_pipeline.pt (LJSpeech: without a tail, and with the LJSpeech notebook's
5 frames on the last token) and prints the errors; --libritts also runs the multispeaker model
(slow; printed only). The helpers above `# --- upstream side ---` are imported by
the test.
"""
import argparse
import contextlib
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "parity"))
from make_fixtures_aux import state_checksums  # noqa: E402

from styletts2.inference import TorchSynthesizer  # noqa: E402
from styletts2.model import INFERENCE_MODULES, build_model_from_config  # noqa: E402
from styletts2.text.tokenizer import Tokenizer  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "parity_pipeline.pt"
# A short phoneme sequence, without the leading pad.
TOKENS = Tokenizer().encode("ðɪs ɪz ɐ tˈɛst .", add_bos=False, add_eos=False)
STEPS = 5
SEED = 2024


def build_ours(config: str):
    torch.manual_seed(SEED)
    model = build_model_from_config([str(REPO / f"gin/model/{config}.gin")], modules=INFERENCE_MODULES)
    weights = {name: module.state_dict() for name, module in model.nets.items()}
    model.decoder.deterministic = True
    return model.eval(), weights


def noises(style_channels: int):
    gen = torch.Generator().manual_seed(SEED)
    noise = torch.randn(1, 1, style_channels, generator=gen)
    step_noises = torch.randn(STEPS - 1, 1, 1, style_channels, generator=gen)
    # A reference clip's style (the style encoders are checked on their own; at random init their
    # un-iterated spectral norms give styles far out of range).
    reference = torch.randn(1, style_channels, generator=gen) * 0.5
    return noise, step_noises, reference


def run_ours(model, noise, step_noises, reference=None, alpha=0.3, beta=0.7, tail_frames=0):
    """The synthesizer's one piece over upstream's exact path (`styletts2.fidelity`), the sampler's
    noises given; tail_frames None: the synthesizer's default for the model. Tensors back."""
    synthesizer = TorchSynthesizer(model, steps=STEPS, phonemizer=lambda text: "", device="cpu")
    options = synthesizer.options.replace(alpha=alpha, beta=beta, tail_frames=tail_frames)
    piece = synthesizer.synthesize_tokens(TOKENS, options, None, 0, None if reference is None else reference.numpy(),
                                          noises=(noise.numpy(), step_noises.numpy()))
    return torch.from_numpy(piece.wave), torch.from_numpy(piece.durations), torch.from_numpy(piece.style)


# --- upstream side ---------------------------------------------------------------------------

@contextlib.contextmanager
def patched_randomness(step_noises):
    """Upstream's sampler draws its step noises with randn_like and the decoder draws source noise
    with rand/randn_like: hand the sampler our step noises in order and give the decoder zeros."""
    queue = list(step_noises)
    real_randn_like, real_rand = torch.randn_like, torch.rand

    def randn_like(x, *a, **k):
        if queue and x.shape == queue[0].shape:
            return queue.pop(0).clone()
        return torch.zeros_like(x)

    torch.randn_like = randn_like
    torch.rand = lambda *a, **k: torch.zeros(*a, **{kk: v for kk, v in k.items() if kk in ("device", "dtype")})
    try:
        yield queue
    finally:
        torch.randn_like, torch.rand = real_randn_like, real_rand


def run_upstream(nets, noise, step_noises, ref_s=None, alpha=0.3, beta=0.7, hifigan=False, tail_frames=0):
    """The notebooks' `inference` (LJSpeech) / `inference` (LibriTTS) steps. The LJSpeech notebook's
    `inference` adds 5 frames to the last token (`tail_frames=5`); its long-form `LFinference` and
    the LibriTTS notebook add none."""
    from Modules.diffusion.sampler import ADPM2Sampler, DiffusionSampler, KarrasSchedule

    sampler = DiffusionSampler(nets.diffusion.diffusion, sampler=ADPM2Sampler(),
                               sigma_schedule=KarrasSchedule(sigma_min=0.0001, sigma_max=3.0, rho=9.0), clamp=False)
    tokens = torch.LongTensor([[0, *TOKENS]])
    lengths = torch.LongTensor([tokens.shape[-1]])
    mask = torch.arange(lengths.max()).unsqueeze(0) + 1 > lengths.unsqueeze(1)
    with torch.no_grad(), patched_randomness(list(step_noises)) as queue:
        t_en = nets.text_encoder(tokens, lengths, mask)
        bert = nets.bert(tokens, attention_mask=(~mask).int()).last_hidden_state
        d_en = nets.bert_encoder(bert).transpose(-1, -2)
        kwargs = {} if ref_s is None else {"features": ref_s}
        style = sampler(noise, embedding=bert, num_steps=STEPS, embedding_scale=1, **kwargs).squeeze(1)
        assert not queue, "upstream drew fewer step noises than expected"
        s, ref = style[:, 128:], style[:, :128]
        if ref_s is not None:
            ref = alpha * ref + (1 - alpha) * ref_s[:, :128]
            s = beta * s + (1 - beta) * ref_s[:, 128:]
        d = nets.predictor.text_encoder(d_en, s, lengths, mask)
        x, _ = nets.predictor.lstm(d)
        duration = torch.sigmoid(nets.predictor.duration_proj(x)).sum(axis=-1)
        pred_dur = torch.round(duration.squeeze()).clamp(min=1)
        pred_dur[-1] += tail_frames
        aln = torch.zeros(int(lengths), int(pred_dur.sum()))
        frame = 0
        for i in range(aln.size(0)):
            aln[i, frame:frame + int(pred_dur[i])] = 1
            frame += int(pred_dur[i])
        en = d.transpose(-1, -2) @ aln.unsqueeze(0)
        asr = t_en @ aln.unsqueeze(0)
        if hifigan:
            en = torch.cat([en[..., :1], en[..., :-1]], -1)
            asr = torch.cat([asr[..., :1], asr[..., :-1]], -1)
        F0, N = nets.predictor.F0Ntrain(en, s)
        wave = nets.decoder(asr, F0, N, ref.squeeze().unsqueeze(0)).squeeze()
    if hifigan:
        wave = wave[:-50]
    return wave, pred_dur.long(), torch.cat([ref, s], -1)


def compare(config: str, upstream_config: str, multispeaker: bool, tail_frames: int = 0):
    from upstream_harness import build_upstream_model

    model, weights = build_ours(config)
    nets, _ = build_upstream_model(upstream_config)
    for name in model.nets:
        getattr(nets, name).load_state_dict(weights[name])
        getattr(nets, name).eval()
    noise, step_noises, reference = noises(model.diffusion.unet.channels)
    reference = reference if multispeaker else None
    ours = run_ours(model, noise, step_noises, reference, tail_frames=tail_frames)
    theirs = run_upstream(nets, noise, step_noises, reference, hifigan=multispeaker, tail_frames=tail_frames)
    print(f"{config}, tail {tail_frames}: {len(ours[0])} samples, durations equal: {torch.equal(ours[1], theirs[1])}, "
          f"style max abs err {(ours[2] - theirs[2]).abs().max():.3e}, "
          f"waveform max abs err {(ours[0] - theirs[0]).abs().max():.3e}")
    return model, weights, noise, step_noises, theirs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--libritts", action="store_true", help="also run the multispeaker model (slow)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    _, weights, noise, step_noises, theirs = compare("ljspeech", "config.yml", multispeaker=False)
    notebook = compare("ljspeech", "config.yml", multispeaker=False, tail_frames=5)[4]
    torch.save({"tokens": TOKENS, "noise": noise, "step_noises": step_noises, "wave": theirs[0],
                "durations": theirs[1], "style": theirs[2],
                "notebook": {"tail_frames": 5, "wave": notebook[0], "durations": notebook[1]},
                "checksums": {name: state_checksums(w) for name, w in weights.items()}}, FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size / 1e6:.2f} MB)")
    if args.libritts:
        compare("libritts", "config_libritts.yml", multispeaker=True)


if __name__ == "__main__":
    main()
