"""Stage 2 and fine-tuning (styletts2/train/stage2.py, slm_adversarial.py) on a tiny model and an
8-clip espeak-ng corpus, plus the stage-2 experiment files.

Each step runs the stage's train_step directly on a fixed batch (no trainer)."""
from contextlib import nullcontext
from types import SimpleNamespace

import gin
import pytest
import torch
from torch import nn

from styletts2.checkpoint import CheckpointError, atomic_save, make_checkpoint
from styletts2.data.collate import Collater
from styletts2.data.dataset import SpeechDataset
from styletts2.data.make_corpus import make_corpus
from styletts2.data.readers import read_list, read_ood_texts
from styletts2.model import MODULE_NAMES, StyleTTS2, parse_gin
from styletts2.train import trainer  # noqa: F401  (registers Trainer for the experiment files)
from styletts2.train.batch_ops import (aligner_attention, monotonic_path, text_padding_mask,
                                       utterance_styles)
from styletts2.train.optim import MultiOptimizer
from styletts2.train.slm_adversarial import SLMAdversarial
from styletts2.train.stage import NonFiniteLoss, TrainingContext
from styletts2.train.stage2 import REINITIALISED, FinetuneStage, Stage2, TrainedAlignment

STAGE = ["gin/stage/random_init.gin", "gin/stage/tiny_adversaries.gin", "gin/stage/losses.gin",
         "gin/trainer/stage2_rates.gin"]
TINY = ["gin/model/tiny.gin"] + STAGE
TINY_MULTISPEAKER = ["gin/model/tiny_multispeaker.gin"] + STAGE  # LibriTTS structure: HiFi-GAN, reference styles
CPU = TrainingContext(device=torch.device("cpu"), autocast=nullcontext)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("corpus"), n=8)
    dataset = SpeechDataset(read_list(root / "train_list.txt", root=root),
                            ood_texts=read_ood_texts(root / "OOD_texts.txt"), ood_min_length=20)
    return Collater()([dataset[i] for i in range(2)])


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
    """A tiny stage-1 checkpoint. Its style encoder has run in train mode, as after stage 1, so its
    spectral norms have converged (fresh ones blow up in eval mode)."""
    gin.clear_config()
    model, path = _converged_checkpoint(TINY, 123, tmp_path_factory.mktemp("stage1") / "last.pth", epoch=3)
    return path, {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in model.nets.items()}


def _converged_checkpoint(config: str, seed: int, path, **meta):
    """(model, checkpoint path) of a random model built from `config` whose style encoder has run
    20 batches in train mode, so its spectral norms have converged."""
    parse_gin(config)
    torch.manual_seed(seed)
    model = StyleTTS2()
    model.style_encoder.train()
    with torch.no_grad():
        for _ in range(20):
            model.style_encoder(torch.randn(2, 1, 80, 96))
    path = atomic_save(make_checkpoint(model.nets, **meta), path)
    gin.clear_config()
    return model, path


def make_stage(checkpoint, bindings=(), cls=Stage2, config=TINY, **kwargs):
    parse_gin(config, list(bindings))
    torch.manual_seed(0)
    model = StyleTTS2()
    options = {"max_len": 100, "diff_epoch": 1, "joint_epoch": 2, "seed": 0,
               "slm_adversarial": SLMAdversarial(min_len=80, max_len=120, batch_percentage=1.0, skip_update=1)}
    stage = cls(checkpoint, **{**options, **kwargs})
    stage.setup(model, CPU)
    return model, stage


def same_state(module: nn.Module, state: dict) -> bool:
    return all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


def snapshot(model):
    return {name: {k: p.detach().clone() for k, p in m.named_parameters()} for name, m in model.nets.items()}


def changed(before, model) -> set[str]:
    return {name for name, m in model.nets.items()
            if any(not torch.equal(before[name][k], p) for k, p in m.named_parameters())}


# --- loading rules ------------------------------------------------------------------------------

