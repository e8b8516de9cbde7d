"""Text -> 24 kHz waveform with an exported model, its graphs run by an executor (`runtime.executor`:
onnxruntime by default; numpy only, no torch here).

Per piece of text (a sentence, or a window of a long one):
  phonemes -> tokens [0] + ids -> text_encoder -> (t_en, bert, d_en)
  bert + noises from a seeded numpy Generator -> diffusion_sampler -> sampled style [1, 2S]
  (diffusion_sampler_unguided, one network pass per step, when embedding_scale is 1 and it exists)
  style blended with the previous piece's (`blend` of the previous), then mixed with the reference
  style if there is one (`alpha` acoustic, `beta` prosodic weight of the sampled half)
  t_en, d_en, style, speed, noise_seed, tail_frames -> decoder -> waveform, durations
Every executor runs these same steps: onnxruntime, TorchScript, the export graphs in torch eager, and
upstream's exact float32 path (`styletts2.fidelity`, through `styletts2.inference.TorchSynthesizer`).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from ..audio.io import load_wav, resample
from ..audio.trim import trim_silence
from ..errors import UserError
from ..graph_contract import STYLE_ENCODER, UNGUIDED_SAMPLER
from ..text.normalize import TextNormalizer
from ..text.tokenizer import Tokenizer
from .mel import LogMel
from .executor import Executor, OnnxExecutor
from .model_dir import ModelConfig, ModelDirError, read_model_json
from ..synthesis_limits import (INTEGER_OPTIONS, MAX_REFERENCE_PEAK, MAX_REFERENCE_SECONDS, MIN_REFERENCE_RATE,
                               SILENT_REFERENCE_PEAK, check_options, check_option, check_piece_frames,
                               check_token_ids)
from ..text.pieces import text_to_token_pieces

TRIM_TOP_DB = 30.0  # reference clips lose leading/trailing silence below this, as upstream's demos
MIN_REFERENCE_FRAMES = 65  # the style encoder's four x2 downsamplings and 5-wide head need this many


class ReferenceLengthWarning(UserWarning):
    """A reference clip over `MAX_REFERENCE_SECONDS`: its first seconds made the style."""


class NonFiniteError(UserError, FloatingPointError):
    """A graph gave NaN or infinite values: from a reference style far out of range, or from a model
    whose weights are not trained or not loaded (the message says which it can tell)."""


class EspeakVersionWarning(UserWarning):
    """The espeak-ng in use is not the one the model was trained or exported with: some words may be
    phonemized differently from training."""


@dataclass(frozen=True)
class SynthesisOptions:
    """Knobs of one synthesis call; model.json's "defaults" fill them, keywords override them."""

    embedding_scale: float = 1.0  # classifier-free guidance scale of the style sampler
    alpha: float = 0.3            # weight of the sampled acoustic style against the reference's
    beta: float = 0.7             # weight of the sampled prosodic style against the reference's
    speed: float = 1.0            # > 1 speaks faster (the decoder divides durations by it)
    blend: float = 0.7            # long-form: weight of the previous piece's style
    tail_frames: int = 0          # frames added to each piece's last token (model.json records the
                                  # notebooks' value: 5 single-speaker, 0 multispeaker)

    @classmethod
    def of(cls, values: dict) -> SynthesisOptions:
        """Options from {name: number} (model.json's "defaults"), each as its field's type."""
        return cls(**{f.name: _as_option(f.name, values[f.name]) for f in dataclasses.fields(cls)})

    def replace(self, **overrides: float | None) -> SynthesisOptions:
        """A copy with the non-None `overrides` applied; unknown names raise TypeError."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown synthesis option(s) {sorted(unknown)}")
        for name, value in overrides.items():
            if value is not None:
                check_option(name, value)  # before float(): a string or None-like value names its option
        options = dataclasses.replace(self, **{k: _as_option(k, v) for k, v in overrides.items() if v is not None})
        check_options(options)
        return options


def _as_option(name: str, value) -> int | float:
    return int(value) if name in INTEGER_OPTIONS else float(value)


@dataclass
class Piece:
    """One synthesized piece of text."""

    wave: np.ndarray           # [samples] float32
    sampled_style: np.ndarray  # [1, 2S] the diffusion sampler's output
    style: np.ndarray          # [1, 2S] [acoustic | prosodic] after blending and mixing: what the
                               # decoder got, and what the next piece blends with
    durations: np.ndarray      # [tokens] int64 frames per token, the leading pad included
    noise_seed: int            # the decoder's noise seed


def mix_styles(sampled: np.ndarray, previous: np.ndarray | None, reference: np.ndarray | None,
               options: SynthesisOptions, style_dim: int) -> np.ndarray:
    """Long-form blending, then reference mixing, of [B, 2S] styles (the torch synthesizer's math)."""
    style = sampled if previous is None else options.blend * previous + (1 - options.blend) * sampled
    if reference is None:
        return style.astype(np.float32, copy=False)
    acoustic = options.alpha * style[:, :style_dim] + (1 - options.alpha) * reference[:, :style_dim]
    prosodic = options.beta * style[:, style_dim:] + (1 - options.beta) * reference[:, style_dim:]
    return np.concatenate([acoustic, prosodic], axis=1).astype(np.float32, copy=False)


def reference_samples(reference) -> np.ndarray:
    """Mono float32 samples from an array-like given as a reference clip."""
    array = np.asarray(reference)
    if array.dtype.kind != "f":
        raise ValueError(f"reference samples must be floats in [-1, 1], got {array.dtype}"
                         + (" (divide integer samples by 32768)" if array.dtype.kind in "iu" else ""))
    if array.ndim != 1:
        raise ValueError(f"reference samples must be mono [samples], got shape {array.shape}")
    check_sample_values(array, "the reference samples", " (integer samples divided by 32768)")
    return array.astype(np.float32, copy=False)


def check_sample_values(wave: np.ndarray, what: str, hint: str = "") -> None:
    """Reference samples must be finite and within ±`MAX_REFERENCE_PEAK` (arrays and float files
    alike): larger ones are integer values given as floats, which overflow the mel to nothing."""
    if not np.isfinite(wave).all():
        raise ValueError(f"{what} hold NaN or infinite values")
    peak = float(np.abs(wave).max(initial=0.0))
    if peak > MAX_REFERENCE_PEAK:
        raise ValueError(f"{what} reach {peak:.4g}: float samples in [-1, 1] expected{hint}")


def _not_finite(what: str, reference_style: np.ndarray | None) -> NonFiniteError:
    """The error for a graph output that is not finite, naming the reference style the graph got."""
    if reference_style is None:
        return NonFiniteError(f"{what} is not finite: are the model's weights trained and loaded?")
    peak = float(np.abs(reference_style).max())
    return NonFiniteError(f"{what} is not finite with the reference style given (values up to {peak:.3g}): "
                          "check the reference, then the model's weights")


def decoder_noise_seed(root: np.random.SeedSequence, index: int) -> int:
    """The decoder's noise seed for piece `index`: a 31-bit integer hashed from the call's seed and
    the index, so a seed repeats its audio and pieces do not share noise."""
    state = np.random.SeedSequence(root.entropy, spawn_key=(index,)).generate_state(1, np.uint32)
    return int(state[0] >> 1)


class Synthesizer:
    """Synthesis with an exported model directory (see export/to_onnx.py and the export contract).

    The steps are written here once; the graphs run in an executor (`runtime.executor`): by default
    onnxruntime on the folder's .onnx files, or any other given as `executor` (e.g. torch eager or
    TorchScript, `styletts2.torch_executor`), which then gets the same inputs in the same order.

    model_dir: the exported directory (model.json and the graphs), or a `ModelConfig` of a model the
        given executor holds (`styletts2.inference.TorchSynthesizer`: a model in memory).
    providers: onnxruntime execution providers, e.g. 'cpu', 'cuda' or ['CUDAExecutionProvider',
        'CPUExecutionProvider']; None picks CUDA when this onnxruntime has it, else CPU. CUDA asked
        for by name must start (ProviderError otherwise); picked by None, it may fall back to CPU
        with a RuntimeWarning.
    threads: intra-op threads per session (None: onnxruntime's default).
    session_options: an `onnxruntime.SessionOptions` to use instead of the default one (all graph
        optimisations on); `threads` still applies.
    executor: runs the graphs instead of the default onnxruntime one (then providers, threads and
        session_options belong to that executor and must not be given here).
    phonemizer: text -> phoneme string (default: espeak-ng as model.json describes it).
    normalize: normalize text before phonemizing it with the normalizer model.json records (its
        `text_normalizer`); False reads text as written. `normalizer` is the one in use (None: none).

    One synthesizer may serve several threads at once: the same seed gives the same audio on any of
    them (espeak-ng runs one call at a time, process-wide; graphs open once).
    """

    def __init__(self, model_dir: str | os.PathLike | ModelConfig, providers: str | list[str] | None = None,
                 threads: int | None = None, session_options: ort.SessionOptions | None = None,
                 phonemizer: Callable[[str], str] | None = None, normalize: bool = True,
                 executor: Executor | None = None):
        if isinstance(model_dir, ModelConfig) and executor is None:
            raise ValueError("a ModelConfig has no graph files: give the executor that holds its graphs")
        self.config = model_dir if isinstance(model_dir, ModelConfig) else read_model_json(model_dir)
        if executor is not None and any(x is not None for x in (providers, threads, session_options)):
            raise ValueError("providers, threads and session_options configure the default onnxruntime "
                             "executor: give them to the executor instead")
        self.executor = executor if executor is not None else OnnxExecutor(self.config, providers, threads,
                                                                           session_options)
        # embedding_scale 1 (the default) needs no guidance pass: the one-pass graph, where exported;
        # the guided sampler is then opened on the first call that asks for guidance. Single-speaker
        # models may ship a style encoder for reference clips: opened on first use.
        sampler = UNGUIDED_SAMPLER if self.executor.has_graph(UNGUIDED_SAMPLER) else "diffusion_sampler"
        self.executor.load(["text_encoder", sampler, "decoder", *([STYLE_ENCODER] if self.config.multispeaker else [])])
        # read_model_json checked the defaults (finite, in range)
        self.options = SynthesisOptions.of(self.config.defaults)
        self.tokenizer = Tokenizer()
        try:
            self.mel = LogMel(**self.config.mel)
        except (TypeError, ValueError) as err:
            raise ModelDirError(f"{self.config.directory / 'model.json'}: field 'mel': {err}") from err
        self.phonemizer = phonemizer if phonemizer is not None else self._espeak()
        self._check_espeak_version()
        entry = self.config.text_normalizer
        self.normalizer = (TextNormalizer.from_description(entry, str(self.config.directory))
                           if normalize and entry is not None else None)

    # Set-up --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the graphs' memory now (a later call opens them again). For an application that
        makes and drops synthesizers in one process: its memory then stays flat (README)."""
        self.executor.close()

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _espeak(self) -> Callable[[str], str]:
        from ..text.phonemizer import EspeakPhonemizer

        language = self.config.phonemizer["language"]
        try:
            return EspeakPhonemizer(language)
        except RuntimeError as err:  # phonemizer's 'language "xx" is not supported by the espeak backend'
            if "not supported" not in str(err):
                raise
            raise ModelDirError(f"{self.config.directory / 'model.json'}: field 'phonemizer.language': espeak-ng "
                                f"has no language {language!r}") from err

    def _check_espeak_version(self) -> None:
        wanted = self.config.phonemizer.get("espeak_version")
        have = getattr(self.phonemizer, "version", None)
        if wanted and have and wanted != have:
            warnings.warn(f"{self.config.directory} records espeak-ng {wanted} but this is "
                          f"espeak-ng {have}: some words may be phonemized differently from training",
                          EspeakVersionWarning, stacklevel=3)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def style_dim(self) -> int:
        return self.config.style_dim

    # Text and reference --------------------------------------------------------------------------

    def text_to_token_pieces(self, text: str) -> list[list[int]]:
        """Sentences (and windows of over-long ones) of `text` as token ids without the leading pad."""
        return text_to_token_pieces(text, self.phonemizer, self.tokenizer, self.config.bert_max_positions,
                                    self.normalizer)

    def reference_style(self, reference: str | os.PathLike | np.ndarray,
                        sample_rate: int | None = None) -> np.ndarray:
        """[acoustic | prosodic] style [1, 2S] of a reference clip: a wav path, or mono float samples
        in [-1, 1] at `sample_rate` (default: the model's, 24 kHz). Silence below 30 dB is trimmed
        first; a clip over 30 s gives its first 30 s, with a `ReferenceLengthWarning`."""
        if isinstance(reference, (str, os.PathLike)):
            wave, rate = load_wav(reference)
            source = str(reference)
            check_sample_values(wave, f"the samples of {source}")
        else:
            wave, source = reference_samples(reference), "the reference samples"
            rate = self.sample_rate if sample_rate is None else sample_rate
        wave = self._at_model_rate(wave, rate, source)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak < SILENT_REFERENCE_PEAK:
            raise ValueError(f"{source} is silent (peak {peak:.1e}): give a clip of the voice speaking")
        wave, _ = trim_silence(wave, top_db=TRIM_TOP_DB)
        min_samples = (MIN_REFERENCE_FRAMES - 1) * self.mel.hop_length
        if len(wave) < min_samples:
            raise ValueError(f"{source}: {len(wave) / self.sample_rate:.2f} s of sound after trimming silence; "
                             f"the style encoder needs at least {min_samples / self.sample_rate:.2f} s")
        if not self.executor.has_graph(STYLE_ENCODER):
            raise ModelDirError(f"{self.config.directory} has no style_encoder graph: this model "
                                "cannot read a reference clip")
        with np.errstate(divide="ignore", invalid="ignore"):  # checked below, with a clearer message
            mel = self.mel(wave)[None]  # [1, n_mels, frames]
        if not np.isfinite(mel).all():  # the samples are finite: the mel settings make NaN (log of <= 0)
            raise NonFiniteError(f"the log-mel of {source} is not finite: check model.json's field 'mel'")
        style = self.executor.run(STYLE_ENCODER, {"mel": mel})["reference_style"]
        if not np.isfinite(style).all():
            raise NonFiniteError(f"the style encoder's style of {source} is not finite: are the model's weights "
                                 "trained and loaded?")
        return style

    def _at_model_rate(self, wave: np.ndarray, rate, source: str) -> np.ndarray:
        """At most `MAX_REFERENCE_SECONDS` of the samples, resampled to the model's rate."""
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < MIN_REFERENCE_RATE:
            raise ValueError(f"{source}: sample rate {rate!r}; a reference clip needs an integer rate of at least "
                             f"{MIN_REFERENCE_RATE} Hz")
        if len(wave) > MAX_REFERENCE_SECONDS * rate:
            warnings.warn(f"{source}: {len(wave) / rate:.1f} s long; its first {MAX_REFERENCE_SECONDS:.0f} s "
                          "make the style", ReferenceLengthWarning, stacklevel=3)
            wave = wave[:int(MAX_REFERENCE_SECONDS * rate)]
        return resample(wave, int(rate), self.sample_rate).astype(np.float32, copy=False)

    def _reference(self, reference) -> np.ndarray | None:
        """A reference given to `stream`/`synthesize` as a style [1, 2S] (a path, samples at the
        model's rate, or an already computed [1, 2S] style)."""
        if reference is None:
            if self.config.multispeaker:
                raise ValueError("this is a multispeaker model: give a reference clip for the voice")
            return None
        # a style [1, 2S] by its width; other arrays, [1, N] or stereo [2, N] too, are samples
        if isinstance(reference, np.ndarray) and reference.ndim == 2 and reference.shape[-1] == 2 * self.style_dim:
            if reference.shape != (1, 2 * self.style_dim):
                raise ValueError(f"a reference style must be [1, {2 * self.style_dim}], got {reference.shape}")
            if reference.dtype.kind not in "fiu" or not np.isfinite(reference).all():
                raise ValueError(f"a reference style must hold finite numbers, got {reference.dtype} "
                                 f"{reference.ravel()[:4].tolist()}...")
            return reference.astype(np.float32, copy=False)
        return self.reference_style(reference)

    # One piece -----------------------------------------------------------------------------------

    def synthesize_tokens(self, ids: list[int], options: SynthesisOptions, rng: np.random.Generator | None,
                          noise_seed: int, reference_style: np.ndarray | None = None,
                          previous_style: np.ndarray | None = None,
                          noises: tuple[np.ndarray, np.ndarray] | None = None) -> Piece:
        """One piece: token ids (no pad) -> waveform. The sampler's initial noise [1, 1, 2S] and then
        its step noises [steps - 1, 1, 1, 2S] are drawn from `rng`, in that order, or given as `noises`.
        Options and ids are checked before any graph runs (a caller may build either by hand)."""
        check_options(options)  # speed 0.001 had onnxruntime allocate for 1000x the frames
        check_token_ids(ids, len(self.config.symbols))
        if self.config.multispeaker and reference_style is None:
            raise ValueError("this is a multispeaker model: give a reference style")
        tokens = np.array([[self.config.pad_id, *ids]], dtype=np.int64)
        if tokens.shape[1] > self.config.bert_max_positions:
            raise ValueError(f"{tokens.shape[1]} tokens exceed PL-BERT's {self.config.bert_max_positions} "
                             "positions; split the text (text_to_token_pieces does)")
        lengths = np.array([tokens.shape[1]], dtype=np.int64)
        encoded = self.executor.run("text_encoder", {"tokens": tokens, "token_lengths": lengths})

        width = 2 * self.style_dim
        if noises is None:
            noises = (rng.standard_normal((1, 1, width), dtype=np.float32),
                      rng.standard_normal((self.config.diffusion_steps - 1, 1, 1, width), dtype=np.float32))
        feeds = {
            "bert": encoded["bert"], "noise": noises[0], "step_noises": noises[1],
            "embedding_scale": np.array(options.embedding_scale, dtype=np.float32),
        }
        if self.config.multispeaker:
            feeds["reference_style"] = reference_style
        unguided = options.embedding_scale == 1.0 and self.executor.has_graph(UNGUIDED_SAMPLER)
        sampled = self.executor.run(UNGUIDED_SAMPLER if unguided else "diffusion_sampler", feeds)["style"]
        if not np.isfinite(sampled).all():
            raise _not_finite("the sampled style", reference_style if self.config.multispeaker else None)
        style = mix_styles(sampled, previous_style, reference_style, options, self.style_dim)

        decoded = self.executor.run("decoder", {
            "t_en": encoded["t_en"], "d_en": encoded["d_en"], "style": style, "token_lengths": lengths,
            "speed": np.array(options.speed, dtype=np.float32), "noise_seed": np.array(noise_seed, dtype=np.int64),
            "tail_frames": np.array(options.tail_frames, dtype=np.int64)})
        wave = np.asarray(decoded["waveform"][0], dtype=np.float32)
        if not np.isfinite(wave).all():
            raise _not_finite("the decoder's waveform", reference_style)
        # The durations come out of the decoder graph with the waveform (onnxruntime runs a whole graph
        # whatever outputs are asked for): this bounds the piece's length; the option ranges and the
        # positions bound the decoder's memory.
        check_piece_frames(int(decoded["durations"][0].sum()))
        return Piece(wave, sampled, style, decoded["durations"][0], noise_seed)

    # Text in, audio out --------------------------------------------------------------------------

    def synthesize_pieces(self, text: str, reference=None, seed: int | None = None,
                          **overrides: float | None) -> Iterator[Piece]:
        """`Piece`s of `text`, synthesized one after another. Text, reference and knobs are checked
        before this returns; the audio is made as the iterator is consumed."""
        options = self.options.replace(**overrides)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        pieces = self.text_to_token_pieces(text)
        reference_style = self._reference(reference)
        root = np.random.SeedSequence(seed)  # seed None: fresh entropy, different audio each call
        return self._run(pieces, options, root, reference_style)

    def _run(self, pieces: list[list[int]], options: SynthesisOptions, root: np.random.SeedSequence,
             reference_style: np.ndarray | None) -> Iterator[Piece]:
        rng = np.random.default_rng(root)
        previous = None
        for index, ids in enumerate(pieces):
            piece = self.synthesize_tokens(ids, options, rng, decoder_noise_seed(root, index),
                                           reference_style, previous)
            previous = piece.style
            yield piece

    def stream(self, text: str, reference=None, seed: int | None = None, *,
               embedding_scale: float | None = None, alpha: float | None = None, beta: float | None = None,
               speed: float | None = None, blend: float | None = None,
               tail_frames: int | None = None) -> Iterator[np.ndarray]:
        """Float32 audio at `sample_rate`, yielded sentence by sentence as it is synthesized.
        Arguments as `synthesize`; the chunks joined equal `synthesize`'s output for the same seed."""
        pieces = self.synthesize_pieces(text, reference, seed, embedding_scale=embedding_scale, alpha=alpha,
                                        beta=beta, speed=speed, blend=blend, tail_frames=tail_frames)
        return (piece.wave for piece in pieces)

    def synthesize(self, text: str, reference=None, seed: int | None = None, *,
                   embedding_scale: float | None = None, alpha: float | None = None, beta: float | None = None,
                   speed: float | None = None, blend: float | None = None,
                   tail_frames: int | None = None) -> np.ndarray:
        """Text -> float32 waveform [samples] at `sample_rate` (24 kHz).

        reference: the voice: a wav path, mono float32 samples at 24 kHz, or a style [1, 2S] from
            `reference_style`; required by multispeaker models.
        seed: the same text, seed and knobs give the same samples (None: random).
        embedding_scale, alpha, beta, speed, blend, tail_frames: override model.json's defaults for
            this call.
        """
        return np.concatenate(list(self.stream(text, reference, seed, embedding_scale=embedding_scale,
                                               alpha=alpha, beta=beta, speed=speed, blend=blend,
                                               tail_frames=tail_frames)))
