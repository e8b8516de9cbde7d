"""Stage 0, pitch extractor (styletts2/train/stage0_pitch.py): the F0 labels and their cache
(data/f0_labels.py), the JDC training step, the metrics, and a tiny trainer run on an 8-clip
espeak-ng corpus. Labels come from dio here (fast); one test runs harvest on a known pitch."""
import copy
import shutil
from contextlib import nullcontext
from pathlib import Path

import gin
import numpy as np
import pytest
import soundfile as sf
import torch

from styletts2.audio.mel import LogMelSpectrogram
from styletts2.checkpoint import torch_load
from styletts2.data import f0_labels
from styletts2.data.dataset import SpeechDataset
from styletts2.data.f0_labels import F0Tracker, LabelSpec, compute_label, entry_path, prepare_labels
from styletts2.data.make_corpus import make_corpus
from styletts2.data.pitch_dataset import PitchCollater, PitchDataset
from styletts2.data.readers import read_list
from styletts2.model import StyleTTS2, parse_gin
from styletts2.modules.pitch import JDCNet
from styletts2.train.pretrained import load_pretrained_parts
from styletts2.train.stage import TrainingContext
from styletts2.train import stage0_pitch
from styletts2.train.stage0_pitch import Stage0Pitch, f0_metrics, mean_voiced_f0
from styletts2.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SR = 24000
DIO = LabelSpec(F0Tracker(method="dio"))
STAGE_GIN = [str(REPO / "gin/model/tiny.gin"), str(REPO / "gin/stage/stage0_pitch.gin")]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """8 espeak-ng clips, plus a training clip with no voiced frame (a constant: readable, loud
    enough for the corpus scan, long enough, but nothing periodic for a tracker to find)."""
    root = make_corpus(tmp_path_factory.mktemp("corpus"), n=8)
    sf.write(root / "wavs" / "hum.wav", np.full(int(1.6 * SR), 0.3, np.float32), SR)
    first = (root / "train_list.txt").read_text(encoding="utf-8").splitlines()[0]
    lines = (root / "train_list.txt").read_text(encoding="utf-8") + "wavs/hum.wav|" + first.split("|", 1)[1] + "\n"
    (root / "train_unvoiced_list.txt").write_text(lines, encoding="utf-8")
    return root


def clips(corpus: Path, folder: Path | None = None) -> tuple[list[Path], list[Path]]:
    """The training clips of `corpus` (copied into `folder` when given, so a test may change them)."""
    wavs = [r.wav for r in read_list(corpus / "train_list.txt", root=corpus)]
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        wavs = [Path(shutil.copy(w, folder / w.name)) for w in wavs]
        return wavs, [folder] * len(wavs)
    return wavs, [corpus] * len(wavs)


# --- F0 labels ------------------------------------------------------------------------------------