def test_stage2_starts_from_stage1_with_upstream_rules(first_stage):
    """(c) stage-1 modules load; the others start fresh; predictor_encoder copies style_encoder."""
    path, saved = first_stage
    model, _ = make_stage(path)
    for name in MODULE_NAMES:
        if name in REINITIALISED:
            continue
        assert same_state(model.nets[name], saved[name]), name
    assert same_state(model.predictor_encoder, saved["style_encoder"])
    fresh = [n for n in REINITIALISED if n != "predictor_encoder"]
    assert not any(same_state(model.nets[n], saved[n]) for n in fresh)


def test_stage2_needs_a_complete_first_stage_checkpoint(first_stage, tmp_path):
    with pytest.raises(ValueError, match="first_stage_checkpoint"):
        make_stage(None)
    gin.clear_config()
    parse_gin(TINY)
    partial = StyleTTS2(modules=("bert", "decoder"))
    path = atomic_save(make_checkpoint(partial.nets), tmp_path / "partial.pth")
    gin.clear_config()
    with pytest.raises(CheckpointError, match="text_encoder"):
        make_stage(path)


# --- training -----------------------------------------------------------------------------------

def fixed_losses(model, stage, batch, fixed) -> tuple[float, float]:
    """Duration loss (ce x 20 + L1) and diffusion loss on the batch's current target styles with
    nothing random: eval mode, the noise levels and noises in `fixed`."""
    model.eval()
    with torch.no_grad():
        mask = text_padding_mask(batch.tokens, batch.token_lengths)
        _, attention, lengths = aligner_attention(model.text_aligner, batch.mels, batch.mel_lengths, batch.tokens,
                                                  batch.token_lengths, mask_unk=False)
        path = monotonic_path(attention, batch.token_lengths, lengths)
        bert_dur = model.bert(batch.tokens, attention_mask=(~mask).int())
        d_en = model.bert_encoder(bert_dur).transpose(-1, -2)
        prosodic = utterance_styles(model.predictor_encoder, batch.mels, batch.mel_lengths)
        logits, _ = model.predictor(d_en, prosodic, batch.token_lengths, path, mask)
        styles = torch.cat([utterance_styles(model.style_encoder, batch.mels, batch.mel_lengths), prosodic], dim=-1)
        ce, dur = stage.dur_loss(logits, path.sum(-1), batch.token_lengths)
        sigma_data, model.diffusion.sigma_data = model.diffusion.sigma_data, float(styles.std(dim=-1).mean())
        repeats = fixed["noise"].shape[0] // len(batch)
        diff = model.diffusion.diffusion.loss(styles.repeat(repeats, 1).unsqueeze(1), bert_dur.repeat(repeats, 1, 1),
                                              sigmas=fixed["sigmas"], noise=fixed["noise"])
        model.diffusion.sigma_data = sigma_data
    return float(stage.dur_loss.ce_weight * ce + dur), float(diff)


def test_tiny_stage2_runs_through_diffusion_and_joint_training(first_stage, batch):
    """(b) every phase's losses are finite and present, the right modules train, and the duration
    and diffusion losses fall."""
    model, stage = make_stage(first_stage[0], ["build_multi_optimizer.lr = 2e-3"])
    g = torch.Generator().manual_seed(0)
    draws = 4 * len(batch)
    fixed = {"sigmas": torch.exp(torch.randn(draws, generator=g) - 1.5),
             "noise": torch.randn(draws, 1, 2 * model.style_encoder.unshared.out_features, generator=g)}
    dur_start, diff_start = fixed_losses(model, stage, batch, fixed)

    common = {"F0", "norm", "mel", "slm", "ce", "dur"}
    phases = {0: common, 1: common | {"diff", "sty", "d_loss", "gen"},
              2: common | {"diff", "sty", "d_loss", "gen", "slm_gen", "slm_d_loss"}}
    step = 0
    for epoch, steps in ((0, 3), (1, 6), (2, 2)):
        for _ in range(steps):
            before = snapshot(model)
            out = stage.train_step(batch, epoch, step)
            step += 1
            assert not out.skipped
            assert set(out.losses) == phases[epoch], (epoch, out.losses)
            assert all(torch.isfinite(torch.tensor(v)) for v in out.losses.values()), out.losses
            trained = changed(before, model)
            assert {"bert", "bert_encoder", "predictor", "predictor_encoder"} <= trained
            assert {"text_encoder", "text_aligner", "pitch_extractor"}.isdisjoint(trained)
            assert ("diffusion" in trained) == ("mpd" in trained) == ("msd" in trained) == (epoch >= 1)
            assert ("decoder" in trained) == ("style_encoder" in trained) == ("wd" in trained) == (epoch >= 2)
    assert stage.sigma_count == 8 and 0.01 < model.diffusion.sigma_data < 5
    dur_end, diff_end = fixed_losses(model, stage, batch, fixed)
    assert dur_end < dur_start and diff_end < diff_start, (dur_start, dur_end, diff_start, diff_end)


