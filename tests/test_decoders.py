"""Decoders (iSTFTNet, HiFi-GAN), their NSF source and the iSTFTNet's STFT: state-dict layout,
shapes, noise control, phase precision, the exportable STFT backend, norm folding, input errors."""
import io
import math
import random
from pathlib import Path

import gin
import pytest
import torch
import torch.nn.functional as F

from styletts2.manifest import manifest_rows, read_manifest
from styletts2.modules.hifigan import HiFiGANDecoder
from styletts2.modules.istftnet import ISTFTNetDecoder
from styletts2.modules.norms import fold_norms, has_norm_hooks
from styletts2.modules.nsf import SineGen
from styletts2.modules.stft import STFT

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DECODERS = {"istftnet": ISTFTNetDecoder, "hifigan": HiFiGANDecoder}
# build_model's arguments for the two upstream configs.
FULL = {
    "istftnet": ("upstream_ljspeech_state_dict.tsv",
                 dict(dim_in=512, style_dim=128, dim_out=80, resblock_kernel_sizes=[3, 7, 11],
                      upsample_rates=[10, 6], upsample_initial_channel=512,
                      resblock_dilation_sizes=[[1, 3, 5]] * 3, upsample_kernel_sizes=[20, 12],
                      gen_istft_n_fft=20, gen_istft_hop_size=5)),
    "hifigan": ("upstream_libritts_state_dict.tsv",
                dict(dim_in=512, style_dim=128, dim_out=80, resblock_kernel_sizes=[3, 7, 11],
                     upsample_rates=[10, 5, 3, 2], upsample_initial_channel=512,
                     resblock_dilation_sizes=[[1, 3, 5]] * 3, upsample_kernel_sizes=[20, 10, 6, 4])),
}
SMALL = dict(dim_in=16, style_dim=8, upsample_initial_channel=16, hidden_dim=16, asr_res_dim=4,
             resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]])
SR = 24000


def small(kind: str, **kwargs):
    torch.manual_seed(0)
    return DECODERS[kind](**SMALL, **kwargs).eval()


def inputs(batch: int = 2, frames: int = 4):
    g = torch.Generator().manual_seed(1)
    f0 = 120 + 80 * torch.rand(batch, 2 * frames, generator=g)
    f0[:, :2] = 0  # unvoiced start
    return (torch.randn(batch, SMALL["dim_in"], frames, generator=g), f0,
            torch.randn(batch, 2 * frames, generator=g), torch.randn(batch, SMALL["style_dim"], generator=g))


# --- state dict layout ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DECODERS)
def test_state_dict_matches_upstream_manifest(kind):
    tsv, config = FULL[kind]
    expected = [row for row in read_manifest(REFERENCE / tsv) if row[0] == "decoder"]
    assert manifest_rows({"decoder": DECODERS[kind](**config)}) == expected


def test_stft_has_no_state():
    assert len(ISTFTNetDecoder(**SMALL).generator.stft.state_dict()) == 0


def test_gin_configurable():
    with gin.unlock_config():
        gin.parse_config(["HiFiGANDecoder.hidden_dim = 12", "ISTFTNetDecoder.hidden_dim = 12"])
    try:
        for kind in DECODERS:
            decoder = DECODERS[kind](**{k: v for k, v in SMALL.items() if k != "hidden_dim"})
            assert decoder.encode.conv1.weight_v.shape[0] == 12
    finally:
        gin.clear_config()


# --- STFT backends ----------------------------------------------------------------------------

def test_window_is_periodic_hann():
    n = torch.arange(20, dtype=torch.float64)
    expected = (0.5 - 0.5 * torch.cos(2 * math.pi * n / 20)).float()
    assert torch.equal(STFT(20, 5).window, expected)


def test_conv_and_torch_stft_agree():
    x = torch.randn(3, 2000)
    torch_stft, conv_stft = STFT(20, 5, "torch"), STFT(20, 5, "conv")
    mag_t, phase_t = torch_stft.transform(x)
    mag_c, phase_c = conv_stft.transform(x)
    assert mag_t.shape == mag_c.shape == (3, 11, 401)
    assert (mag_t - mag_c).abs().max() < 5e-6
    # Compare the complex values: the angle itself may wrap between -pi and pi.
    assert (torch.polar(mag_t, phase_t) - torch.polar(mag_c, phase_c)).abs().max() < 5e-6

    mag, phase = torch.rand(3, 11, 401) * 3, (torch.rand(3, 11, 401) * 2 - 1) * math.pi
    wav_t, wav_c = torch_stft.inverse(mag, phase), conv_stft.inverse(mag, phase)
    assert wav_t.shape == wav_c.shape == (3, 1, 2000)
    assert (wav_t - wav_c).abs().max() < 5e-6


