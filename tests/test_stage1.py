"""Stage 1 (styletts2/train/stage1.py) on a tiny model and an 8-clip espeak-ng corpus, plus the
pretrained-part loader and the stage-1 experiment files.

Each step runs Stage1.train_step directly on a fixed batch (no trainer)."""
import copy
import random
from contextlib import nullcontext

import gin
import pytest
import torch

from styletts2.data.collate import Collater
from styletts2.data.dataset import SpeechDataset
from styletts2.data.make_corpus import make_corpus
from styletts2.data.readers import read_list
from styletts2.model import StyleTTS2, parse_gin
from styletts2.train import trainer  # noqa: F401  (registers Trainer for the experiment files)
from styletts2.train.pretrained import MissingPretrained, load_pretrained_parts, load_wavlm
from styletts2.train.stage import NonFiniteLoss, TrainingContext
from styletts2.train.stage1 import Stage1

TINY = ["gin/model/tiny.gin", "gin/stage/random_init.gin", "gin/stage/tiny_adversaries.gin", "gin/stage/losses.gin"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = make_corpus(tmp_path_factory.mktemp("corpus"), n=8)
    records = read_list(root / "train_list.txt", root=root)
    dataset = SpeechDataset(records)
    return [dataset[i] for i in range(len(dataset))]


def make_stage(bindings=(), **kwargs) -> tuple[StyleTTS2, Stage1]:
    parse_gin(TINY, list(bindings))
    torch.manual_seed(0)
    model = StyleTTS2()
    stage = Stage1(**{"max_len": 100, "TMA_epoch": 1, "seed": 0, **kwargs})
    stage.setup(model, TrainingContext(device=torch.device("cpu"), autocast=nullcontext))
    return model, stage


def snapshot(model: StyleTTS2) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: p.detach().clone() for k, p in m.named_parameters()} for name, m in model.nets.items()}


def changed(before, model: StyleTTS2) -> set[str]:
    return {name for name, m in model.nets.items()
            if any(not torch.equal(before[name][k], p) for k, p in m.named_parameters())}


def test_tiny_stage1_overfits_the_corpus(clips):
    """(a) the mel loss on the same 4 clips falls to under half its first value. The frozen aligner's
    and pitch extractor's targets are cached (the full-size pitch extractor would be a third of
    each step); the uncached step is trained in the tests below."""
    batch = Collater()(clips[:4])
    _, stage = make_stage(["build_multi_optimizer.lr = 5e-3"], TMA_epoch=1000, cache_frozen_targets=True)
    losses = [stage.train_step(batch, 0, step).losses["mel"] for step in range(25)]
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


@pytest.mark.parametrize("multispeaker", [False, True])
def test_before_tma_only_the_mel_loss_trains_the_acoustic_modules(clips, multispeaker):
    model, stage = make_stage([f"StyleTTS2.multispeaker = {multispeaker}"])
    before = snapshot(model)
    out = stage.train_step(Collater()(clips[:2]), 0, 0)
    assert set(out.losses) == {"mel"} and not out.skipped
    assert changed(before, model) == {"text_encoder", "style_encoder", "decoder"}