def test_zero_weight_adversarial_losses_are_not_computed(first_stage, batch):
    """GeneratorLoss.weight = 0 skips the MPD/MSD step and the generator term; WavLMLoss.weight = 0
    the feature matching: the discriminators stay as they were, the rest trains."""
    model, stage = make_stage(first_stage[0], ["GeneratorLoss.weight = 0.0", "WavLMLoss.weight = 0.0"])
    before = snapshot(model)
    out = stage.train_step(batch, 1, 0)
    assert set(out.losses) == {"F0", "norm", "mel", "ce", "dur", "diff", "sty"}, out.losses
    trained = changed(before, model)
    assert {"mpd", "msd"}.isdisjoint(trained) and {"predictor", "diffusion"} <= trained


def test_without_decoder_losses_the_decoder_does_not_run(first_stage, batch, monkeypatch):
    """Before the joint phase, with the mel, adversarial and SLM weights all 0, nothing reads the
    decoder's output: it is not run, and the predictor and diffusion still train."""
    model, stage = make_stage(first_stage[0], ["GeneratorLoss.weight = 0.0", "WavLMLoss.weight = 0.0",
                                               "MultiResolutionSTFTLoss.weight = 0.0"])
    calls = []
    monkeypatch.setattr(model.decoder, "forward", lambda *a, **k: calls.append(1))
    before = snapshot(model)
    out = stage.train_step(batch, 1, 0)
    assert not calls
    assert set(out.losses) == {"F0", "norm", "ce", "dur", "diff", "sty"}, out.losses
    assert {"predictor", "diffusion"} <= changed(before, model)


