"""Command line: text -> wav with a trained model.

    python -m styletts2.synthesize --checkpoint CKPT [--config GIN] "Text to say." -o out.wav
"""
import argparse
import sys
import time

from .audio.io import check_audio_out, save_wav
from .devices import resolve_device
from .errors import add_debug_flag, run_guarded
from .inference import DEFAULT_STEPS, TorchSynthesizer
from .model import load_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m styletts2.synthesize", description=__doc__.split("\n")[1])
    p.add_argument("text", help="text to synthesize (long text is split into sentences)")
    p.add_argument("-o", "--out", required=True, help="output wav path")
    p.add_argument("--checkpoint", required=True, help="our checkpoint, or upstream's with --config")
    p.add_argument("--config", action="append", default=[],
                   help="model gin file or upstream config.yml (needed for upstream checkpoints; repeatable)")
    p.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    p.add_argument("--reference", help="reference wav for the voice (multispeaker models)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"diffusion steps (default {DEFAULT_STEPS})")
    p.add_argument("--embedding-scale", type=float, help="classifier-free guidance scale (default 1)")
    p.add_argument("--alpha", type=float, help="acoustic style weight vs the reference (default 0.3)")
    p.add_argument("--beta", type=float, help="prosodic style weight vs the reference (default 0.7)")
    p.add_argument("--speed", type=float, help="speaking rate factor (default 1)")
    p.add_argument("--tail-frames", type=int,
                   help="frames added to each sentence's last token (default: 5 single-speaker, 0 multispeaker, "
                        "as upstream's notebooks)")
    p.add_argument("--seed", type=int, help="seed: the same text and seed give the same samples")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-normalize", action="store_true",
                   help="read the text as written (default: numbers, dates, abbreviations... as words)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    return run_guarded("python -m styletts2.synthesize", lambda: _synthesize(args), debug=args.debug)


def _synthesize(args: argparse.Namespace) -> int:
    check_audio_out(args.out)  # before the checkpoint is loaded
    device = resolve_device(args.device)
    model, meta = load_model(args.checkpoint, args.config, args.gin_param)
    synthesizer = TorchSynthesizer(model, steps=args.steps, device=device, normalize=not args.no_normalize,
                                   espeak_version=meta.get("espeak_version"), source=args.checkpoint)
    start = time.perf_counter()
    wave = synthesizer.synthesize(args.text, reference=args.reference, seed=args.seed,
                                  embedding_scale=args.embedding_scale, alpha=args.alpha, beta=args.beta,
                                  speed=args.speed, tail_frames=args.tail_frames)
    elapsed = time.perf_counter() - start
    save_wav(args.out, wave, synthesizer.sample_rate)
    seconds = len(wave) / synthesizer.sample_rate
    print(f"wrote {args.out}: {seconds:.2f} s of audio in {elapsed:.2f} s (RTF {elapsed / seconds:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
