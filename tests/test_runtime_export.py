"""The onnxruntime runtime on REAL exports of the tiny models, against the torch synthesizer on the
same (export-prepared) model: the same token pieces, the same sampler noises (the runtime draws them
from its seed with numpy; they are handed to torch), the decoder's in-graph source noise
(`export.wrappers.source_noise` of the piece's noise_seed) patched into the torch decoder.

Single speaker (iSTFTNet) and multispeaker (HiFi-GAN: reference clip -> numpy mel -> style_encoder
graph, alpha/beta mixing, a sampler conditioned on the reference style, the tail trim).
"""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import REPO
from export.common import LoadedModel, build_random_model
from export.metrics import snr_db
from export.to_onnx import export_onnx
from export.wrappers import noise_direction, prepare_for_export, source_noise
from styletts2.inference import Synthesizer as TorchSynthesizer
from styletts2.runtime import Synthesizer

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 5
TEXT = "Hello there, my friend. How are you?"


@pytest.fixture(scope="module", params=["tiny", "tiny_multispeaker"])
def exported(request, tmp_path_factory):
    """(export-prepared torch model, ONNX directory) of a tiny random model. The multispeaker one gets
    a voiced F0 (random F0 sits below the voicing threshold); the iSTFTNet one stays unvoiced, where
    its waveform is well conditioned (voiced, a source-phase bin near +-pi flips on float32 rounding:
    tests/test_export_accuracy.py measures that case)."""
    gin_file = f"gin/model/{request.param}.gin"
    model = build_random_model(str(REPO / gin_file), seed=0)
    if model.multispeaker:
        with torch.no_grad():
            model.predictor.F0_proj.bias += 150.0
    prepare_for_export(model)
    out = tmp_path_factory.mktemp(request.param)
    export_onnx(LoadedModel(model, f"random-init:{gin_file}", ""), out, STEPS, verify=False)
    return model, out


def _voice_like(seconds: float, sr: int = 24000) -> np.ndarray:
    """A harmonic, amplitude-modulated clip with a noise floor (every mel bin holds energy)."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 1.5 * t)) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 30)) * 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    return (wave + 0.003 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


def test_runtime_matches_the_torch_synthesizer(exported, tmp_path):
    model, directory = exported
    runtime = Synthesizer(directory, providers="cpu", threads=1)
    reference_path = None
    if model.multispeaker:
        reference_path = tmp_path / "reference.wav"
        sf.write(reference_path, _voice_like(2.0), 24000)
    pieces = list(runtime.synthesize_pieces(TEXT, reference=reference_path, seed=3))

    torch_synth = TorchSynthesizer(model, device="cpu")
    reference = None
    if model.multispeaker:
        reference = torch_synth.reference_style(reference_path)
        # numpy mel + style_encoder graph vs torch mel + style encoders (measured 2e-7)
        assert np.abs(runtime.reference_style(reference_path) - reference.numpy()).max() < 1e-5

    decoder_forward, seed = model.decoder.forward, {}

    def seeded_forward(asr, F0, N, s):
        batch, samples, _ = model.decoder.noise_shape(F0)
        noise = source_noise(torch.tensor(seed["value"]), batch, samples, noise_direction(model.decoder))
        return decoder_forward(asr, F0, N, s, noise=noise)

    model.decoder.forward = seeded_forward
    try:
        token_pieces = torch_synth.text_to_token_pieces(TEXT)
        assert token_pieces == runtime.text_to_token_pieces(TEXT) and len(token_pieces) == len(pieces) == 2
        width, rng, previous = 2 * runtime.style_dim, np.random.default_rng(3), None
        for ids, piece in zip(token_pieces, pieces):
            noise = torch.from_numpy(rng.standard_normal((1, 1, width), dtype=np.float32))
            step_noises = torch.from_numpy(rng.standard_normal((STEPS - 1, 1, 1, width), dtype=np.float32))
            seed["value"] = piece.noise_seed
            want = torch_synth.synthesize_tokens(ids, torch_synth.options, reference=reference,
                                                 previous_style=previous, noise=noise, step_noises=step_noises)
            previous = want.style
            assert np.abs(want.style.numpy() - piece.style).max() < 1e-5  # blended and mixed
            assert np.array_equal(want.durations.numpy(), piece.durations)
            # float32 rounding through the LSTMs and the vocoder, and for the voiced HiFi-GAN the
            # integrated source phase. Measured: iSTFTNet 119 dB (max abs 2e-6), HiFi-GAN 62 and 75 dB.
            assert snr_db(want.wave.numpy(), piece.wave) > (50 if model.multispeaker else 100)
    finally:
        model.decoder.forward = decoder_forward
