"""The mel front-end against torchaudio's own computation of upstream's MelSpectrogram, stored in
tests/fixtures/parity_mel.pt by tests/parity/make_fixtures_mel.py.

On the machine that wrote the fixture the results are bit-identical (0.0 error). The bound allows
for a different FFT backend or CPU rounding the last bit of a few values elsewhere.
"""
from pathlib import Path

import torch

from styletts2.audio.mel import LogMelSpectrogram, mel_filterbank

FIXTURE = torch.load(Path(__file__).parent / "fixtures" / "parity_mel.pt", weights_only=True)


def test_filterbank_is_bit_identical_to_torchaudio():
    assert torch.equal(mel_filterbank(), FIXTURE["filterbank"])


def test_log_mel_matches_torchaudio():
    front_end = LogMelSpectrogram()
    ours = front_end(FIXTURE["wave"]).unsqueeze(0)  # upstream's preprocess adds a batch axis
    assert ours.shape == FIXTURE["log_mel"].shape
    # 1e-5 (ln units): other CPUs' FFT kernels differ by 2.3e-6 (an Intel Xeon against the fixture's
    # AMD EPYC); a wrong window, filterbank or normalisation is off by far more
    assert (ours - FIXTURE["log_mel"]).abs().max().item() < 1e-5
    batched = front_end(FIXTURE["batch"])
    assert batched.shape == FIXTURE["batch_log_mel"].shape
    assert (batched - FIXTURE["batch_log_mel"]).abs().max().item() < 1e-5
