"""Speech synthesis with the espeak-ng shared library shipped in the `espeakng-loader` wheel.

Used to make small, fully reproducible corpora for tests and demos (see `make_corpus`).
The library is driven through ctypes in AUDIO_OUTPUT_SYNCHRONOUS mode: `espeak_Synth` returns
only once the whole utterance has been rendered, handing the int16 samples to our callback.

espeak-ng keeps all of its state in globals. phonemizer (used by `styletts2.text`) loads its own
private copy of the library for the same reason, so here we do the same: the library is copied
to a temporary file, opened from there (a different file is a different dlopen handle, hence
separate globals) and the copy is deleted straight away (the mapping stays valid on POSIX;
Windows is not supported).
"""
from __future__ import annotations

import ctypes
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import espeakng_loader

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_EE_OK = 0

RATE_MIN, RATE_MAX, RATE_NORMAL = 80, 450, 175  # words per minute (espeakRATE_*)


class _EspeakVoice(ctypes.Structure):
    """`espeak_VOICE` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _EspeakEvent(ctypes.Structure):
    """`espeak_EVENT` from speak_lib.h (the `id` union as its 8-byte string member)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position of the word in the text
        ("length", ctypes.c_int),  # the word's length in characters
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # output sample at which the event happens
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); the word events are kept.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_EspeakEvent))


