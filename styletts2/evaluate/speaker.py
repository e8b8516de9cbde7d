"""Speaker similarity: cosine similarity of Resemblyzer d-vectors (GE2E speaker encoder, Wan et
al. 2018; the weights ship inside the `resemblyzer` wheel).

Both clips go through Resemblyzer's own preprocessing (16 kHz, volume normalisation, long
silences cut with webrtcvad) and `embed_utterance` (1.6 s partial windows, averaged). The
embeddings are non-negative and L2-normalised, so the similarity lies in [0, 1]; different
speakers typically score 0.5-0.75, the same speaker above 0.8.

Install: resemblyzer 0.1.4 declares `webrtcvad`, which has no wheels and needs a C compiler.
`webrtcvad-wheels` (in requirements.txt) provides the same `webrtcvad` module as a wheel, and
resemblyzer itself is installed with `pip install --no-deps resemblyzer==0.1.4`.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..audio.io import resample

INSTALL_HINT = ("speaker similarity needs resemblyzer: pip install webrtcvad-wheels==2.0.14.post1 && "
                "pip install --no-deps resemblyzer==0.1.4")


class SpeakerEncoder:
    """Resemblyzer's VoiceEncoder on the CPU, loaded on first use."""

    def __init__(self):
        self._encoder = None
        self._rate = None

    @property
    def encoder(self):
        if self._encoder is None:
            try:
                with warnings.catch_warnings():  # its scipy.ndimage.morphology import is deprecated
                    warnings.simplefilter("ignore", DeprecationWarning)
                    from resemblyzer import VoiceEncoder, hparams
            except ImportError as err:
                raise RuntimeError(f"{INSTALL_HINT} ({err})") from err
            self._encoder = VoiceEncoder(device="cpu", verbose=False)
            self._rate = hparams.sampling_rate
        return self._encoder

    def embed(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """L2-normalised d-vector [256] of a mono clip."""
        encoder = self.encoder  # first: it imports resemblyzer with its deprecation warning silenced
        from resemblyzer import preprocess_wav

        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"speaker similarity needs a non-empty mono waveform, got shape {wave.shape}")
        wave = preprocess_wav(resample(wave, sample_rate, self._rate).astype(np.float32, copy=False))
        if wave.size == 0:
            raise ValueError("no voiced audio left after Resemblyzer's silence removal")
        return encoder.embed_utterance(wave)



def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two speaker embeddings (d-vectors)."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
