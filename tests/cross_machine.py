"""Comparing a waveform with one recorded on another machine (the parity fixtures).

Sample by sample, ours equals upstream's on the machine that recorded the fixture, and on this one
(tests/test_upstream_live.py runs upstream here). Across machines it need not: the float32 rounding
of CPU kernels that dispatch differently on Intel and AMD (MKL's FFT, oneDNN) is amplified by the
decoders, most by iSTFTNet, whose source features include the phase of STFT bins that are zero up
to rounding (`torch.angle` of +-1e-12 is anything). Measured on an Intel Xeon against fixtures
recorded on an AMD EPYC, where upstream's own code differs from them by the same amounts: iSTFTNet
at 17-36 dB SNR and log-mel L1 up to 0.12, HiFi-GAN within 2.1e-5, the random-weight pipeline at
19-25 dB. A real change (another source noise) gave 0.3 dB and log-mel L1 0.79.
"""
import numpy as np
import torch

from styletts2.export.metrics import log_mel_distance, snr_db
from styletts2.export.model_card import mel_config
from styletts2.runtime.mel import LogMel

MIN_SNR_DB = 12.0
MAX_LOG_MEL_L1 = 0.25


def assert_same_waveform(ours: torch.Tensor, recorded: torch.Tensor, exact: float) -> None:
    """Within `exact` sample by sample (the recording machine's kernels), or else, item by item, at
    least MIN_SNR_DB and at most MAX_LOG_MEL_L1 (natural-log mels) from the recording."""
    assert ours.shape == recorded.shape
    if (ours - recorded).abs().max().item() < exact:
        return
    mel = LogMel(**mel_config())
    for item, (a, b) in enumerate(zip(ours.reshape(ours.shape[0], -1), recorded.reshape(recorded.shape[0], -1))):
        a, b = a.double().numpy(), b.double().numpy()
        snr, distance = snr_db(b, a), log_mel_distance(b / np.abs(b).max(), a / np.abs(b).max(), mel)
        assert snr >= MIN_SNR_DB and distance <= MAX_LOG_MEL_L1, \
            f"item {item}: SNR {snr:.1f} dB, log-mel L1 {distance:.3f} against the recording"
