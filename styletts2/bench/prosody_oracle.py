"""Where a trained model's held-out PER is lost: its own prosody against the teacher clip's.

    python bench/prosody_oracle.py --checkpoint runs/learning/stage2/last.pth --teacher runs/learning/teacher

Each of the learning benchmark's held-out sentences is decoded five ways by the same model (torch),
all with the teacher clip's styles (the model's style encoders on that clip) and the same source
noise, and scored by the offline evaluator as the benchmark scores its exports:
- predicted: durations, F0 and energy from the prosody predictor, as synthesis does;
- aligner durations: the model's aligner on the teacher's clip gives the durations; F0 and energy
  predicted over them;
- teacher F0 / teacher energy: one of the two read from the clip by the pitch extractor (and the
  mel), the other predicted;
- teacher prosody: durations, F0 and energy all from the clip: the decoder's reconstruction, the
  floor of what better prosody can give this decoder.
So the rows split the distance from the teacher's PER into what the decoder, the durations and the
F0 / energy predictions each cost. The text is framed as the training data frames it (`[0] +
phonemes + [0]`, the clip with the training run's `SpeechDataset.edge_padding` of silence each
side), so the aligner reads it as it read its training clips; the "predicted" row is thus close to, not the same as, the runtime's.

`--reconstruction-only` decodes the last row alone, which a stage-1 checkpoint can give too (its
prosody predictor, PL-BERT and style diffusion are untrained): how well a stage-1 decoder speaks.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from styletts2.bench.seed_rows import (add_checkpoint_arguments, check_checkpoint_arguments, mean_rows, report,
                                       teacher_clips, write_seed_rows)
from styletts2.data.dataset import EDGE_PADDING

VARIANTS = ("predicted", "aligner durations", "teacher F0", "teacher energy", "teacher prosody")
RECONSTRUCTION = ("teacher prosody",)  # `--reconstruction-only`: what needs no trained prosody predictor
FIELDS = (("PER (text)", "per_text"), ("PER (teacher's transcript)", "per"), ("DNSMOS", "dnsmos_ovrl"))
ORACLE_MODULES = ("text_aligner", "pitch_extractor")  # beyond the inference modules


def load(checkpoint: Path, allow_partial: bool = False):
    """A trained checkpoint with its aligner and pitch extractor, in eval mode, and the edge padding
    its training clips had (`allow_partial`: a stage-1 checkpoint too)."""
    from styletts2.model import INFERENCE_MODULES, load_model

    model, meta = load_model(str(checkpoint), modules=tuple(INFERENCE_MODULES) + ORACLE_MODULES,
                             allow_partial=allow_partial)
    return model.eval(), edge_padding(meta.get("gin_config"))


def edge_padding(gin_config: str | None) -> int:
    """Zero samples each side of a training clip: the run's `SpeechDataset.edge_padding` binding in a
    checkpoint's operative config, else the dataset's default."""
    match = re.search(r"^SpeechDataset\.edge_padding\s*=\s*(\d+)\s*$", gin_config or "", re.M)
    return int(match.group(1)) if match else EDGE_PADDING


def training_inputs(tokens: list[int], wave: np.ndarray,
                    padding: int = EDGE_PADDING) -> tuple[torch.Tensor, torch.Tensor]:
    """Phoneme ids and a 24 kHz clip -> tokens [1, T] framed `[0] + ids + [0]` (the tokenizer's
    `encode_for_training`), and the normalised log-mel [1, n_mels, frames] of the clip with `padding`
    zero samples each side, cut to an even frame count."""
    from styletts2.audio.mel import log_mel_spectrogram

    padded = torch.nn.functional.pad(torch.from_numpy(wave).float(), (padding, padding))
    mel = log_mel_spectrogram(padded[None])
    return torch.tensor([[0, *tokens, 0]]), mel[..., :mel.shape[-1] // 2 * 2]


def aligner_durations(model, tokens: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """Alignment frames per token [T] along the aligner's monotonic path through the clip."""
    from styletts2.train.batch_ops import aligner_attention, monotonic_path

    token_lengths, mel_lengths = torch.tensor([tokens.shape[1]]), torch.tensor([mel.shape[-1]])
    _, attention, align_lengths = aligner_attention(model.text_aligner, mel, mel_lengths, tokens, token_lengths,
                                                    mask_unk=False)
    return monotonic_path(attention, token_lengths, align_lengths)[0].sum(-1).long()


