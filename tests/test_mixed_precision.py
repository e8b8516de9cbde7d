"""Mixed precision on CPU, standing in for CUDA (issue 15): the float paths that need float32 get
it whatever dtype autocast hands them, and the training stages run under autocast in bf16 and
fp16 (with loss scaling) with finite losses."""
import pytest
import torch

from styletts2.alignment import mask_from_lens, maximum_path
from styletts2.modules.nsf import SineGen
from styletts2.modules.stft import STFT

HALF = (torch.float16, torch.bfloat16)


# --- float32 where the math needs it ---------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "conv"])
@pytest.mark.parametrize("magnitude_dtype, phase_dtype", [(torch.float32, torch.float16), (torch.bfloat16, torch.float32),
                                                          (torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16)])
def test_inverse_stft_takes_mixed_dtypes_and_returns_float32(backend, magnitude_dtype, phase_dtype):
    """CUDA autocast leaves the decoder's phase (sin) in half precision and its magnitude (exp) in
    float32; torch.polar refuses that pair (and bf16 altogether)."""
    stft = STFT(20, 5, backend)
    g = torch.Generator().manual_seed(0)
    magnitude, phase = torch.rand(2, 11, 9, generator=g), torch.rand(2, 11, 9, generator=g)
    reference = stft.inverse(magnitude, phase)
    out = stft.inverse(magnitude.to(magnitude_dtype), phase.to(phase_dtype))
    assert out.dtype == torch.float32 and out.shape == reference.shape
    expected = stft.inverse(magnitude.to(magnitude_dtype).float(), phase.to(phase_dtype).float())
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    magnitude2, phase2 = stft.transform(out.squeeze(1).to(torch.bfloat16))
    assert magnitude2.dtype == phase2.dtype == torch.float32


@pytest.mark.parametrize("dtype", HALF)
def test_istftnet_generator_runs_under_autocast(dtype):
    from styletts2.modules.istftnet import ISTFTNetGenerator

    torch.manual_seed(0)
    gen = ISTFTNetGenerator(style_dim=8, resblock_kernel_sizes=(3,), upsample_rates=(10, 6),
                            upsample_initial_channel=16, resblock_dilation_sizes=((1, 3, 5),),
                            upsample_kernel_sizes=(20, 12), gen_istft_n_fft=20, gen_istft_hop_size=5,
                            deterministic=True)
    x, s, f0 = torch.randn(1, 16, 20), torch.randn(1, 8), torch.full((1, 20), 150.0)
    with torch.autocast("cpu", dtype=dtype):
        wav = gen(x, s, f0.to(dtype))
    assert wav.dtype == torch.float32 and wav.shape == (1, 1, 6000) and torch.isfinite(wav).all()


@pytest.mark.parametrize("dtype", HALF)
def test_sine_phase_is_accumulated_in_float32_for_half_f0(dtype):
    """8 s of a 220 Hz F0 in fp16: a half-precision running phase overflows (NaN) or drifts by
    whole cycles; computed in float32 it matches the float32 sines to the output's precision."""
    gen = SineGen(24000, 300, harmonic_num=8, deterministic=True)
    f0 = torch.full((1, 24000 * 8, 1), 220.0)
    reference, _ = gen(f0)
    sines, uv = gen(f0.to(dtype))
    assert sines.dtype == uv.dtype == dtype
    torch.testing.assert_close(sines.float(), reference, rtol=0, atol=1e-3)


def test_monotonic_path_of_bf16_attention_equals_float32():
    """bf16 attention (autocast) has no numpy dtype, and a bf16 mask counts 300 frames as 300 only
    by luck (257 ones sum to 256)."""
    g = torch.Generator().manual_seed(0)
    attention = torch.rand(2, 40, 301, generator=g).softmax(dim=1)
    text, mel = torch.tensor([40, 33]), torch.tensor([301, 257])
    half = attention.bfloat16()
    path = maximum_path(half, mask_from_lens(half, text, mel))
    expected = maximum_path(half.float(), mask_from_lens(half.float(), text, mel))
    assert path.dtype == torch.bfloat16 and torch.equal(path.float(), expected)
    assert expected.sum(dim=(1, 2)).tolist() == [301, 257]