def test_non_finite_loss_raises_and_changes_nothing(first_stage, batch, monkeypatch):
    """(d) a NaN F0 loss: step_on refuses the generator step before any update."""
    model, stage = make_stage(first_stage[0])
    monkeypatch.setattr(stage.f0_loss, "forward", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    before, optimizer_state = snapshot(model), repr(stage.optimizer.state_dict())
    with pytest.raises(NonFiniteLoss, match="nan"):
        stage.train_step(batch, 0, 0)
    assert not changed(before, model)
    assert repr(stage.optimizer.state_dict()) == optimizer_state


def test_validation_step_reports_mel_duration_and_f0(first_stage, batch):
    model, stage = make_stage(first_stage[0])
    model.eval()
    with torch.no_grad():
        out = stage.validation_step(batch, 0)
    assert set(out) == {"mel", "dur", "F0"} and all(0 <= v < 100 for v in out.values()), out


def test_validation_decodes_whole_clips_from_predicted_prosody_when_bound(first_stage, batch, monkeypatch):
    from styletts2.train.validation_scores import ValidationScores

    handed = []
    monkeypatch.setattr(ValidationScores, "score", lambda self, decoded, recordings, rate: handed.append(
        [(d.numel(), r.numel()) for d, r in zip(decoded, recordings, strict=True)]) or {"score_dnsmos": 2.0})
    model, stage = make_stage(first_stage[0], ["ValidationScores.clips = 1"])
    model.eval()
    with torch.no_grad():
        out = stage.validation_step(batch, 0)
    assert set(out) == {"mel", "dur", "F0", "score_dnsmos"}
    [[(decoded, recording)]] = handed
    assert decoded == int(batch.mel_lengths[0]) // 2 * 2 * 300 and decoded - 300 < recording <= decoded


# --- SLM adversarial gradient rescaling --------------------------------------------------------

def _toy_model():
    predictor = nn.Module()
    predictor.duration_proj, predictor.lstm, predictor.other = nn.Linear(2, 1), nn.Linear(2, 1), nn.Linear(2, 1)
    return SimpleNamespace(predictor=predictor, diffusion=nn.Linear(2, 1), bert=nn.Linear(2, 1))


@pytest.mark.parametrize("weight", [1.0, 100.0])
def test_slm_generator_step_rescales_gradients_as_upstream(weight):
    """Above `thresh`, every gradient is divided by the predictor's gradient norm; the duration head
    and the diffusion model's gradients are then scaled by `scale`. SGD(lr=1) makes the update -grad."""
    model = _toy_model()
    modules = {"predictor": model.predictor, "diffusion": model.diffusion, "bert": model.bert}
    optimizer = MultiOptimizer({n: torch.optim.SGD(m.parameters(), lr=1.0) for n, m in modules.items()},
                               modules=modules)
    x = torch.tensor([[1.0, -2.0]])
    loss = weight * sum(m(x).sum() for m in (model.predictor.duration_proj, model.predictor.lstm,
                                             model.predictor.other, model.diffusion, model.bert))
    before = {id(p): p.detach().clone() for p in optimizer.parameters()}
    norm = float(SLMAdversarial(thresh=5.0, scale=0.01).generator_step(optimizer, loss, list(modules), model))
    grad = torch.tensor([1.0, -2.0, 1.0]) * weight  # gradient of each layer's (weight, bias)
    assert norm == pytest.approx(float(grad.norm()) * 3 ** 0.5, rel=1e-6)  # three predictor layers
    divisor = norm if norm > 5.0 else 1.0
    scaled = {id(p) for m in (model.predictor.duration_proj, model.predictor.lstm, model.diffusion)
              for p in m.parameters()}
    for p in optimizer.parameters():
        expected = (grad[:2] if p.dim() == 2 else grad[2:]) / divisor * (0.01 if id(p) in scaled else 1.0)
        assert torch.allclose(before[id(p)] - p.detach(), expected.view_as(p), rtol=1e-5)


def test_slm_generator_step_refuses_a_non_finite_loss():
    model = _toy_model()
    modules = {"bert": model.bert}
    optimizer = MultiOptimizer({"bert": torch.optim.SGD(model.bert.parameters(), lr=1.0)}, modules=modules)
    before = [p.detach().clone() for p in model.bert.parameters()]
    with pytest.raises(NonFiniteLoss):
        SLMAdversarial().generator_step(optimizer, model.bert(torch.ones(1, 2)).sum() * float("nan"), ["bert"], model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.bert.parameters()))


def test_multispeaker_stage2_joint_step_uses_reference_styles(first_stage, batch, tmp_path):
    """The multispeaker path (tiny LibriTTS structure): styles from a second window, a diffusion
    conditioned on reference styles (with classifier-free dropout in its loss), the SLM step
    sampling with them."""
    _, path = _converged_checkpoint(TINY_MULTISPEAKER, 5, tmp_path / "stage1_multispeaker.pth")
    model, stage = make_stage(path, config=TINY_MULTISPEAKER)
    assert model.diffusion.multispeaker and type(model.decoder).__name__ == "HiFiGANDecoder"
    out = stage.train_step(batch, 2, 0)
    assert {"diff", "sty", "slm_gen", "slm_d_loss"} <= set(out.losses), out.losses
    assert all(torch.isfinite(torch.tensor(v)) for v in out.losses.values()), out.losses


# --- fine-tuning ----------------------------------------------------------------------------------