@pytest.mark.parametrize("backend", ["torch", "conv"])
def test_stft_round_trip(backend):
    stft = STFT(20, 5, backend)
    x = torch.randn(2, 1000)
    assert (stft.inverse(*stft.transform(x)).squeeze(1) - x).abs().max() < 5e-6


def test_unknown_stft_backend():
    with pytest.raises(ValueError, match="backend"):
        STFT(20, 5, "fft")
    with pytest.raises(ValueError, match="backend"):
        ISTFTNetDecoder(**SMALL).stft_backend = "cuda"


def test_conv_stft_exports_to_onnx():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class RoundTrip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stft = STFT(20, 5, "conv")

        def forward(self, x):
            return self.stft.inverse(*self.stft.transform(x))

    buffer = io.BytesIO()
    torch.onnx.export(RoundTrip(), (torch.randn(1, 400),), buffer, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch", 1: "time"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue())
    x = torch.randn(2, 1000)  # other batch and length than traced
    y = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    assert y.shape == (2, 1, 1000)
    assert (y.squeeze(1) - x).abs().max() < 5e-6


# --- NSF source -------------------------------------------------------------------------------

def _constant_f0(hz: float, seconds: float) -> torch.Tensor:
    return torch.full((1, int(seconds * SR), 1), hz)


def _analytic_sines(hz: float, samples: int, harmonics: int) -> torch.Tensor:
    # Upstream's scheme gives phase 2 pi f (t + 150.5) / sr for constant F0 with a 300-sample
    # frame (frame-centre phases, linearly interpolated), away from the edges.
    t = torch.arange(samples, dtype=torch.float64).unsqueeze(1)
    k = torch.arange(1, harmonics + 1, dtype=torch.float64)
    return 0.1 * torch.sin(2 * math.pi * hz * k * (t + 150.5) / SR)


def test_sinegen_harmonics_and_voicing():
    gen = SineGen(SR, 300, harmonic_num=8, voiced_threshold=10, deterministic=True)
    f0 = _constant_f0(200.0, 0.1)
    f0[:, :600] = 0
    sines, uv = gen(f0)
    assert sines.shape == (1, 2400, 9) and uv.shape == (1, 2400, 1)
    assert torch.equal(uv[0, :, 0], (f0[0, :, 0] > 10).float())
    assert torch.all(sines[:, :600] == 0)
    expected = _analytic_sines(200.0, 2400, 9).float()
    assert (sines[0, 900:2000] - expected[900:2000]).abs().max() < 5e-5  # float32 phase


def test_sinegen_noise_is_scaled_by_voicing():
    gen = SineGen(SR, 300, harmonic_num=8, voiced_threshold=10, deterministic=True)
    f0 = _constant_f0(200.0, 0.05)
    f0[:, :600] = 0
    clean, uv = gen(f0)
    noise = torch.randn(1, 1200, 9)
    noisy, _ = gen(f0, noise=noise)
    amp = uv * 0.003 + (1 - uv) * 0.1 / 3
    assert torch.allclose(noisy, clean + amp * noise, atol=1e-7)
    assert torch.equal(gen(f0, noise=torch.zeros(1, 1200, 9))[0], clean)
    with pytest.raises(ValueError, match="noise must have shape"):
        gen(f0, noise=torch.randn(1, 1200, 8))
    with pytest.raises(ValueError, match="F0 of shape"):
        gen(f0.squeeze(2))


def test_sinegen_random_mode_draws():
    gen = SineGen(SR, 300, harmonic_num=8, voiced_threshold=10)
    f0 = _constant_f0(200.0, 0.05)
    torch.manual_seed(3)
    a, _ = gen(f0)
    torch.manual_seed(3)
    b, _ = gen(f0)
    assert torch.equal(a, b)
    assert not torch.equal(a, gen(f0)[0])


def test_initial_phase_is_lost_when_downsampling():
    # Upstream adds the random initial phase to the first sample's increment only; the linear
    # averaging down by the frame size (> 2) never reads that sample, so it has no effect.
    gen = SineGen(SR, 300, harmonic_num=8, deterministic=True)
    f0 = 150 + 50 * torch.rand(1, 3000, 1)
    assert torch.equal(gen(f0)[0], gen(f0, phase_offsets=torch.rand(1, 9))[0])


def test_precise_phase_over_ten_seconds():
    f0 = _constant_f0(233.0, 10.0)
    expected = _analytic_sines(233.0, f0.shape[1], 9)
    interior = slice(300, f0.shape[1] - 300)
    errors = {}
    for precise in (False, True):
        sines, _ = SineGen(SR, 300, harmonic_num=8, voiced_threshold=10, precise_phase=precise,
                           deterministic=True)(f0)
        errors[precise] = (sines[0, interior].double() - expected[interior]).abs().max().item()
    assert errors[True] < 1e-6  # float64 accumulation: only the final float32 rounding
    assert errors[False] > 1e-4  # float32 drift (upstream's arithmetic), about 1 % of the amplitude


# --- decoders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", DECODERS)
def test_output_shape_and_noise_control(kind):
    decoder = small(kind, deterministic=True)
    args = inputs(batch=2, frames=4)
    with torch.no_grad():
        wav = decoder(*args)
        assert wav.shape == (2, 1, 4 * 600)
        assert torch.isfinite(wav).all()
        assert torch.equal(decoder(*args), wav)  # no draws at all
        shape = decoder.noise_shape(args[1])
        assert shape == (2, 4 * 600, 9)
        assert torch.equal(decoder(*args, noise=torch.zeros(shape)), wav)
        noisy = decoder(*args, noise=torch.randn(shape))
        assert (noisy - wav).abs().max() > 1e-4
        decoder.deterministic = False
        torch.manual_seed(0)
        drawn = decoder(*args)
        torch.manual_seed(0)
        assert torch.equal(decoder(*args), drawn)
        assert not torch.equal(drawn, wav)


@pytest.mark.parametrize("kind", DECODERS)
def test_bad_inputs_are_reported(kind):
    decoder = small(kind)
    asr, f0, n, s = inputs(batch=1, frames=4)
    with pytest.raises(ValueError, match="F0_curve"):
        decoder(asr, f0[:, :-1], n, s)
    with pytest.raises(ValueError, match="N must have shape"):
        decoder(asr, f0, n[:, :4], s)
    with pytest.raises(ValueError, match="style"):
        decoder(asr, f0, n, s[0])
    with pytest.raises(ValueError, match="source noise"):
        decoder(asr, f0, n, s, noise=torch.zeros(1, 100, 9))


@pytest.mark.parametrize("kind", DECODERS)
def test_folded_norms_give_the_same_output(kind):
    decoder = small(kind, deterministic=True)
    args = inputs()
    with torch.no_grad():
        before = decoder(*args)
        fold_norms(decoder)
        assert not has_norm_hooks(decoder)
        after = decoder(*args)
    assert (after - before).abs().max() < 1e-5


def test_istftnet_conv_backend_runs():
    # Not compared with the torch backend here: the source STFT's raw phase is discontinuous
    # (bins that are real or zero in exact arithmetic get +-pi or an arbitrary angle from
    # rounding), so two correct STFTs can feed the network different phases. The transforms
    # themselves are compared in test_conv_and_torch_stft_agree.
    decoder = small("istftnet", deterministic=True, stft_backend="conv")
    with torch.no_grad():
        wav = decoder(*inputs())
    assert wav.shape == (2, 1, 2400) and torch.isfinite(wav).all()


@pytest.mark.parametrize("kind", DECODERS)
def test_training_mode_smooths_curves_and_trains(kind):
    decoder = small(kind, deterministic=True).train()
    args = inputs(batch=1, frames=8)
    random.seed(0)
    decoder(*args).square().mean().backward()
    assert decoder.encode.conv1.weight_v.grad is not None
    source_grad = decoder.generator.m_source.l_linear.weight.grad
    # Upstream's iSTFTNet builds its source under no_grad; its HiFi-GAN does not.
    assert (source_grad is None) == (kind == "istftnet")
    # Smoothing is random (python's RNG) and changes the output for some draws.
    outputs = set()
    with torch.no_grad():
        for seed in range(6):
            random.seed(seed)
            outputs.add(decoder(*args).sum().item())
    assert len(outputs) > 1