def test_from_tma_the_aligner_and_discriminators_train(clips):
    model, stage = make_stage()
    before = snapshot(model)
    out = stage.train_step(Collater()(clips[:2]), 1, 0)
    assert set(out.losses) == {"d_loss", "mel", "mono", "s2s", "gen", "slm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in out.losses.values()), out.losses
    # The pitch extractor runs under no_grad and the SLM discriminator belongs to stage 2.
    assert changed(before, model) == {"text_encoder", "style_encoder", "decoder", "text_aligner", "mpd", "msd"}


@pytest.mark.parametrize("slm_weight", [1.0, 0.0])
def test_an_earlier_adversarial_epoch_trains_the_discriminators_with_the_aligner_frozen(clips, slm_weight):
    """`adversarial_epoch` before `TMA_epoch`: the discriminators step and the generator losses train
    the acoustic modules from the cached targets; the aligner and its losses wait for TMA. A zero
    SLM weight leaves that loss out."""
    model, stage = make_stage([f"WavLMLoss.weight = {slm_weight}"], TMA_epoch=1000, adversarial_epoch=0,
                              cache_frozen_targets=True)
    before = snapshot(model)
    out = stage.train_step(Collater()(clips[:2]), 0, 0)
    assert set(out.losses) == {"d_loss", "mel", "gen"} | ({"slm"} if slm_weight else set())
    assert changed(before, model) == {"text_encoder", "style_encoder", "decoder", "mpd", "msd"}
    assert len(stage.cache._alignments) == 2  # the alignment came from the frozen-target cache


def test_style_crop_too_short_skips_the_step(clips):
    model, stage = make_stage(max_len=60)  # 30 alignment frames = 60 mel frames < 80
    before = snapshot(model)
    out = stage.train_step(Collater()(clips[:2]), 0, 0)
    assert out.skipped and "80" in out.reason
    assert not changed(before, model)


@pytest.mark.parametrize("epoch", [0, 1])
def test_non_finite_loss_raises_and_changes_nothing(clips, epoch, monkeypatch):
    """(d) before TMA the mel loss, from TMA the discriminator loss (the first update) is NaN."""
    model, stage = make_stage()
    target = stage.stft_loss if epoch == 0 else stage.disc_loss
    monkeypatch.setattr(target, "forward", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    before, optimizer_state = snapshot(model), repr(stage.optimizer.state_dict())
    with pytest.raises(NonFiniteLoss):
        stage.train_step(Collater()(clips[:2]), epoch, 0)
    assert not changed(before, model)
    assert repr(stage.optimizer.state_dict()) == optimizer_state
    assert all(p.grad is None for p in model.parameters())


def test_stage_state_resumes_exactly(clips):
    """Crops and soft/hard choices come from the stage's generator: restoring the stage state, the
    weights and the global RNGs (as the trainer does) replays the same steps."""
    batch = Collater()(clips[:2])
    model, stage = make_stage(TMA_epoch=1000)
    stage.train_step(batch, 0, 0)
    saved = copy.deepcopy((model.state_dict(), stage.state_dict(), torch.get_rng_state(), random.getstate()))
    first = [stage.train_step(batch, 0, i).losses["mel"] for i in (1, 2)]
    model.load_state_dict(saved[0])
    stage.load_state_dict(saved[1])
    torch.set_rng_state(saved[2])
    random.setstate(saved[3])  # the decoder's training-time F0/N smoothing draws from python's RNG
    assert [stage.train_step(batch, 0, i).losses["mel"] for i in (1, 2)] == first


def test_validation_step_reports_the_mel_loss(clips):
    model, stage = make_stage()
    stage.train_step(Collater()(clips[:2]), 0, 0)  # style encoder's spectral norms need a train-mode pass
    model.eval()
    with torch.no_grad():
        out = stage.validation_step(Collater()(clips[:2]), 0)
    assert set(out) == {"mel"} and 0 < out["mel"] < 10


def test_validation_decodes_whole_clips_for_the_evaluator_when_bound(clips, monkeypatch):
    """ValidationScores.clips = 3: the first 3 clips of each validation are decoded whole (as long
    as their recordings, to the alignment frame) and handed to the evaluator; the count restarts
    with the next validation."""
    from styletts2.train.validation_scores import ValidationScores

    handed = []

    def fake_score(self, decoded, recordings, sample_rate):
        handed.append([(d.numel(), r.numel()) for d, r in zip(decoded, recordings, strict=True)])
        return {"score_per": 0.5} if decoded else {}

    monkeypatch.setattr(ValidationScores, "score", fake_score)
    batch = Collater()(clips[:2])
    mels = {}
    for count in (0, 3):
        handed.clear()
        random.seed(0)  # the decoder's training-time F0/N smoothing draws from python's RNG
        model, stage = make_stage([f"ValidationScores.clips = {count}"])
        stage.train_step(batch, 0, 0)
        model.eval()
        torch.manual_seed(1)
        with torch.no_grad():
            outs = [stage.validation_step(batch, epoch) for epoch in (0, 0, 0, 5)]
        mels[count] = [o["mel"] for o in outs]
    assert mels[0] == mels[3]  # the whole-clip decodes leave the losses' random draws alone
    assert [set(o) for o in outs] == [{"mel", "score_per"}, {"mel", "score_per"}, {"mel"}, {"mel", "score_per"}]
    assert [len(h) for h in handed] == [2, 1, 2]  # nothing is decoded once 3 clips are scored
    # decoded: 2 mel frames of 300 samples per alignment frame; the recording: the same span of the
    # wave, which ends within a frame of it (a mel frame is centred on its hop)
    for (decoded, recording), n in zip(handed[0], batch.mel_lengths.tolist(), strict=True):
        assert decoded == n // 2 * 2 * 300 and decoded - 300 < recording <= decoded


@pytest.mark.parametrize("on_path", [False, True])
def test_scored_clips_can_be_decoded_from_the_monotonic_path(clips, monkeypatch, on_path):
    """Stage1.score_on_path: the whole clip the evaluator hears is decoded from hard durations (each
    frame's text features are one token's), not from the soft attention's mixtures."""
    from styletts2.train.validation_scores import ValidationScores

    monkeypatch.setattr(ValidationScores, "score", lambda self, decoded, recordings, rate: {"score_per": 0.5})
    batch = Collater()(clips[:2])
    model, stage = make_stage(["ValidationScores.clips = 1"], score_on_path=on_path)
    stage.train_step(batch, 0, 0)
    model.eval()
    inputs, decode = [], model.decoder.forward
    monkeypatch.setattr(model.decoder, "forward", lambda asr, *rest: inputs.append(asr) or decode(asr, *rest))
    with torch.no_grad():
        stage.validation_step(batch, 0)
    whole = inputs[-1][0]  # [channels, alignment frames] of the first clip, decoded whole
    distinct = torch.unique(whole.T, dim=0).shape[0]
    tokens = int(batch.token_lengths[0])
    assert (distinct <= tokens) == on_path, (distinct, tokens, whole.shape)


# --- pretrained parts ----------------------------------------------------------------------------

def test_real_configs_name_the_missing_pretrained_file(tmp_path):
    parse_gin(["gin/model/tiny.gin"])
    model = StyleTTS2(modules=("text_aligner", "pitch_extractor", "wd"))
    with pytest.raises(MissingPretrained, match=r"aligner_path.*checkpoints/README.md"):
        load_pretrained_parts(model, ("text_aligner",))
    missing = tmp_path / "epoch_00080.pth"
    with pytest.raises(MissingPretrained, match=str(missing)):
        load_pretrained_parts(model, ("text_aligner",), aligner_path=str(missing))
    with pytest.raises(MissingPretrained, match="load_wavlm.path"):
        load_wavlm(model.wd)


def test_pretrained_parts_load_and_random_init_is_reported(tmp_path, caplog):
    parse_gin(["gin/model/tiny.gin"])
    torch.manual_seed(1)
    source = StyleTTS2(modules=("pitch_extractor",))
    torch.save({"net": source.pitch_extractor.state_dict()}, tmp_path / "bst.t7")
    torch.manual_seed(2)
    model = StyleTTS2(modules=("text_aligner", "pitch_extractor", "wd"))
    with caplog.at_level("WARNING"):
        done = load_pretrained_parts(model, ("text_aligner", "pitch_extractor"), pitch_path=str(tmp_path / "bst.t7"),
                                     allow_random_init=True)
    assert done == {"text_aligner": "random init", "pitch_extractor": str(tmp_path / "bst.t7")}
    assert "RANDOM INIT" in caplog.text
    for key, value in source.pitch_extractor.state_dict().items():
        assert torch.equal(model.pitch_extractor.state_dict()[key], value)
    wavlm = load_wavlm(model.wd, allow_random_init=True)
    states = wavlm(input_values=torch.zeros(1, 16000), output_hidden_states=True).hidden_states
    assert len(states) * states[0].shape[-1] == model.wd.in_channels


def test_a_random_wavlm_can_take_the_released_shape():
    """For memory measurements without the released weights: wavlm-base-plus's architecture (94.4M
    parameters in transformers' WavLMModel), filling a full-size WavLM discriminator's input."""
    from styletts2.modules.discriminators import WavLMDiscriminator

    wavlm = load_wavlm(WavLMDiscriminator(slm_hidden=768, slm_layers=13), allow_random_init=True, random_size="base")
    assert sum(p.numel() for p in wavlm.parameters()) == 94_381_936
    assert wavlm.config.conv_dim == (512,) * 7 and wavlm.config.num_attention_heads == 12
    with pytest.raises(ValueError, match="'small' or 'base'"):
        load_wavlm(WavLMDiscriminator(), allow_random_init=True, random_size="large")


# --- experiment files --------------------------------------------------------------------------

@pytest.mark.parametrize("path, epochs, max_len, tma", [("gin/stage1_ljspeech.gin", 200, 400, 50),
                                                        ("gin/stage1_libritts.gin", 50, 300, 5),
                                                        ("gin/tiny_stage1.gin", 2, 100, 1)])
def test_stage1_experiments_bind_upstream_values(path, epochs, max_len, tma):
    parse_gin([path])
    assert gin.query_parameter("Trainer.stage").selector == "Stage1"
    assert gin.query_parameter("Trainer.epochs") == epochs
    assert gin.query_parameter("Trainer.batch_size") == (4 if "tiny" in path else 16)
    assert gin.query_parameter("Stage1.max_len") == max_len
    assert gin.query_parameter("Stage1.TMA_epoch") == tma
    assert gin.query_parameter("MultiResolutionSTFTLoss.weight") == 5.0
    assert gin.query_parameter("build_multi_optimizer.lr") == 1e-4
    assert gin.query_parameter("load_pretrained_parts.allow_random_init") == ("tiny" in path)


def test_cached_frozen_targets_before_tma_only(clips, monkeypatch):
    """Stage1.cache_frozen_targets: before TMA the second step on the same clips runs neither the
    aligner nor the pitch extractor; from TMA the aligner runs (and trains) again."""
    model, stage = make_stage(cache_frozen_targets=True)
    batch = Collater()(clips[:2])
    stage.train_step(batch, 0, 0)
    monkeypatch.setattr(model.text_aligner, "forward", lambda *a, **k: pytest.fail("aligner ran again"))
    monkeypatch.setattr(model.pitch_extractor, "forward", lambda *a, **k: pytest.fail("pitch extractor ran again"))
    before = snapshot(model)
    out = stage.train_step(batch, 0, 1)
    assert set(out.losses) == {"mel"} and changed(before, model) == {"text_encoder", "style_encoder", "decoder"}
    monkeypatch.undo()
    before = snapshot(model)
    stage.train_step(batch, 1, 2)
    assert "text_aligner" in changed(before, model)