# --- loss scaling: one update per training step ---------------------------------------------------

def _scaled_toy(init_scale=2.0**10):
    from styletts2.train.optim import LossScaler, build_multi_optimizer
    from styletts2.train.stage import TrainingContext

    torch.manual_seed(0)
    modules = {"gen": torch.nn.Linear(4, 1), "disc": torch.nn.Linear(4, 1), "unused": torch.nn.Linear(4, 1)}
    scaler = LossScaler(init_scale=init_scale, growth_interval=2)
    ctx = TrainingContext(device=torch.device("cpu"), grad_scaler=scaler)
    return modules, scaler, build_multi_optimizer(modules, lr=1e-2, ctx=ctx)


def test_scaler_leaves_optimizers_without_gradients_alone():
    """Stage 2's SLM generator step on in-distribution styles gives diffusion no gradient; with
    GradScaler that raised 'No inf checks were recorded for this optimizer'."""
    modules, scaler, opt = _scaled_toy()
    before = modules["unused"].weight.detach().clone()
    opt.step_on(modules["gen"](torch.randn(3, 4)).pow(2).mean(), ["gen", "unused"])
    scaler.update()
    assert torch.equal(modules["unused"].weight, before) and not opt.optimizers["unused"].state
    assert opt.schedulers["unused"].last_epoch == 0 and opt.schedulers["gen"].last_epoch == 1


def test_overflow_in_one_loss_skips_only_its_step_and_backs_off_once_per_step():
    """An overflow in the discriminator's loss skips the discriminator, not the generator, and
    halves the scale once, at the end of the step; an optimiser may step twice in one step."""
    modules, scaler, opt = _scaled_toy()
    x = torch.randn(3, 4)
    gen_before, disc_before = modules["gen"].weight.detach().clone(), modules["disc"].weight.detach().clone()
    opt.step_on(torch.sqrt(modules["disc"](torch.zeros(1, 4)).sum() * 0), ["disc"])  # infinite gradient
    opt.step_on(modules["gen"](x).pow(2).mean(), ["gen"])
    opt.step_on(modules["gen"](x).pow(2).mean(), ["gen"])  # the same optimiser again (stage 2's SLM step)
    assert scaler.get_scale() == 2.0**10  # nothing changes before the step ends
    scaler.update()
    assert scaler.get_scale() == 2.0**9
    assert torch.equal(modules["disc"].weight, disc_before) and opt.schedulers["disc"].last_epoch == 0
    assert not torch.equal(modules["gen"].weight, gen_before) and opt.schedulers["gen"].last_epoch == 2
    for _ in range(2):  # growth_interval clean steps double it
        opt.step_on(modules["gen"](x).pow(2).mean(), ["gen"])
        opt.step_on(modules["disc"](x).pow(2).mean(), ["disc"])
        scaler.update()
    assert scaler.get_scale() == 2.0**10


def test_scaled_gradients_equal_unscaled_ones():
    modules, scaler, opt = _scaled_toy(init_scale=2.0**12)
    x = torch.randn(3, 4)
    norm = opt.step_on(modules["gen"](x).pow(2).mean(), ["gen"])
    modules2, _, _ = _scaled_toy()
    from styletts2.train.optim import build_multi_optimizer

    plain = build_multi_optimizer(modules2, lr=1e-2)
    assert norm == pytest.approx(plain.step_on(modules2["gen"](x).pow(2).mean(), ["gen"]), rel=1e-6)
    torch.testing.assert_close(modules["gen"].weight, modules2["gen"].weight)


def test_scaler_state_is_gradscalers():
    from styletts2.train.optim import LossScaler

    torch_state = torch.amp.GradScaler("cpu", init_scale=512.0, growth_interval=7).state_dict()
    scaler = LossScaler()
    scaler.load_state_dict(torch_state)
    assert scaler.get_scale() == 512.0 and scaler.growth_interval == 7
    assert set(scaler.state_dict()) == set(torch_state)


