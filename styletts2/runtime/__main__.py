"""Command line: text -> wav with an exported model on onnxruntime (no torch).

    python -m styletts2.runtime "Hello there." -m exported/ljspeech -o hello.wav [--seed 0] [--stream]
    python -m styletts2.runtime -f chapter.txt -m exported/ljspeech -o chapter.wav --stream   # '-f -': stdin

The number of diffusion steps is fixed by the export (model.json's diffusion_steps).
"""
import argparse
import sys
import time
import warnings

import numpy as np

from ..audio.io import check_audio_out, save_wav, wav_writer
from ..errors import UserError, add_debug_flag, run_guarded
from .synthesizer import Synthesizer


def _write_streamed(synth: Synthesizer, args: argparse.Namespace, knobs: dict) -> int:
    """Write each sentence to the wav file as soon as it is synthesized; returns the sample count."""
    start, written, clipped = time.perf_counter(), 0, 0
    # stream() checks text, reference and options before it returns: a bad one writes nothing
    chunks = synth.stream(args.text, args.reference, args.seed, **knobs)
    with wav_writer(args.out, synth.sample_rate) as out:
        for index, chunk in enumerate(chunks):
            clipped += int(np.count_nonzero(np.abs(chunk) > 1.0))
            out.write(np.clip(chunk, -1.0, 1.0))  # PCM-16 cannot hold more; clipping is counted
            written += len(chunk)
            print(f"  piece {index + 1}: {len(chunk) / synth.sample_rate:.2f} s of audio, "
                  f"written {time.perf_counter() - start:.2f} s after the start", flush=True)
    if clipped:
        warnings.warn(f"{clipped} samples beyond [-1, 1] clipped while writing {args.out}", stacklevel=1)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m styletts2.runtime", description=__doc__.split("\n")[0])
    p.add_argument("text", nargs="?", help="text to synthesize (long text is split into sentences)")
    p.add_argument("-f", "--text-file", help="read the text from this UTF-8 file instead ('-': standard input)")
    p.add_argument("-m", "--model", required=True, help="exported model directory (export/to_onnx.py)")
    p.add_argument("-o", "--out", required=True, help="output wav (or .flac) path, 16-bit PCM")
    p.add_argument("--reference", help="reference wav for the voice (required by multispeaker models)")
    p.add_argument("--seed", type=int, help="the same text, seed and knobs give the same audio")
    p.add_argument("--speed", type=float, help="speaking rate factor (default: model.json's, 1)")
    p.add_argument("--embedding-scale", type=float, help="classifier-free guidance scale (default 1)")
    p.add_argument("--alpha", type=float, help="sampled vs reference acoustic style weight (default 0.3)")
    p.add_argument("--beta", type=float, help="sampled vs reference prosodic style weight (default 0.7)")
    p.add_argument("--blend", type=float, help="long-form weight of the previous sentence's style (default 0.7)")
    p.add_argument("--tail-frames", type=int, help="frames added to each sentence's last token "
                                                   "(default: model.json's, the notebooks' 5 or 0)")
    p.add_argument("--stream", action="store_true", help="write each sentence as soon as it is synthesized")
    p.add_argument("--provider", choices=["cpu", "cuda"], help="execution provider (default: cuda if available)")
    p.add_argument("--threads", type=int, help="intra-op threads per onnxruntime session")
    p.add_argument("--no-normalize", action="store_true",
                   help="read the text as written (default: numbers, dates, abbreviations... as words, "
                        "with the normalizer model.json records)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    return run_guarded("python -m styletts2.runtime", lambda: _synthesize(args), debug=args.debug)


def _text(args: argparse.Namespace) -> str:
    """The text argument, or the text file's contents; exactly one of them."""
    if args.text is None and args.text_file is None:
        raise UserError("no text: give it as an argument, or a file with -f FILE")
    if args.text is not None and args.text_file is not None:
        raise UserError("give the text as an argument or with -f FILE, not both")
    if args.text is not None:
        return args.text
    source = "standard input" if args.text_file == "-" else args.text_file
    try:  # utf-8-sig: a byte-order mark (Windows editors write one) is not text to speak
        if args.text_file == "-":
            return sys.stdin.buffer.read().decode("utf-8-sig")
        with open(args.text_file, "rb") as handle:
            return handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = err.object[err.start:err.start + 1]
        raise UserError(f"{source} is not UTF-8 text (byte {err.start}: {bad!r})") from None


def _synthesize(args: argparse.Namespace) -> int:
    knobs = dict(speed=args.speed, embedding_scale=args.embedding_scale, alpha=args.alpha, beta=args.beta,
                 blend=args.blend, tail_frames=args.tail_frames)

    args.text = _text(args)
    check_audio_out(args.out)  # before the model is opened and the text synthesized
    synth = Synthesizer(args.model, providers=args.provider, threads=args.threads, normalize=not args.no_normalize)
    start = time.perf_counter()
    if args.stream:
        samples = _write_streamed(synth, args, knobs)
    else:
        wave = synth.synthesize(args.text, args.reference, args.seed, **knobs)
        save_wav(args.out, wave, synth.sample_rate)
        samples = len(wave)
    elapsed = time.perf_counter() - start
    seconds = samples / synth.sample_rate
    print(f"wrote {args.out}: {seconds:.2f} s of audio in {elapsed:.2f} s (RTF {elapsed / seconds:.3f}) "
          f"on {synth.executor.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