def test_finetune_loads_a_whole_checkpoint_and_trains_the_aligner(first_stage, batch, tmp_path):
    model, stage = make_stage(first_stage[0])
    model.diffusion.sigma_data = 0.31
    second = atomic_save(make_checkpoint(model.nets, sigma_data=0.31), tmp_path / "stage2.pth")
    saved = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in model.nets.items()}
    gin.clear_config()
    model, stage = make_stage(second, ["build_multi_optimizer.ft_lr = 1e-4"], cls=FinetuneStage)
    assert all(same_state(model.nets[name], saved[name]) for name in MODULE_NAMES)
    assert model.diffusion.sigma_data == pytest.approx(0.31)
    assert stage.optimizer.lr("decoder") == 1e-4 and stage.optimizer.lr("bert") == 1e-5
    before = snapshot(model)
    out = stage.train_step(batch, 0, 0)
    assert set(out.losses) == {"F0", "norm", "d_loss", "mel", "gen", "slm", "ce", "dur", "mono", "s2s"}
    assert all(torch.isfinite(torch.tensor(v)) for v in out.losses.values()), out.losses
    assert changed(before, model) == {"bert", "bert_encoder", "predictor", "predictor_encoder", "style_encoder",
                                      "decoder", "text_encoder", "text_aligner", "mpd", "msd"}


# --- experiment files --------------------------------------------------------------------------

@pytest.mark.parametrize("path, values", [
    ("gin/stage2_ljspeech.gin", {"Trainer.epochs": 100, "Trainer.batch_size": 16, "Stage2.max_len": 400,
                                 "Stage2.diff_epoch": 20, "Stage2.joint_epoch": 50, "SLMAdversarial.skip_update": 10,
                                 "Stage2.first_stage_checkpoint": "runs/ljspeech/stage1/last.pth"}),
    ("gin/stage2_libritts.gin", {"Trainer.epochs": 30, "Trainer.batch_size": 16, "Stage2.max_len": 300,
                                 "Stage2.diff_epoch": 10, "Stage2.joint_epoch": 15, "SLMAdversarial.skip_update": 20,
                                 "StyleTTS2.multispeaker": True}),
    ("gin/finetune_libritts.gin", {"Trainer.epochs": 50, "Trainer.batch_size": 8, "FinetuneStage.max_len": 400,
                                   "FinetuneStage.diff_epoch": 10, "FinetuneStage.joint_epoch": 30,
                                   "build_multi_optimizer.ft_lr": 1e-4, "SLMAdversarial.skip_update": 10,
                                   "StyleTTS2.multispeaker": True}),
    ("gin/tiny_stage2.gin", {"Trainer.epochs": 3, "Stage2.diff_epoch": 1, "Stage2.joint_epoch": 2,
                             "load_pretrained_parts.allow_random_init": True}),
])
def test_stage2_experiments_bind_upstream_values(path, values):
    parse_gin([path])
    common = {"build_multi_optimizer.lr": 1e-4, "build_multi_optimizer.bert_lr": 1e-5, "DurationLoss.ce_weight": 20.0,
              "MultiResolutionSTFTLoss.weight": 5.0, "SLMAdversarial.min_len": 80 if "tiny" in path else 400,
              "SLMAdversarial.batch_percentage": 0.5, "SLMAdversarial.thresh": 5.0, "SLMAdversarial.scale": 0.01,
              "SLMAdversarial.sig": 1.5}
    if "finetune" not in path:
        common["build_multi_optimizer.ft_lr"] = 1e-5
    for name, value in {**common, **values}.items():
        assert gin.query_parameter(name) == value, name


def test_cached_frozen_targets_give_the_same_alignment_and_skip_the_aligner(first_stage, batch, monkeypatch):
    """Stage2.cache_frozen_targets: the path comes from the eval-mode aligner without random <unk>
    masking, and once every clip is cached neither the aligner nor the pitch extractor runs."""
    model, stage = make_stage(first_stage[0], cache_frozen_targets=True)
    stage._set_modes()
    asr, path, _, _ = stage.alignment(model, batch, stage.rng.cpu)
    _, attention, align_lengths = aligner_attention(model.text_aligner, batch.mels, batch.mel_lengths, batch.tokens,
                                                    batch.token_lengths, mask_unk=False)
    assert torch.equal(path, monotonic_path(attention, batch.token_lengths, align_lengths))
    with torch.no_grad():
        t_en = model.text_encoder(batch.tokens, batch.token_lengths, text_padding_mask(batch.tokens, batch.token_lengths))
    assert torch.equal(asr, t_en @ path)

    model, stage = make_stage(first_stage[0], cache_frozen_targets=True)
    stage.train_step(batch, 0, 0)
    monkeypatch.setattr(model.text_aligner, "forward", lambda *a, **k: pytest.fail("aligner ran again"))
    monkeypatch.setattr(model.pitch_extractor, "forward", lambda *a, **k: pytest.fail("pitch extractor ran again"))
    out = stage.train_step(batch, 0, 1)
    assert not out.skipped and all(torch.isfinite(torch.tensor(v)) for v in out.losses.values())