@dataclass(frozen=True)
class WordTiming:
    """Where espeak-ng started speaking one word of the text: `start` in seconds from the clip's
    first sample; `char_start`/`char_end` index the word in the synthesized text."""

    word: str
    start: float
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: a language (`en-us`, `en-gb-scotland`) and an optional variant (`f3`, `m2`).

    Written `language+variant` on the command line, as espeak-ng does.
    """

    language: str
    variant: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "Voice":
        language, _, variant = spec.strip().partition("+")
        if not language:
            raise ValueError(f"empty espeak-ng voice spec {spec!r}")
        return cls(language.lower(), variant or None)

    def __str__(self) -> str:
        return self.language + (f"+{self.variant}" if self.variant else "")


def _private_library_copy(library_path: Path) -> ctypes.CDLL:
    with tempfile.TemporaryDirectory(prefix="styletts2-espeak-") as tmp:
        copy = Path(tmp) / library_path.name
        shutil.copyfile(library_path, copy)
        return ctypes.CDLL(str(copy))


class EspeakSynthesizer:
    """A private espeak-ng instance that renders text to float32 audio.

    Thread-safe (calls are serialised: espeak-ng is not re-entrant). Not picklable; create one
    per process (DataLoader workers, etc.).
    """

    def __init__(self, library_path: str | Path | None = None, data_path: str | Path | None = None):
        self.library_path = Path(library_path or espeakng_loader.get_library_path()).resolve()
        self.data_path = Path(data_path or espeakng_loader.get_data_path())
        self._lib = _private_library_copy(self.library_path)
        self._declare_signatures()
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []  # (text_position, length, sample) per word event
        self._callback = _SynthCallback(self._collect)  # kept alive for the library's lifetime

        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (data path {self.data_path})")
        self.sample_rate: int = rate
        self._lib.espeak_SetSynthCallback(self._callback)
        self.version: str = self._lib.espeak_Info(None).decode()

    def _declare_signatures(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_EspeakVoice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_EspeakVoice)
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int

    def _collect(self, wav, num_samples: int, events) -> int:
        # wav is NULL at the end of synthesis; num_samples may be 0 mid-stream.
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position, events[i].length, events[i].sample))
            i += 1
        return 0  # 0 = continue

    def _select_voice(self, voice: Voice) -> None:
        # Resolve the language the way phonemizer does (by properties), then reload the chosen
        # voice file by its identifier with the variant appended ("gmw/en+f3").
        spec = _EspeakVoice()
        spec.languages = voice.language.encode()
        status = self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec))
        current = self._lib.espeak_GetCurrentVoice().contents
        primary = (current.languages or b"")[1:].decode().lower()  # skip the priority byte
        # espeak-ng falls back to a related voice for unknown dialects ("en-zz" -> en-gb); refuse that.
        exact = primary == voice.language or ("-" not in voice.language and primary.startswith(voice.language + "-"))
        if status != _EE_OK or not exact:
            raise ValueError(f"espeak-ng has no voice for language {voice.language!r}")
        name = current.identifier.decode()
        if voice.variant:
            if not (self.data_path / "voices" / "!v" / voice.variant).is_file():
                raise ValueError(f"espeak-ng has no voice variant {voice.variant!r}")
            name += "+" + voice.variant
        if self._lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise ValueError(f"espeak-ng could not load voice {name!r}")

    def synthesize(
        self,
        text: str,
        voice: str | Voice = "en-us",
        *,
        rate: int = RATE_NORMAL,
        pitch: int = 50,
        pitch_range: int = 50,
        seed: int = 0,
    ) -> tuple[np.ndarray, int]:
        """Render `text`; returns (float32 samples in [-1, 1], sample rate = 22050 for espeak-ng).
        `synthesize_with_words` also returns where each word starts.

        rate: words per minute (80-450); pitch, pitch_range: 0-100 (50 = the voice's default).
        seed: espeak-ng's noise generator seed (breathy variants use it).
        Reproducibility: espeak-ng carries wave-generator state (pitch-cycle phase) from one
        utterance to the next, so the same sequence of calls on a fresh instance gives the same
        samples, but one call's output depends on the calls before it.
        """
        wave, rate, _ = self.synthesize_with_words(text, voice, rate=rate, pitch=pitch,
                                                   pitch_range=pitch_range, seed=seed)
        return wave, rate

    def synthesize_with_words(self, text: str, voice: str | Voice = "en-us", *, rate: int = RATE_NORMAL,
                              pitch: int = 50, pitch_range: int = 50,
                              seed: int = 0) -> tuple[np.ndarray, int, list[WordTiming]]:
        """`synthesize`, plus espeak-ng's own timing of every word (its word events): the
        reference the trained aligner's word boundaries are measured against."""
        if not text.strip():
            raise ValueError("cannot synthesize empty text")
        if not RATE_MIN <= rate <= RATE_MAX:
            raise ValueError(f"rate {rate} outside espeak-ng's {RATE_MIN}-{RATE_MAX} words per minute")
        for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
            if not 0 <= value <= 100:
                raise ValueError(f"{name} {value} outside 0-100")
        voice = Voice.parse(voice) if isinstance(voice, str) else voice
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._select_voice(voice)  # a voice change resets the parameters, so set them after
            self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._lib.espeak_SetParameter(_PARAM_RANGE, pitch_range, 0)
            self._lib.espeak_ng_SetRandSeed(seed)
            self._chunks, self._words = [], []
            status = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
            events, self._words = self._words, []
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return samples.astype(np.float32) / 32768.0, self.sample_rate, _word_timings(text, events, self.sample_rate)


def _word_timings(text: str, events: list[tuple[int, int, int]], sample_rate: int) -> list[WordTiming]:
    # Event positions count characters of the UTF-8 text from 1.
    return [WordTiming(text[position - 1:position - 1 + length], sample / sample_rate, position - 1,
                       position - 1 + length)
            for position, length, sample in events]


_default: EspeakSynthesizer | None = None
_default_lock = threading.Lock()


def default_synthesizer() -> EspeakSynthesizer:
    """The process-wide synthesizer (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EspeakSynthesizer()
        return _default


def espeak_version() -> str:
    """Version string of the espeak-ng library in the `espeakng-loader` wheel, e.g. '1.52.0'."""
    return default_synthesizer().version


def synthesize(text: str, voice: str | Voice = "en-us", **params) -> tuple[np.ndarray, int]:
    """`EspeakSynthesizer.synthesize` on the process-wide synthesizer."""
    return default_synthesizer().synthesize(text, voice, **params)