@torch.no_grad()
def decode_variants(model, tokens: torch.Tensor, mel: torch.Tensor, seed: int = 0,
                    variants: tuple[str, ...] = VARIANTS) -> dict[str, np.ndarray]:
    """The decodings of one clip's text named in `variants` (all five by default), each a waveform,
    same styles and noise."""
    from styletts2.modules.masks import length_to_mask
    from styletts2.train.batch_ops import prosody_targets

    lengths = torch.tensor([tokens.shape[1]])
    mask = length_to_mask(lengths)
    t_en = model.text_encoder(tokens, lengths, mask)
    d_en = model.bert_encoder(model.bert(tokens, attention_mask=(~mask).int())).transpose(-1, -2)
    acoustic, prosodic = model.style_encoder(mel[:, None]), model.predictor_encoder(mel[:, None])
    d = model.predictor.encode(d_en, prosodic, lengths, mask)
    f0_clip, energy_clip = prosody_targets(model.pitch_extractor, mel)
    inputs = {}
    for durations in (model.predictor.durations(d)[0], aligner_durations(model, tokens, mel)):
        en, asr = (model.decoder.delay_aligned(x.repeat_interleave(durations, dim=-1)) for x in (d.transpose(-1, -2), t_en))
        f0, energy = model.predictor.prosody(en, prosodic)
        if not inputs:
            inputs["predicted"] = asr, f0, energy
            continue
        frames = f0.shape[-1]  # two per alignment frame: the clip's whole length
        f0_t, energy_t = f0_clip[:, :frames], energy_clip[:, :frames]
        inputs.update({"aligner durations": (asr, f0, energy), "teacher F0": (asr, f0_t, energy),
                       "teacher energy": (asr, f0, energy_t), "teacher prosody": (asr, f0_t, energy_t)})
    waves = {}
    for name in variants:
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the source noise: the same draw for every variant
            waves[name] = model.decoder.trim_tail(model.decoder(*inputs[name], acoustic).reshape(-1)).numpy()
    return waves


def score_variants(model, texts: list[str], teacher: list[Path], seeds: int, threads: int,
                   padding: int = EDGE_PADDING, variants: tuple[str, ...] = VARIANTS) -> list[dict]:
    """Rows {variant, seed, per_text, per, dnsmos_ovrl}: every held-out text decoded each way in
    `variants`, scored (`padding`: see `training_inputs`)."""
    from styletts2.audio.io import load_wav
    from styletts2.bench.learning import score
    from styletts2.evaluate import Evaluator
    from styletts2.inference import TorchSynthesizer

    front_end = TorchSynthesizer(model, device="cpu")  # the model's text front-end (normalizer, phonemizer)
    evaluator = Evaluator(metrics=("per", "dnsmos"), threads=threads)
    rate = int(model.sample_rate)
    rows = []
    for seed in range(seeds):
        waves: dict[str, list[np.ndarray]] = {name: [] for name in variants}
        for text, clip in zip(texts, teacher, strict=True):
            pieces = front_end.text_to_token_pieces(text)
            if len(pieces) != 1:
                raise ValueError(f"prosody_oracle: {text!r} is {len(pieces)} pieces; give sentences of one")
            inputs = training_inputs(pieces[0], load_wav(clip, rate)[0], padding)
            for name, wave in decode_variants(model, *inputs, seed=seed, variants=variants).items():
                waves[name].append(wave)
        for name in variants:
            scores = score(evaluator, waves[name], rate, texts, teacher)
            rows.append({"variant": name, "seed": seed, **{key: scores.get(key) for _, key in FIELDS}})
            print(f"  {name}, seed {seed}: " + ", ".join(f"{label} {rows[-1][key]:.3f}" for label, key in FIELDS),
                  flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Mean (and spread over seeds) per variant, and each variant's PER (text) less the predicted row's."""
    lines = ["| variant | " + " | ".join(label for label, _ in FIELDS) + " | PER (text) - predicted |",
             "|---" * (len(FIELDS) + 2) + "|"]
    summary = mean_rows(rows, "variant", FIELDS)
    base = summary["predicted"][1]["per_text"] if "predicted" in summary else None
    for name, (cells, means) in summary.items():
        gain = "" if base is None else f"{means['per_text'] - base:+.3f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


def write_results(path: Path, command: str, rows: list[dict], summary: str, machine: dict) -> None:
    """The rows as JSON at `path`, and a markdown copy (command, machine, table, every seed) beside it."""
    write_seed_rows(path, command, rows, summary, machine, "variant", FIELDS)


def main(argv: list[str] | None = None) -> int:
    from styletts2.checkpoint import CheckpointError
    from styletts2.data.make_corpus import OOD_SENTENCES

    parser = argparse.ArgumentParser(prog="bench/prosody_oracle.py", description=__doc__.split("\n")[0])
    add_checkpoint_arguments(parser, seeds=2, seeds_help="source-noise seeds")
    parser.add_argument("--json", type=Path, help="write the rows and the table here (and a .md beside it)")
    parser.add_argument("--reconstruction-only", action="store_true",
                        help="decode the 'teacher prosody' row alone (the decoder's reconstruction); takes a "
                             "stage-1 checkpoint too")
    args = parser.parse_args(argv)
    check_checkpoint_arguments(parser, args)
    texts = list(OOD_SENTENCES)
    try:
        teacher = teacher_clips(args.teacher, len(texts))
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    try:
        model, padding = load(args.checkpoint, allow_partial=args.reconstruction_only)
    except CheckpointError as err:  # the hint only where the option would help
        hint = "" if args.reconstruction_only else \
            " (of a stage-1 checkpoint, --reconstruction-only scores the decoder)"
        parser.error(f"{err}{hint}")
    variants = RECONSTRUCTION if args.reconstruction_only else VARIANTS
    rows = score_variants(model, texts, teacher, args.seeds, args.threads, padding, variants)
    report("bench/prosody_oracle.py", argv, args, rows, table(rows), write_results)
    return 0