# --- the training stages under CPU autocast ---------------------------------------------------------

@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two clips of the espeak-ng corpus (with OOD texts for the SLM step) and a tiny stage-1
    checkpoint whose style encoder ran in train mode (see test_stage2.first_stage)."""
    import gin
    from test_stage2 import TINY, _converged_checkpoint

    from styletts2.data.collate import Collater
    from styletts2.data.dataset import SpeechDataset
    from styletts2.data.make_corpus import make_corpus
    from styletts2.data.readers import read_list, read_ood_texts

    root = make_corpus(tmp_path_factory.mktemp("corpus"), n=4)
    dataset = SpeechDataset(read_list(root / "train_list.txt", root=root),
                            ood_texts=read_ood_texts(root / "OOD_texts.txt"), ood_min_length=20)
    gin.clear_config()
    _, first_stage = _converged_checkpoint(TINY, 123, tmp_path_factory.mktemp("stage1") / "last.pth")
    return Collater()([dataset[i] for i in range(2)]), first_stage


def _context(dtype):
    from functools import partial

    from styletts2.train.optim import LossScaler
    from styletts2.train.stage import TrainingContext

    return TrainingContext(device=torch.device("cpu"), autocast=partial(torch.autocast, "cpu", dtype=dtype),
                           grad_scaler=LossScaler() if dtype == torch.float16 else None)


def _run(stage, ctx, batch, phases) -> list[dict]:
    """One step per epoch in `phases`; the trainer's scale update after each."""
    out = []
    for step, epoch in enumerate(phases):
        result = stage.train_step(batch, epoch, step)
        if ctx.grad_scaler is not None:
            ctx.grad_scaler.update()
        assert not result.skipped, result.reason
        out.append(result.losses)
    return out


def _all_finite(losses: list[dict]) -> bool:
    return all(torch.isfinite(torch.tensor(v)) for step in losses for v in step.values())


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("dtype", HALF, ids=["fp16", "bf16"])
def test_stage1_runs_under_autocast(speech, dtype):
    """Before and from TMA (aligner, discriminators, WavLM feature matching)."""
    from test_stage1 import TINY

    from styletts2.model import StyleTTS2, parse_gin
    from styletts2.train.stage1 import Stage1

    parse_gin(TINY)
    torch.manual_seed(0)
    model, ctx = StyleTTS2(), _context(dtype)
    stage = Stage1(max_len=100, TMA_epoch=1, seed=0)
    stage.setup(model, ctx)
    losses = _run(stage, ctx, speech[0], [1])  # from TMA: every loss (before TMA: the mel loss alone)
    assert set(losses[0]) == {"d_loss", "mel", "mono", "s2s", "gen", "slm"}
    assert _all_finite(losses), losses


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("dtype", HALF, ids=["fp16", "bf16"])
def test_stage2_runs_under_autocast_through_joint_training(speech, dtype):
    """Diffusion + adversarial (a superset of the first phase's work), then joint training with
    SLM adversarial."""
    from test_stage2 import TINY

    from styletts2.model import StyleTTS2, parse_gin
    from styletts2.train.slm_adversarial import SLMAdversarial
    from styletts2.train.stage2 import Stage2

    parse_gin(TINY)
    torch.manual_seed(0)
    model, ctx = StyleTTS2(), _context(dtype)
    stage = Stage2(speech[1], max_len=100, diff_epoch=1, joint_epoch=2, seed=0,
                   slm_adversarial=SLMAdversarial(min_len=80, max_len=120, batch_percentage=1.0, skip_update=1))
    stage.setup(model, ctx)
    losses = _run(stage, ctx, speech[0], [1, 2])
    assert {"diff", "sty", "gen"} <= set(losses[0]) and {"slm_gen", "slm_d_loss"} <= set(losses[1])
    assert _all_finite(losses), losses