def test_labels_follow_a_known_pitch_frame_by_frame(tmp_path):
    """Harvest on 0.5 s silence + 1 s of a 150 Hz harmonic tone + 0.5 s silence: one label per mel
    frame of the edge-padded wave, voiced where the tone is (5000 padding samples shift it)."""
    t = np.arange(SR) / SR
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) * 0.3
    wave = np.concatenate([np.zeros(SR // 2), tone, np.zeros(SR // 2)]).astype(np.float32)
    sf.write(tmp_path / "tone.wav", wave, SR)
    spec = LabelSpec(F0Tracker(method="harvest"))
    f0 = compute_label(tmp_path / "tone.wav", spec)
    mel = LogMelSpectrogram()(torch.nn.functional.pad(torch.from_numpy(wave), (5000, 5000)))
    assert f0.shape == (mel.shape[-1],)
    voiced = np.flatnonzero(f0)
    onset, offset = (5000 + SR // 2) / 300, (5000 + SR // 2 + SR) / 300  # mel frames 56.7, 136.7
    assert abs(voiced[0] - onset) <= 3 and abs(voiced[-1] - offset) <= 3, (voiced[0], voiced[-1])
    assert np.all(np.abs(np.log2(f0[voiced[5:-5]] / 150)) < 0.02)  # within 35 cents


def test_labels_are_cached_reused_and_recomputed_when_stale(corpus, tmp_path, monkeypatch):
    wavs, roots = clips(corpus, tmp_path / "wavs")
    made = []
    compute = f0_labels.compute_label
    monkeypatch.setattr(f0_labels, "compute_label", lambda wav, spec: made.append(Path(wav).name) or compute(wav, spec))

    first = prepare_labels(wavs, roots, DIO, workers=0, progress=False)
    assert len(made) == len(wavs) and all(s.usable for s in first)
    assert all(s.entry.is_file() and s.entry.parent.name == DIO.key for s in first)
    assert "dio" in DIO.key and "hop300" in DIO.key and "pad5000" in DIO.key

    made.clear()
    again = prepare_labels(wavs, roots, DIO, workers=0, progress=False)
    assert made == [] and again == first  # read from the cache, nothing tracked

    prepare_labels(wavs, roots, LabelSpec(F0Tracker(method="dio", f0_floor=80.0)), workers=0, progress=False)
    assert len(made) == len(wavs)  # another setting, another cache

    made.clear()
    changed, corrupt, short = wavs[0], wavs[1], wavs[2]
    data, _ = sf.read(changed, dtype="float32")
    sf.write(changed, np.concatenate([data, data[:SR // 2]]), SR)  # the clip changed: a new size
    entry_path(roots[1], corrupt, DIO).write_bytes(b"not a label")
    f0 = f0_labels.load_label(first[2].entry)
    f0_labels.write_entry(first[2].entry, short, f0[:-3], f0_labels._fingerprint(short))  # wrong length
    statuses = prepare_labels(wavs, roots, DIO, workers=0, progress=False)
    assert sorted(made) == sorted(w.name for w in (changed, corrupt, short))
    assert len(f0_labels.load_label(statuses[0].entry)) == DIO.frames(len(data) + SR // 2)
    assert all(s.usable for s in statuses)


def test_worker_processes_make_the_same_labels(corpus, tmp_path):
    wavs, roots = clips(corpus, tmp_path / "wavs")
    pooled = prepare_labels(wavs, roots, DIO, workers=2, progress=False)
    for status in pooled:
        assert np.array_equal(f0_labels.load_label(status.entry), compute_label(status.wav, DIO))


# --- the network and the metrics ------------------------------------------------------------------


def test_forward_with_voicing_is_the_f0_styletts2_reads():
    torch.manual_seed(0)
    jdc = JDCNet().eval()
    mel = torch.randn(2, 1, 80, 24)
    f0, unvoiced = jdc.forward_with_voicing(mel)
    assert f0.shape == unvoiced.shape == (2, 24)
    assert torch.allclose(f0.abs(), jdc(mel)[0], atol=1e-6)
    jdc.train()
    assert not torch.equal(jdc.forward_with_voicing(mel, dropout=0.5)[0], jdc.forward_with_voicing(mel)[0])


def test_zero_unvoiced_gives_0_hz_where_the_detector_says_unvoiced_and_the_f0_elsewhere():
    torch.manual_seed(0)
    plain = JDCNet().eval()
    mel = torch.randn(3, 1, 80, 40)
    with torch.no_grad():  # centre the random detector's logits so that it calls frames both ways
        plain.detector.bias -= plain.forward_with_voicing(mel)[1].median() / 2
    gated = copy.deepcopy(plain)
    gated.zero_unvoiced = True
    raw, unvoiced = plain.forward_with_voicing(mel)
    f0, gan_feature, pooled = gated(mel)
    voiced = unvoiced <= 0
    assert voiced.any() and (~voiced).any(), "a random detector should call some frames each way"
    assert torch.allclose(f0[voiced], raw.abs()[voiced], atol=1e-6)
    assert torch.all(f0[~voiced] == 0)
    assert torch.equal(gan_feature, plain(mel)[1]) and torch.equal(pooled, plain(mel)[2])
    assert gated(mel[:1])[0].shape == (40,)  # squeezed as upstream's forward squeezes a batch of one


def test_metrics_on_a_synthetic_case():
    labels = torch.tensor([[0.0, 100.0, 200.0, 0.0, 150.0, 0.0], [120.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    voiced_logit = torch.where(labels > 0, -4.0, 4.0)  # negative: voiced
    voiced_logit[1, 2:] = -4.0  # padding says "voiced": must not count
    same = f0_metrics(labels, voiced_logit, labels, mask)
    assert same == {"voicing_error": 0.0, "f0_cents": 0.0, "unvoiced_f0_hz": 0.0}
    octave = f0_metrics(labels * 2, voiced_logit, labels, mask)  # every voiced frame an octave high
    assert octave["f0_cents"] == pytest.approx(1200.0)
    # a head that gives 50 Hz where the label is unvoiced (the padding's 80 Hz must not count)
    hum = torch.where(labels > 0, labels, 50.0)
    hum[1, 2:] = 80.0
    assert f0_metrics(hum, voiced_logit, labels, mask)["unvoiced_f0_hz"] == pytest.approx(50.0)
    flipped = voiced_logit.clone()
    flipped[0, :2] = -flipped[0, :2]  # one false "voiced", one missed voiced frame
    assert f0_metrics(labels, flipped, labels, mask)["voicing_error"] == pytest.approx(2 / 8)
    # unvoiced labels hold no pitch to compare: cents are left out rather than made up
    assert set(f0_metrics(labels, voiced_logit, torch.zeros_like(labels), mask)) == {"voicing_error", "unvoiced_f0_hz"}
    assert "unvoiced_f0_hz" not in f0_metrics(labels, voiced_logit, torch.full_like(labels, 100.0), mask)


# --- the stage ---------------------------------------------------------------------------------------


def make_stage(bindings=(), **kwargs) -> tuple[StyleTTS2, Stage0Pitch]:
    parse_gin(STAGE_GIN, list(bindings))
    torch.manual_seed(0)
    model = StyleTTS2()
    stage = Stage0Pitch(**kwargs)
    stage.setup(model, TrainingContext(device=torch.device("cpu"), autocast=nullcontext))
    return model, stage


def fixed_batch(corpus: Path, n: int = 2, frames: int = 32):
    records = read_list(corpus / "train_list.txt", root=corpus)[:n]
    statuses = prepare_labels([r.wav for r in records], [corpus] * n, DIO, workers=0, progress=False)
    dataset = PitchDataset(SpeechDataset(records), records, [s.entry for s in statuses], crop_frames=frames)
    return PitchCollater(frames)([dataset[i] for i in range(n)])


def test_the_model_is_the_pitch_extractor_alone():
    model, stage = make_stage()
    assert list(model.nets) == ["pitch_extractor"]
    assert stage.optimizer.names == ["pitch_extractor"]
    group = stage.optimizer.optimizers["pitch_extractor"].param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-4, (0.9, 0.98), 5e-4)


def test_overfitting_two_clips_lowers_both_losses(corpus):
    """The F0 head has no output scale: from random init it climbs towards 100-200 Hz at a pace set
    by the learning rate, hence the high rate for a short test."""
    batch = fixed_batch(corpus)
    assert batch.f0.gt(0).any() and batch.f0.eq(0).any()
    _, stage = make_stage(lr=1e-2, dropout=0.0)
    history = [stage.train_step(batch, 0, step).losses for step in range(16)]
    assert all(np.isfinite(list(h.values())).all() for h in history)
    first, last = history[0], history[-3:]
    assert np.mean([h["f0"] for h in last]) < 0.65 * first["f0"], history
    assert np.mean([h["sil"] for h in last]) < 0.5 * first["sil"], history


@pytest.mark.parametrize("loaded", [False, True])
def test_initial_f0_starts_only_a_random_head_at_the_labels_mean(corpus, monkeypatch, loaded):
    records = read_list(corpus / "train_list.txt", root=corpus)
    entries = [s.entry for s in prepare_labels([r.wav for r in records], [corpus] * len(records), DIO,
                                               workers=0, progress=False) if s.usable]
    voiced = np.concatenate([f0_labels.load_label(e) for e in entries])
    voiced = voiced[voiced > 0]
    mean = mean_voiced_f0(entries)
    assert mean == pytest.approx(float(voiced.mean()), rel=1e-6) and 60 < mean < 400
    if loaded:  # fine-tuning a released extractor: its own bias stays
        monkeypatch.setattr(stage0_pitch, "load_pretrained_parts",
                            lambda model, parts: {"pitch_extractor": "bst.t7"})
    parse_gin(STAGE_GIN)
    torch.manual_seed(0)
    model = StyleTTS2()
    stage = Stage0Pitch(initial_f0="label_mean")
    stage._label_mean_f0 = mean  # what build_data finds for the training corpus
    stage.setup(model, TrainingContext(device=torch.device("cpu"), autocast=nullcontext))
    bias = model.pitch_extractor.classifier.bias
    assert torch.equal(bias, torch.zeros(1) if loaded else torch.full((1,), mean))
    with pytest.raises(ValueError, match="initial_f0"):
        Stage0Pitch(initial_f0="mean")


def test_stage_state_resumes_exactly(corpus):
    """Weights, stage state (optimiser + schedule) and the global RNG (dropout) replay the steps."""
    batch = fixed_batch(corpus)
    model, stage = make_stage(total_steps=10)
    stage.train_step(batch, 0, 0)
    saved = copy.deepcopy((model.state_dict(), stage.state_dict(), torch.get_rng_state()))
    first = [stage.train_step(batch, 0, i).losses["loss"] for i in (1, 2)]
    model.load_state_dict(saved[0])
    stage.load_state_dict(saved[1])
    torch.set_rng_state(saved[2])
    assert [stage.train_step(batch, 0, i).losses["loss"] for i in (1, 2)] == first
    assert stage.optimizer.lr("pitch_extractor") < 3e-4  # the cosine schedule moved


def test_tiny_run_skips_the_unvoiced_clip_and_its_checkpoint_loads(corpus, tmp_path, capsys):
    bindings = [
        f"Trainer.train_data = {str(corpus / 'train_unvoiced_list.txt')!r}",
        f"Trainer.val_data = {str(corpus / 'val_list.txt')!r}",
        f"Trainer.data_root = {str(corpus)!r}",
        f"Trainer.run_dir = {str(tmp_path / 'run')!r}",
        "Trainer.device = 'cpu'", "Trainer.epochs = 2", "Trainer.batch_size = 2", "Trainer.num_workers = 0",
        "Trainer.log_every_steps = 1", "Trainer.save_every_steps = None",
        "LengthBucketBatchSampler.bucket_multiplier = 2", "scan_corpus.workers = 1",
        "Stage0Pitch.max_len = 32", "Stage0Pitch.label_workers = 0", "f0_tracker.method = 'dio'",
        "Stage0Pitch.initial_f0 = 'label_mean'",
    ]
    parse_gin([str(REPO / "gin/model/tiny.gin"), str(REPO / "gin/trainer/default.gin"),
               str(REPO / "gin/stage/stage0_pitch.gin")], bindings)
    trainer = Trainer()
    result = trainer.fit()
    out = capsys.readouterr().out
    assert result.status == "completed" and result.skipped_steps == 0
    assert "no_voiced_frames: 1" in out and "hum.wav" in out
    assert "mean voiced F0" in out and "train_unvoiced_list" in out.split("mean voiced F0")[0].splitlines()[-1]
    assert len(trainer.train_set) == len(read_list(corpus / "train_list.txt"))
    assert trainer.stage.optimizer.lr("pitch_extractor") < 3e-4  # the schedule spans the run

    val = trainer.validate(1)
    assert {"loss", "f0", "sil", "f0_cents", "voicing_error"} <= set(val)
    assert all(np.isfinite(v) for v in val.values()) and 0 <= val["voicing_error"] <= 1

    checkpoint = torch_load(result.checkpoint)
    assert set(checkpoint["net"]) == {"pitch_extractor"}
    gin.clear_config()
    parse_gin([str(REPO / "gin/model/tiny.gin")])
    model = StyleTTS2(modules=("text_aligner", "pitch_extractor"))
    load_pretrained_parts(model, ("pitch_extractor",), pitch_path=str(result.checkpoint))
    for key, value in trainer.model.pitch_extractor.state_dict().items():
        assert torch.equal(model.pitch_extractor.state_dict()[key], value), key


@pytest.mark.parametrize("name,epochs", [("tiny", 3), ("ljspeech", 100), ("libritts", 100)])
def test_experiment_files(name, epochs):
    import runner

    runner._register_configurables()
    parse_gin([str(REPO / f"gin/stage0_pitch_{name}.gin")])
    assert gin.query_parameter("Trainer.epochs") == epochs
    assert gin.query_parameter("StyleTTS2.modules") == ("pitch_extractor",)
    assert gin.query_parameter("Trainer.stage").selector == "Stage0Pitch"
    if name != "tiny":
        assert gin.query_parameter("Trainer.batch_size") == 64
        assert gin.query_parameter("Stage0Pitch.lr") == 3e-4


def test_f0_label_entries_get_the_umasks_mode(tmp_path):
    import os

    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(2400, np.float32), 24000)
    old = os.umask(0o027)
    try:
        f0_labels.write_entry(tmp_path / "labels" / "a.npz", wav, np.zeros(9), f0_labels._fingerprint(wav))
    finally:
        os.umask(old)
    assert (tmp_path / "labels" / "a.npz").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