def test_cached_acoustic_styles_equal_the_encoders_and_are_used_before_the_joint_phase_only(
        first_stage, batch, monkeypatch):
    """Stage2.cache_frozen_targets also keeps each clip's acoustic style while the style encoder is
    frozen (eval mode, not trained): the value a step would compute; from the joint phase it runs again."""
    import styletts2.train.stage2 as stage2_module

    model, stage = make_stage(first_stage[0], cache_frozen_targets=True)
    stage.train_step(batch, 0, 0)
    with torch.no_grad():
        assert not model.style_encoder.training
        fresh = utterance_styles(model.style_encoder, batch.mels, batch.mel_lengths)
    assert torch.equal(stage.cache.styles(model.style_encoder, batch), fresh)
    encoders = []
    monkeypatch.setattr(stage2_module, "utterance_styles",
                        lambda encoder, *a: encoders.append(encoder) or utterance_styles(encoder, *a))
    stage._text_pass(batch, True, {}, style_encoder_trains=False)
    assert encoders == [model.predictor_encoder]
    stage._text_pass(batch, True, {}, style_encoder_trains=True)
    assert encoders[1:] == [model.style_encoder, model.predictor_encoder]


def test_fine_tuning_never_caches_the_aligner():
    assert "cache_frozen_targets" not in FinetuneStage.__init__.__code__.co_varnames
    finetune = FinetuneStage()
    assert isinstance(finetune.alignment, TrainedAlignment) and finetune.cache is None
    assert Stage2(cache_frozen_targets=True).cache is not None


def _joint_step(first_stage, batch, monkeypatch, parts) -> tuple[list[list[torch.Tensor]], int]:
    """The gradients each optimizer step of one joint-phase step sees, and the step's peak of live
    tensor bytes, with `checkpoint_activations.parts` bound to `parts`."""
    from styletts2.train.memory import LiveTensorBytes

    model, stage = make_stage(first_stage[0], [f"checkpoint_activations.parts = {parts!r}"])
    grads, original = [], MultiOptimizer.step_on

    def recording(self, loss, names, *args, before_step=None, **kwargs):
        def record(gradients):
            grads.append([g.clone() for g in gradients])
            if before_step is not None:
                before_step(gradients)
        return original(self, loss, names, *args, before_step=record, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(MultiOptimizer, "step_on", recording)
        torch.manual_seed(1)
        with LiveTensorBytes("cpu") as live:
            live.track(model, stage.optimizer.optimizers, batch)
            stage.train_step(batch, 2, 0)
    return grads, live.peak_bytes


def test_activation_checkpointing_keeps_every_gradient_and_lowers_the_peak(first_stage, batch, monkeypatch):
    """The joint phase (decoder, discriminators, WavLM and diffusion all run with gradients):
    every part checkpointed gives the same gradients, within 1e-6 relative, at a lower peak."""
    from styletts2.train.activation_checkpointing import PARTS

    plain, plain_peak = _joint_step(first_stage, batch, monkeypatch, ())
    saved, saved_peak = _joint_step(first_stage, batch, monkeypatch, PARTS)
    assert len(plain) == len(saved) >= 4  # discriminators, generator, SLM discriminator and generator
    for before, after in zip(plain, saved):
        assert len(before) == len(after)
        for a, b in zip(before, after):
            assert (b - a).norm() <= 1e-6 * a.norm() + 1e-12
    assert saved_peak < 0.9 * plain_peak, (saved_peak, plain_peak)
    with pytest.raises(ValueError, match="unknown"):
        make_stage(first_stage[0], ["checkpoint_activations.parts = ('vocoder',)"])
