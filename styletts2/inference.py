"""Torch synthesis: text -> phonemes -> tokens -> style -> durations -> F0/N -> 24 kHz waveform.

The steps follow upstream's inference notebooks (LJSpeech and LibriTTS):
- style: the diffusion sampler (ADPM2, Karras sigmas) conditioned on PL-BERT's embedding and, for
  multispeaker models, on a reference clip's style; the reference is then mixed in with `alpha`
  (acoustic half) and `beta` (prosodic half);
- durations: round(sum(sigmoid(duration logits)) / speed), at least one frame per token, and
  `tail_frames` more on the last token (the LJSpeech notebook's `pred_dur[-1] += 5`);
- the decoder renders the text encoding expanded by those durations, with the predicted F0 and energy.
Text is normalized first (numbers, dates, abbreviations... as words; `normalize=False` reads it as
written) with the normalizer the model's gin config binds (`corpus_normalizer`, the one its
training text went through). Long text is split into sentences (and, past PL-BERT's 512
positions, into windows at word boundaries); each piece's sampled style is blended with the
previous one (`blend` of the previous).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import gin
import numpy as np
import torch

from .audio.io import load_wav
from .audio.mel import log_mel_spectrogram
from .audio.trim import trim_silence
from .data.readers import corpus_normalizer
from .modules.masks import length_to_mask
from .modules.prosody_predictor import add_tail_frames
from .synthesis_limits import SILENT_REFERENCE_PEAK, check_options, check_piece_frames, default_tail_frames
from .text.espeak import LANGUAGE
from .text.pieces import text_to_token_pieces
from .text.sentences import BERT_MAX_POSITIONS
from .text.tokenizer import Tokenizer


@gin.configurable("SynthesisOptions")  # the gin name it has always had
@dataclass
class TorchSynthesisOptions:
    """Knobs of one synthesis call (all bindable by gin, all overridable per call)."""

    diffusion_steps: int = 5        # sampler schedule length: num_steps - 1 ADPM2 iterations
    embedding_scale: float = 1.0    # classifier-free guidance; > 1 doubles the denoiser calls
    alpha: float = 0.3              # multispeaker: weight of the sampled acoustic style vs the reference
    beta: float = 0.7               # multispeaker: weight of the sampled prosodic style vs the reference
    speed: float = 1.0              # > 1 speaks faster (durations are divided by it)
    blend: float = 0.7              # long-form: weight of the previous piece's style
    trim_reference_db: float = 30.0  # reference clips are trimmed of silence below this (audio/trim.py)
    tail_frames: int | None = None  # frames added to each piece's last token; None: the notebooks'
                                    # value for the model (5 single-speaker, 0 multispeaker)

    def replace(self, **overrides) -> TorchSynthesisOptions:
        """A copy with the non-None `overrides`, every option checked against its documented range
        (`styletts2.synthesis_limits.OPTION_RANGES`; ValueError naming the option)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown synthesis option(s) {sorted(unknown)}")
        options = dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
        check_options(options)
        return options


@dataclass
class PieceResult:
    wave: torch.Tensor        # [samples]
    style: torch.Tensor       # [1, 2 * style_dim], after reference mixing and blending
    durations: torch.Tensor   # [tokens] frames per token


