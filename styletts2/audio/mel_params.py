"""Upstream's mel front-end settings, torch-free so the onnxruntime runtime shares them."""

N_MELS = 80
N_FFT = 2048
WIN_LENGTH = 1200
HOP_LENGTH = 300
FILTERBANK_SAMPLE_RATE = 16000  # upstream passes no sample rate: torchaudio's 16 kHz default
MEL_MEAN = -4.0
MEL_STD = 4.0
LOG_OFFSET = 1e-5
