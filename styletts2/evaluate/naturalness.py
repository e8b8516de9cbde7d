"""Naturalness: DNSMOS (Reddy et al., ICASSP 2022) from the ONNX models in the `speechmos` wheel.

DNSMOS P.835 predicts three opinion scores on a 1-5 scale from 16 kHz audio: SIG (speech signal
quality), BAK (background noise), OVRL (overall); the P.808 model gives a single overall MOS.
Clips shorter than the models' 9.01 s window are tiled to fill it and longer ones are scored in
1 s hops and averaged, as speechmos (and Microsoft's reference script) do.

speechmos opens its sessions without naming an execution provider, which onnxruntime-gpu
rejects, and imports pandas for batches; so the sessions are made here (CPU: the models are tiny)
and handed to speechmos's scorer, whose feature and polynomial-mapping code is used unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import resample

DNSMOS_RATE = 16000


@dataclass(frozen=True)
class DnsmosScores:
    ovrl: float
    sig: float
    bak: float
    p808: float


class Dnsmos:
    """DNSMOS P.835 (+ P.808) scorer; the ONNX sessions are created on first use."""

    def __init__(self, threads: int | None = 1):
        self.threads = threads
        self._scorer = None

    @property
    def scorer(self):
        if self._scorer is None:
            try:
                import onnxruntime as ort
                from speechmos import dnsmos
            except ImportError as err:
                raise RuntimeError("DNSMOS needs the `speechmos` package (pip install speechmos==0.0.1.1)") from err
            models = Path(dnsmos.__file__).resolve().parent / "dnsmos_models"
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
            session = lambda name: ort.InferenceSession(str(models / name), options,  # noqa: E731
                                                        providers=["CPUExecutionProvider"])
            scorer = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # skip its provider-less session set-up
            scorer.primary_model_path = str(models / "sig_bak_ovr.onnx")
            scorer.onnx_sess = session("sig_bak_ovr.onnx")
            scorer.p808_onnx_sess = session("model_v8.onnx")
            self._scorer = scorer
        return self._scorer

    def __call__(self, wave: np.ndarray, sample_rate: int) -> DnsmosScores:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"DNSMOS needs a non-empty mono waveform, got shape {wave.shape}")
        wave = resample(wave, sample_rate, DNSMOS_RATE).astype(np.float32, copy=False)
        # speechmos refuses samples beyond [-1, 1]; resampling can overshoot slightly
        wave = np.clip(wave, -1.0, 1.0)
        result = self.scorer(wave, DNSMOS_RATE, False)
        return DnsmosScores(ovrl=float(result["ovrl_mos"]), sig=float(result["sig_mos"]),
                            bak=float(result["bak_mos"]), p808=float(result["p808_mos"]))