class TorchSynthesizer:
    """Synthesis with a StyleTTS2 model (`styletts2.model.StyleTTS2`, inference modules present).

    normalize: normalize text before phonemizing it (see the module docstring); False reads it as
        written. `normalizer` is the normalizer in use (None: none).
    """

    def __init__(self, model, phonemizer=None, options: TorchSynthesisOptions | None = None,
                 device: str | torch.device | None = None, normalize: bool = True):
        missing = [n for n in ("bert", "bert_encoder", "predictor", "decoder", "text_encoder", "diffusion")
                   if not hasattr(model, n)]
        if missing:
            raise ValueError(f"model lacks the inference module(s) {missing}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.options = options or TorchSynthesisOptions()
        check_options(self.options)
        self._phonemizer = phonemizer
        # built now, under the gin config the model was loaded with; in the default phonemizer's language
        self.normalizer = corpus_normalizer(language=getattr(phonemizer, "language", LANGUAGE)) if normalize else None
        self.tokenizer = Tokenizer()
        self.style_dim = model.style_dim  # styles are [acoustic | prosodic]

    # Text ----------------------------------------------------------------------------------------

    @property
    def phonemizer(self):
        if self._phonemizer is None:  # created lazily: espeak-ng start-up is slow
            from .text.phonemizer import EspeakPhonemizer

            self._phonemizer = EspeakPhonemizer()
        return self._phonemizer

    def text_to_token_pieces(self, text: str) -> list[list[int]]:
        """Sentences of `text` as token lists without the leading pad, each short enough for PL-BERT."""
        pieces = text_to_token_pieces(text, self.phonemizer, self.tokenizer, BERT_MAX_POSITIONS, self.normalizer)
        if not pieces:
            raise ValueError(f"nothing to synthesize in {text!r}")
        return pieces

    # Style ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def reference_style(self, wave: np.ndarray | str | os.PathLike, sample_rate: int | None = None) -> torch.Tensor:
        """[acoustic | prosodic] style [1, 2 * style_dim] of a reference clip (a path or samples)."""
        if not hasattr(self.model, "style_encoder") or not hasattr(self.model, "predictor_encoder"):
            raise ValueError("the model has no style encoders to read a reference clip with")
        if isinstance(wave, (str, os.PathLike)):
            wave, sample_rate = load_wav(wave, target_sr=self.model.sample_rate)
        elif sample_rate != self.model.sample_rate:
            if sample_rate is None:
                raise ValueError("give the sample rate of the reference samples")
            from .audio.io import resample

            wave = resample(wave, sample_rate, self.model.sample_rate)
        _check_reference(np.asarray(wave, dtype=np.float32))
        wave, _ = trim_silence(np.asarray(wave, dtype=np.float32), top_db=self.options.trim_reference_db)
        mel = log_mel_spectrogram(torch.from_numpy(wave).to(self.device)).unsqueeze(0).unsqueeze(1)
        return torch.cat([self.model.style_encoder(mel), self.model.predictor_encoder(mel)], dim=1)

    # One piece -----------------------------------------------------------------------------------

    @torch.no_grad()
    def synthesize_tokens(self, ids: list[int], options: TorchSynthesisOptions, reference: torch.Tensor | None = None,
                          previous_style: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                          step_noises: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> PieceResult:
        """One piece: token ids (no pad) -> waveform. `noise` [1, 1, 2 * style_dim] and `step_noises`
        [diffusion_steps - 1, 1, 1, 2 * style_dim] are the sampler's noises (drawn from `generator`
        when None)."""
        model = self.model
        if self.model.multispeaker and reference is None:
            raise ValueError("this is a multispeaker model: give a reference clip for the voice")
        tokens = torch.tensor([[0, *ids]], dtype=torch.long, device=self.device)  # upstream prepends pad only
        lengths = torch.tensor([tokens.shape[1]], device=self.device)
        mask = length_to_mask(lengths)

        t_en = model.text_encoder(tokens, lengths, mask)
        bert = model.bert(tokens, attention_mask=(~mask).int())
        d_en = model.bert_encoder(bert).transpose(-1, -2)

        style = model.diffusion.sample(noise, bert, num_steps=options.diffusion_steps,
                                       embedding_scale=options.embedding_scale,
                                       features=reference if model.multispeaker else None,
                                       step_noises=step_noises, generator=generator).squeeze(1)
        if previous_style is not None:
            style = options.blend * previous_style + (1 - options.blend) * style
        acoustic, prosodic = style[:, :self.style_dim], style[:, self.style_dim:]
        if reference is not None:
            acoustic = options.alpha * acoustic + (1 - options.alpha) * reference[:, :self.style_dim]
            prosodic = options.beta * prosodic + (1 - options.beta) * reference[:, self.style_dim:]

        if not torch.isfinite(style).all():
            raise FloatingPointError("the sampled style is not finite: are the model's weights trained and loaded?")
        d = model.predictor.encode(d_en, prosodic, lengths, mask)
        tail = options.tail_frames if options.tail_frames is not None else default_tail_frames(model.multispeaker)
        durations = add_tail_frames(model.predictor.durations(d, speed=options.speed), tail)[0]
        check_piece_frames(int(durations.sum()))  # before the decoder allocates for them
        en = d.transpose(-1, -2).repeat_interleave(durations, dim=-1)  # == d^T @ one-hot alignment
        asr = t_en.repeat_interleave(durations, dim=-1)
        en, asr = model.decoder.delay_aligned(en), model.decoder.delay_aligned(asr)
        F0, N = model.predictor.prosody(en, prosodic)
        wave = model.decoder(asr, F0, N, acoustic).reshape(-1)
        wave = model.decoder.trim_tail(wave)
        return PieceResult(wave, torch.cat([acoustic, prosodic], dim=1), durations)

    # Text in, audio out --------------------------------------------------------------------------

    def stream(self, text: str, reference: np.ndarray | str | os.PathLike | torch.Tensor | None = None,
               seed: int | None = None, **overrides) -> Iterator[np.ndarray]:
        """Yield float32 audio piece by piece (sentence by sentence) as it is synthesized."""
        options = self.options.replace(**overrides)
        pieces = self.text_to_token_pieces(text)
        if reference is not None and not isinstance(reference, torch.Tensor):
            reference = self.reference_style(reference, self.model.sample_rate)
        generator = None
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                # The decoder's source noise uses the global RNG: seed it too, inside fork_rng.
                torch.manual_seed(seed)
                generator = torch.Generator(device=self.device).manual_seed(seed)
            previous = None
            for ids in pieces:
                result = self.synthesize_tokens(ids, options, reference, previous, generator=generator)
                previous = result.style
                yield result.wave.float().cpu().numpy()

    def synthesize(self, text: str, reference=None, seed: int | None = None, **overrides) -> np.ndarray:
        """Whole text -> float32 waveform at the model's sample rate."""
        return np.concatenate(list(self.stream(text, reference, seed, **overrides)))


def _check_reference(wave: np.ndarray) -> None:
    """A reference clip must hold finite samples and some sound to take a voice from."""
    if wave.size == 0 or not np.all(np.isfinite(wave)):
        raise ValueError("the reference clip is empty or holds NaN or infinite samples")
    peak = float(np.abs(wave).max())
    if peak < SILENT_REFERENCE_PEAK:
        raise ValueError(f"the reference clip is silent (peak {peak:.1e}): give a clip of the voice speaking")
