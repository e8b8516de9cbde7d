"""The trainer infrastructure (styletts2/train: optim, trainer, train_state, logger) with a toy stage.

`ToyStage` and `write_corpus` are shared with test_runner.py and test_ddp.py (imported from here).
"""
import math
from pathlib import Path

import gin
import numpy as np
import pytest
import soundfile as sf
import torch

from styletts2.checkpoint import CheckpointError, torch_load
from styletts2.train.optim import (UPSTREAM_BETAS, LossScaler, MultiOptimizer, build_multi_optimizer, build_optimizer,
                                   _budget_decay, build_scheduler)
from styletts2.train.stage import NonFiniteLoss, StepOutput, TrainingContext
from styletts2.train.trainer import Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
SR = 24000
PHONEMES = "ðə kˈæt sˈæt ˌɑːn ðə mˈæt ."
TOY_MODULES = ["text_encoder", "style_encoder"]


def write_corpus(folder: Path, n_train: int = 6, n_val: int = 2) -> Path:
    """Synthetic clips (noise bursts, 1.2-1.7 s) in upstream's list format, no espeak needed; the
    training list also names one clip too short to use (the trainer must skip it)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        lines = [f"short.wav|{PHONEMES}|0\n"] if split == "train" else []
        sf.write(folder / "short.wav", np.full(SR // 2, 0.3, np.float32), SR)
        for i in range(n):
            seconds = 1.2 + 0.1 * (i % 6)
            wave = 0.3 * rng.standard_normal(int(SR * seconds)) * np.hanning(int(SR * seconds))
            sf.write(folder / f"{split}{i}.wav", wave.astype(np.float32), SR, subtype="PCM_16")
            lines.append(f"{split}{i}.wav|{PHONEMES}|0\n")
        (folder / f"{split}_list.txt").write_text("".join(lines), encoding="utf-8")
    return folder


@gin.configurable
class ToyStage:
    """A small deterministic stage: text encoder and style encoder pulled towards fixed targets.

    nan_from_step: from this step on (until nan_until_step) the loss is NaN.
    marker: a file written after the first step (lets a test know training is under way).
    step_seconds: sleep per step (to leave time for a signal to arrive).
    """

    name = "toy"

    def __init__(self, lr: float = 1e-3, nan_from_step: int | None = None, nan_until_step: int | None = None,
                 marker: str | None = None, step_seconds: float = 0.0):
        self.lr = lr
        self.nan_steps = range(nan_from_step, nan_until_step or 10**9) if nan_from_step is not None else range(0)
        self.marker = marker
        self.step_seconds = step_seconds
        self.audio_logged = False

    def setup(self, model, ctx: TrainingContext) -> None:
        self.model, self.ctx = model, ctx
        self.optimizer = build_multi_optimizer(model, TOY_MODULES, lr=self.lr, ctx=ctx)

    def _loss(self, batch) -> torch.Tensor:
        with self.ctx.autocast():
            mask = torch.arange(batch.tokens.shape[1], device=batch.tokens.device)[None] >= batch.token_lengths[:, None]
            t_en = self.model.text_encoder(batch.tokens, batch.token_lengths, mask)
            style = self.model.style_encoder(batch.ref_mels.unsqueeze(1))
        return t_en.float().pow(2).mean() + (style.float() - 0.5).pow(2).mean()

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        import time

        loss = self._loss(batch) + 1e-3 * torch.rand(())  # draws from the global RNG, as real stages do
        if step in self.nan_steps:
            loss = loss * float("nan")
        self.optimizer.step_on(loss, TOY_MODULES, {"toy": loss})
        if self.marker:
            Path(self.marker).write_text(str(step))
        if self.ctx.log_audio is not None and not self.audio_logged:
            self.ctx.log_audio("toy/noise", torch.zeros(2400), step)
            self.audio_logged = True
        time.sleep(self.step_seconds)
        return StepOutput({"toy": loss.item()})

    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        return {"toy": float(self._loss(batch))}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


def toy_bindings(corpus: Path, run_dir: Path, **trainer) -> list[str]:
    values = {"stage": "@ToyStage", "run_dir": repr(str(run_dir)), "epochs": 3, "batch_size": 2,
              "train_data": repr(str(corpus / "train_list.txt")), "val_data": repr(str(corpus / "val_list.txt")),
              "device": "'cpu'", "log_every_steps": 1, **trainer}
    return [f"Trainer.{k} = {v}" for k, v in values.items()] + [
        f"StyleTTS2.modules = {TOY_MODULES}",
        "LengthBucketBatchSampler.bucket_multiplier = 2",
        "scan_corpus.workers = 1",
        "Collater.ref_frames = 80",  # small style-encoder inputs keep the tests fast
        "SpeechDataset.ref_max_frames = 80",
    ]


def run_toy(corpus: Path, run_dir: Path, extra: tuple[str, ...] = (), **trainer):
    """A trainer of `ToyStage` with these Trainer settings (and `extra` gin bindings), fitted."""
    from styletts2.model import parse_gin

    gin.clear_config()
    parse_gin([str(REPO / "gin/model/tiny.gin")], toy_bindings(corpus, run_dir, **trainer) + list(extra))
    t = Trainer()
    return t, t.fit()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- the trainer ---------------------------------------------------------------------------


def test_resume_is_bitwise_exact(corpus, tmp_path, capsys):
    # 6 usable clips in batches of 2: 3 steps per epoch; two epochs straight ...
    straight, result = run_toy(corpus, tmp_path / "straight", epochs=2)
    assert result.status == "completed" and result.iters == 6 and result.epoch == 2
    assert "too_short: 1" in capsys.readouterr().out  # the short clip is reported and skipped

    # ... against 4 steps (across the epoch end, stopping mid-epoch 2), then a new trainer resuming.
    _, half = run_toy(corpus, tmp_path / "resumed", epochs=2, max_steps=4)
    assert half.status == "max_steps" and half.iters == 4
    saved = torch_load(tmp_path / "resumed" / "last.pth")
    assert saved["trainer"]["epoch"] == 1 and saved["trainer"]["batches_done"] == 1
    resumed, result = run_toy(corpus, tmp_path / "resumed", epochs=2)
    assert result.status == "completed" and result.iters == 6

    a, b = _params(straight.model), _params(resumed.model)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed parameters differ from the straight run"
    sa, sb = straight.stage.optimizer.state_dict(), resumed.stage.optimizer.state_dict()
    for name in TOY_MODULES:
        for pid, slot in sa[name]["optimizer"]["state"].items():
            assert torch.equal(slot["exp_avg"], sb[name]["optimizer"]["state"][pid]["exp_avg"])


def test_checkpoint_layout_and_run_dir(corpus, tmp_path):
    trainer, result = run_toy(corpus, tmp_path / "run", epochs=1, save_every_steps=2)
    run = tmp_path / "run"
    assert {"last.pth", "best.pth", "config.gin"} <= {p.name for p in run.iterdir()}
    assert any((run / "tensorboard").iterdir())
    ckpt = torch_load(run / "last.pth")
    # upstream's layout ...
    assert set(ckpt["net"]) == set(TOY_MODULES)
    assert ckpt["epoch"] == 1 and ckpt["iters"] == 3 and np.isfinite(ckpt["val_loss"])
    assert [name for name, _ in ckpt["optimizer"]] == TOY_MODULES  # upstream's list of (name, state)
    # ... plus what exact resume needs
    assert ckpt["trainer"]["sampler"]["epoch"] == 1 and ckpt["trainer"]["sampler"]["consumed"] == 0
    assert {"python", "numpy", "torch", "cuda"} <= set(ckpt["rng"][0])
    assert "Trainer.batch_size = 2" in ckpt["gin_config"] and "ToyStage" in ckpt["gin_config"]
    assert "espeak_version" in ckpt and "sigma_data" not in ckpt  # no diffusion in the toy model
    assert result.best_val_loss == pytest.approx(ckpt["val_loss"])
    config = (run / "config.gin").read_text()
    assert "Trainer.epochs = 1" in config and "StyleTTS2.modules" in config
    gin.clear_config()
    gin.parse_config(config)  # the written config is a valid gin file

    _, again = run_toy(corpus, run, epochs=1)  # a finished run resumed has nothing to do
    assert again.status == "already_complete"


def test_a_run_folder_of_another_stage_is_named_not_resumed(corpus, tmp_path):
    """Another stage's last.pth in the run folder failed on a missing module, naming neither."""
    run = tmp_path / "run"
    run_toy(corpus, run, epochs=1, max_steps=1)
    state = torch_load(run / "last.pth")
    state["gin_config"] = state["gin_config"].replace("@ToyStage", "@Stage0Aligner")
    torch.save(state, run / "last.pth")
    with pytest.raises(CheckpointError, match=r"last.pth is a Stage0Aligner checkpoint and this config trains "
                                              r"ToyStage: give this run a Trainer.run_dir of its own"):
        run_toy(corpus, run, epochs=2)


def test_nonfinite_streak_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, capsys):
    from styletts2.model import parse_gin

    gin.clear_config()
    bindings = toy_bindings(corpus, tmp_path / "run", epochs=3, max_nonfinite_in_a_row=3) + [
        "ToyStage.nan_from_step = 4"]
    parse_gin([str(REPO / "gin/model/tiny.gin")], bindings)
    trainer = Trainer()
    with pytest.raises(TrainingDiverged, match="3 non-finite steps in a row"):
        trainer.fit()
    ckpt = torch_load(tmp_path / "run" / "last.pth")
    assert ckpt["epoch"] == 1 and ckpt["iters"] == 3  # the epoch-end save; the NaN streak wrote nothing
    # Step 3 (0-based) was good, 4-6 were skipped without touching the parameters.
    net = ckpt["net"]
    model = trainer.model.nets
    assert all(torch.isfinite(v).all() for m in net.values() for v in m.values() if v.is_floating_point())
    assert "skipped" in capsys.readouterr().out
    assert all(torch.isfinite(p).all() for m in model.values() for p in m.parameters())


def test_isolated_nonfinite_step_is_skipped_and_counted(corpus, tmp_path):
    from styletts2.model import parse_gin

    gin.clear_config()
    parse_gin([str(REPO / "gin/model/tiny.gin")], toy_bindings(corpus, tmp_path / "run", epochs=1) + [
        "ToyStage.nan_from_step = 1", "ToyStage.nan_until_step = 2"])
    result = Trainer().fit()
    assert result.status == "completed" and result.skipped_steps == 1 and result.iters == 3


def test_bad_trainer_settings_are_refused():
    with pytest.raises(ValueError, match="mixed_precision"):
        Trainer(stage=ToyStage(), train_data="x", mixed_precision="fp8")
    # wrongly typed settings name themselves (not a TypeError from the first comparison)
    with pytest.raises(ValueError, match=r"^Trainer.epochs must be an integer, got 'one' \(fix the gin binding"):
        Trainer(stage=ToyStage(), train_data="x", epochs="one")
    with pytest.raises(ValueError, match="Trainer.batch_size must be an integer, got 2.5"):
        Trainer(stage=ToyStage(), train_data="x", batch_size=2.5)
    with pytest.raises(ValueError, match="Trainer.max_minutes must be a number or None, got '10'"):
        Trainer(stage=ToyStage(), train_data="x", max_minutes="10")
    with pytest.raises(ValueError, match="Trainer.keep_epoch_checkpoints must be true or false, got 1"):
        Trainer(stage=ToyStage(), train_data="x", keep_epoch_checkpoints=1)
    with pytest.raises(ValueError, match="Trainer.train_data must be a string, got 3"):
        Trainer(stage=ToyStage(), train_data=3)
    Trainer(stage=ToyStage(), train_data=Path("x"), max_minutes=10, run_dir=Path("runs/x"))  # ints, paths pass


@pytest.mark.parametrize("setting, value, message", [
    ("max_minutes", -5.0, "Trainer.max_minutes must be positive"),
    ("max_minutes", 0, "Trainer.max_minutes must be positive"),
    ("max_minutes", float("nan"), "Trainer.max_minutes must be positive"),
    ("max_steps", -5, "Trainer.max_steps must be at least 0, got -5"),
    ("save_every_steps", 0, "Trainer.save_every_steps must be at least 1"),
    ("log_every_steps", 0, "Trainer.log_every_steps must be at least 1"),
    ("max_mel_frames", 0, "Trainer.max_mel_frames must be at least 1"),
    ("num_workers", -1, "Trainer.num_workers must be 0 or more"),
])
def test_limits_that_would_end_a_run_at_once_are_refused(setting, value, message):
    """A negative budget or step count made a run of one step (or none) end in success."""
    with pytest.raises(ValueError, match=message):
        Trainer(stage=ToyStage(), train_data="x", **{setting: value})


def test_max_steps_0_sets_up_without_training():
    """README: `Trainer.max_steps = 0` makes the F0 labels ahead, in one process."""
    assert Trainer(stage=ToyStage(), train_data="x", max_steps=0).max_steps == 0


def test_a_run_folder_that_cannot_be_locked_runs_with_a_warning(tmp_path, monkeypatch):
    """Some filesystems have no flock (ENOLCK, EOPNOTSUPP): that must not refuse the run."""
    import errno
    import fcntl

    from styletts2.train.trainer import run_dir_lock

    def no_locks(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    ran = False
    with pytest.warns(RuntimeWarning, match="cannot be locked \\(No locks available\\)"):
        with run_dir_lock(tmp_path / "run"):
            ran = True
    assert ran


def test_a_run_dir_that_is_a_file_is_refused_before_the_corpus_scan(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="Trainer.run_dir .*afile is a file"):
        Trainer(stage=ToyStage(), train_data="x", run_dir=str(afile))


def test_corpus_issues_file_and_clips_lost_mid_epoch(tmp_path, caplog, monkeypatch):
    """Every rejected line is listed in the run folder with file:line and reason; a clip deleted or
    damaged while training runs is skipped with a warning, and the run completes."""
    corpus = write_corpus(tmp_path / "corpus")  # its own copy: clips get broken
    listing = corpus / "train_list.txt"
    with listing.open("a", encoding="utf-8") as stream:
        stream.write(f"../elsewhere.wav|{PHONEMES}|0\nno fields here\n")
    original = ToyStage.train_step

    def breaking_step(self, batch, epoch, step):
        if step == 0:  # after the start-up scan accepted every clip
            (corpus / "train2.wav").unlink()
            (corpus / "train3.wav").write_bytes(b"RIFF\x00\x00 not audio any more")
        return original(self, batch, epoch, step)

    monkeypatch.setattr(ToyStage, "train_step", breaking_step)
    with caplog.at_level("WARNING", logger="styletts2.data.dataset"):
        _, result = run_toy(corpus, tmp_path / "run", epochs=2)
    assert result.status == "completed" and result.iters == 6
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert any(f"{listing}:4" in m and "train2.wav" in m for m in skipped), skipped
    assert any(f"{listing}:5" in m and "train3.wav" in m for m in skipped), skipped

    issues = (tmp_path / "run" / "corpus_issues" / "corpus_train_list.txt.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t")[:2] for line in issues.splitlines()]
    assert sorted(rows) == [[f"{listing}:1", "too_short"], [f"{listing}:8", "outside_root"],
                            [f"{listing}:9", "malformed"]]
    assert (tmp_path / "run" / "corpus_issues" / "corpus_val_list.txt.tsv").read_text() == ""  # none rejected


def test_a_runs_corpus_summary_is_shown_once(tmp_path, caplog, capsys):
    """It was shown twice when the corpus had issues: as the scan's warning and in the run's log."""
    corpus = write_corpus(tmp_path / "corpus")
    with (corpus / "train_list.txt").open("a", encoding="utf-8") as stream:
        stream.write("no fields here\n")
    with caplog.at_level("INFO", logger="styletts2.data.validate"):
        run_toy(corpus, tmp_path / "run", epochs=1)
    out = capsys.readouterr()
    shown = " ".join([out.out, out.err, *caplog.messages])
    assert shown.count("clips usable") == 2  # the training list's and the validation list's
    assert shown.count("malformed: 1") == 1


def test_a_corpus_gone_mid_run_stops_with_a_message(tmp_path):
    from styletts2.data.dataset import SpeechDataset
    from styletts2.data.validate import scan_corpus

    corpus = write_corpus(tmp_path / "corpus")
    dataset = SpeechDataset(scan_corpus(corpus / "train_list.txt", workers=1).good)
    for wav in corpus.glob("train*.wav"):
        wav.unlink()
    with pytest.raises(OSError, match="6 clips in a row from .*train_list.txt:2 on cannot be read"):
        dataset[0]


# --- optimisers ----------------------------------------------------------------------------


def _toy_modules(seed=0):
    torch.manual_seed(seed)
    return {"a": torch.nn.Linear(4, 3), "b": torch.nn.Linear(3, 1), "bert": torch.nn.Linear(2, 2),
            "decoder": torch.nn.Linear(2, 2)}


def test_upstream_optimizer_groups():
    modules = _toy_modules()
    stage1 = build_multi_optimizer(modules)
    for name in modules:
        group = stage1.optimizers[name].param_groups[0]
        assert group["lr"] == 1e-4 and group["betas"] == UPSTREAM_BETAS and group["weight_decay"] == 1e-4
        assert group["eps"] == 1e-9
    stage2 = build_multi_optimizer(modules, bert_lr=1e-5, ft_lr=2e-5)
    bert, dec, a = (stage2.optimizers[n].param_groups[0] for n in ("bert", "decoder", "a"))
    assert (bert["lr"], bert["betas"], bert["weight_decay"]) == (1e-5, (0.9, 0.99), 0.01)
    assert (dec["lr"], dec["betas"], dec["weight_decay"]) == (2e-5, (0.0, 0.99), 1e-4)
    assert (a["lr"], a["betas"]) == (1e-4, UPSTREAM_BETAS)
    with pytest.raises(KeyError, match="no module"):
        build_multi_optimizer(modules, ["nope"])


def test_module_lr_overrides_one_module_rate_and_keeps_its_kind():
    modules = _toy_modules()
    opt = build_multi_optimizer(modules, bert_lr=1e-5, ft_lr=2e-5, module_lr={"a": 3e-3, "decoder": 4e-3})
    a, b, dec, bert = (opt.optimizers[n].param_groups[0] for n in ("a", "b", "decoder", "bert"))
    assert (a["lr"], a["betas"]) == (3e-3, UPSTREAM_BETAS) and b["lr"] == 1e-4
    assert (dec["lr"], dec["betas"]) == (4e-3, (0.0, 0.99)) and bert["lr"] == 1e-5
    with pytest.raises(KeyError, match="no module"):
        build_multi_optimizer(modules, module_lr={"nope": 1e-3})


def test_submodule_lr_gives_children_their_own_rate():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    opt = build_multi_optimizer({"net": net}, lr=1e-3, submodule_lr={"net": {"2": 2.5e-4}})
    rest, child = opt.optimizers["net"].param_groups
    assert opt.lr("net") == 1e-3 and (rest["lr"], child["lr"]) == (1e-3, 2.5e-4)
    assert [p.shape for p in rest["params"]] == [p.shape for p in net[0].parameters()]
    assert child["params"] == list(net[2].parameters()) and child["betas"] == rest["betas"] == UPSTREAM_BETAS
    before = [p.detach().clone() for p in net.parameters()]
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.optimizers["net"].step()
    moved = [float((b - p.detach()).abs().max()) for b, p in zip(before, net.parameters())]
    # Adam's first step moves every weight by about its rate (plus the decoupled weight decay)
    assert moved[0] == pytest.approx(1e-3, rel=0.01) and moved[2] == pytest.approx(2.5e-4, rel=0.01)
    with pytest.raises(KeyError, match="no submodule 'nope'"):
        build_multi_optimizer({"net": net}, submodule_lr={"net": {"nope": 1e-3}})
    with pytest.raises(KeyError, match="no module"):
        build_multi_optimizer({"net": net}, submodule_lr={"other": {"2": 1e-3}})
    with pytest.raises(ValueError, match="overlapping"):
        build_multi_optimizer({"net": net}, submodule_lr={"net": {"": 1e-3, "2": 1e-4}})


def test_upstream_betas_are_what_onecycle_leaves_behind():
    """Upstream wraps AdamW(betas=(0, 0.99)) in a OneCycleLR it never steps; its constructor sets beta1."""
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.AdamW(p, lr=1e-4, betas=(0.0, 0.99))
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-4, epochs=200, steps_per_epoch=1000, pct_start=0.0,
                                        div_factor=1, final_div_factor=1)
    assert opt.param_groups[0]["betas"] == pytest.approx(UPSTREAM_BETAS)
    assert opt.param_groups[0]["lr"] == 1e-4


def test_step_on_refuses_nonfinite_losses_without_side_effects():
    modules = _toy_modules()
    opt = build_multi_optimizer(modules, ["a", "b"])
    x = torch.randn(5, 4)
    opt.step_on(modules["b"](modules["a"](x)).pow(2).mean(), ["a", "b"])
    before = ({k: v.clone() for k, v in modules["a"].state_dict().items()},
              {k: v.clone() for k, v in opt.optimizers["a"].state_dict()["state"][0].items() if torch.is_tensor(v)})
    loss = modules["b"](modules["a"](x)).pow(2).mean()
    with pytest.raises(NonFiniteLoss) as err:
        opt.step_on(loss, ["a", "b"], {"good": loss, "bad": loss * float("inf")})
    assert err.value.name == "bad" and err.value.value == float("inf")
    assert all(torch.equal(v, before[0][k]) for k, v in modules["a"].state_dict().items())
    after = opt.optimizers["a"].state_dict()["state"][0]
    assert all(torch.equal(after[k], v) for k, v in before[1].items())
    assert all(p.grad is None for p in opt.parameters(["a", "b"]))


def test_step_on_refuses_nonfinite_gradients():
    modules = _toy_modules()
    opt = build_multi_optimizer(modules, ["a"])
    before = modules["a"].weight.detach().clone()
    loss = torch.sqrt(modules["a"](torch.zeros(1, 4)).sum() * 0)  # finite loss, infinite gradient
    with pytest.raises(NonFiniteLoss, match="grad_norm"):
        opt.step_on(loss, ["a"])
    assert torch.equal(modules["a"].weight, before)


def test_step_on_clips_and_steps_only_the_named():
    modules = _toy_modules()
    opt = MultiOptimizer({n: torch.optim.SGD(m.parameters(), lr=1.0) for n, m in modules.items()})
    a0, b0 = modules["a"].weight.detach().clone(), modules["b"].weight.detach().clone()
    norm = opt.step_on(100 * modules["b"](modules["a"](torch.randn(8, 4))).sum(), ["a"], clip=0.5)
    assert norm > 0.5
    assert torch.equal(modules["b"].weight, b0)  # not named: not stepped
    assert (modules["a"].weight - a0).norm() <= 0.5 + 1e-5  # SGD lr 1: the update is the clipped gradient


def test_optimizer_state_round_trip_and_upstream_format():
    modules = _toy_modules()
    opt = build_multi_optimizer(modules, ["a", "b"])
    opt.step_on(modules["b"](modules["a"](torch.randn(3, 4))).sum(), ["a", "b"])
    other = build_multi_optimizer(_toy_modules(1), ["a", "b"])
    other.load_state_dict(opt.state_dict())
    assert other.state_dict()["a"]["optimizer"]["state"][0]["step"] == 1
    other.load_state_dict(opt.upstream_state_dict())  # upstream's list of (name, state) pairs
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"a": opt.state_dict()["a"]})


def test_schedulers_and_set_lr():
    modules = _toy_modules()
    opt = build_optimizer(modules["a"].parameters(), lr=1e-3)
    assert build_scheduler(opt).get_last_lr() == [1e-3]  # constant
    cosine = build_scheduler(build_optimizer(modules["b"].parameters(), lr=1e-3), "cosine", total_steps=10)
    for _ in range(10):
        cosine.optimizer.step()
        cosine.step()
    assert cosine.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="total_steps"):
        build_scheduler(opt, "onecycle")
    with pytest.raises(ValueError, match="unknown scheduler"):
        build_scheduler(opt, "linear")
    multi = build_multi_optimizer(modules, ["a"])
    multi.set_lr("a", 3e-4)
    multi.step_on(modules["a"](torch.randn(2, 4)).sum(), ["a"])
    assert multi.lr("a") == 3e-4


def test_constant_schedule_warms_up_linearly_and_resumes_mid_ramp():
    modules = _toy_modules()
    opt = build_optimizer(modules["a"].parameters(), lr=2e-3)
    warm = build_scheduler(opt, warmup_steps=4)
    rates = [warm.get_last_lr()[0]]
    for _ in range(5):
        opt.step()
        warm.step()
        rates.append(warm.get_last_lr()[0])
    assert rates == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3])
    # A resumed run rebuilds the scheduler, then loads its state: the ramp goes on where it was.
    opt = build_optimizer(modules["b"].parameters(), lr=2e-3)
    first = build_scheduler(opt, warmup_steps=4)
    opt.step()
    first.step()
    again = build_optimizer(modules["b"].parameters(), lr=2e-3)
    resumed = build_scheduler(again, warmup_steps=4)
    again.load_state_dict(opt.state_dict())
    resumed.load_state_dict(first.state_dict())
    again.step()
    resumed.step()
    assert resumed.get_last_lr()[0] == pytest.approx(1.5e-3)


def test_budget_schedule_decays_over_the_last_part_of_the_wall_clock_budget():
    now = [0.0]
    factor = _budget_decay(10.0, 0.0, 0.5, 0.1, clock=lambda: now[0])
    seen = []
    for minutes in (0, 5, 7.5, 10, 12):
        now[0] = 60 * minutes
        seen.append(factor(0))
    assert seen == pytest.approx([1.0, 1.0, 0.55, 0.1, 0.1])
    now[0] = 0.0
    resumed = _budget_decay(10.0, 5.0, 0.5, 0.1, clock=lambda: now[0])  # half the budget spent before
    now[0] = 150.0
    assert resumed(0) == pytest.approx(0.55)


def test_budget_scheduler_reads_the_trainer_budget_and_does_not_resume_a_clock():
    params = _toy_modules()["a"].parameters()
    opt = build_optimizer(params, lr=1e-3)
    with pytest.raises(ValueError, match="budget_minutes or Trainer.max_minutes"):
        build_scheduler(opt, "budget")
    with pytest.raises(ValueError, match="decay_fraction"):
        build_scheduler(opt, "budget", budget_minutes=1.0, decay_fraction=0.0)
    with gin.unlock_config():
        gin.bind_parameter("Trainer.max_minutes", 1e-6)  # over as soon as it starts: the floor
    try:
        floor = build_scheduler(opt, "budget", min_lr_ratio=0.25)
        floor.optimizer.step()
        floor.step()
        assert floor.get_last_lr() == pytest.approx([2.5e-4])
    finally:
        gin.clear_config()
    # A resumed run keeps its own clock: the saved state has no start time to restore.
    fresh = build_scheduler(build_optimizer(_toy_modules()["b"].parameters(), lr=1e-3), "budget", budget_minutes=60)
    fresh.load_state_dict(floor.state_dict())
    fresh.optimizer.step()
    fresh.step()
    assert fresh.get_last_lr() == pytest.approx([1e-3])


def test_fp16_overflow_is_left_to_the_grad_scaler():
    modules = _toy_modules()
    ctx = TrainingContext(device=torch.device("cpu"), grad_scaler=LossScaler(init_scale=2.0**16))
    opt = build_multi_optimizer(modules, ["a"], ctx=ctx)
    before = modules["a"].weight.detach().clone()
    loss = torch.sqrt(modules["a"](torch.zeros(1, 4)).sum() * 0)  # infinite gradient: an "overflow"
    assert not math.isfinite(opt.step_on(loss, ["a"]))  # no exception: the scaler skips the step
    ctx.grad_scaler.update()  # the trainer's, once per step
    assert torch.equal(modules["a"].weight, before) and ctx.grad_scaler.get_scale() == 2.0**15
    assert opt.schedulers["a"].last_epoch == 0
    opt.step_on(modules["a"](torch.randn(3, 4)).pow(2).mean(), ["a"])
    assert not torch.equal(modules["a"].weight, before) and opt.schedulers["a"].last_epoch == 1


@pytest.mark.parametrize("precision, dtype, scaler", [("bf16", torch.bfloat16, False), ("fp16", torch.float16, True)])
def test_mixed_precision_context(precision, dtype, scaler, tmp_path):
    from styletts2.train.distributed import DistEnv
    from styletts2.train.logger import TrainLogger

    trainer = Trainer(stage=ToyStage(), train_data="unused", mixed_precision=precision)
    trainer.env = DistEnv(0, 1, 0, torch.device("cpu"))
    trainer.logger = TrainLogger(tmp_path, enabled=False)
    ctx = trainer._context()
    assert (ctx.grad_scaler is not None) == scaler
    with ctx.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype
        assert torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype == dtype


def test_max_minutes_stops_after_the_step_that_spends_the_budget(corpus, tmp_path):
    _, result = run_toy(corpus, tmp_path, epochs=3, max_minutes=1e-9)
    assert result.status == "max_minutes" and result.iters == 1
    assert result.checkpoint == tmp_path / "last.pth" and result.checkpoint.exists()
    _, again = run_toy(corpus, tmp_path, epochs=3, max_minutes=1e-9)  # a new run of the folder: its own clock
    assert again.status == "max_minutes" and again.iters == 2


def test_checkpoints_record_the_text_normalizer(corpus, tmp_path):
    from styletts2.checkpoint import torch_load
    from styletts2.text.normalize import TextNormalizer

    run_toy(corpus, tmp_path, epochs=1, max_steps=1)
    recorded = torch_load(tmp_path / "last.pth")["text_normalizer"]
    assert recorded == TextNormalizer("en-us").describe() and recorded["version"]


def test_step_output_reads_every_loss_in_one_transfer():
    from styletts2.train.stage import StepOutput
    from styletts2.train.syncs import count_syncs
    losses = {"mel": torch.tensor(0.5), "dur": torch.tensor([2.0]), "ce": torch.tensor(1.0, dtype=torch.float64)}
    with count_syncs() as syncs:
        out = StepOutput.of(losses)
    assert out.losses == {"mel": 0.5, "dur": 2.0, "ce": 1.0} and syncs.total == 1
    assert StepOutput.of({}).losses == {}


def test_validation_mean_weighs_each_batch_by_its_size():
    """10 clips in batches of 8 and 2: the mean is the clips' mean, not the batches' (2 clips would
    otherwise weigh as much as 8)."""
    from types import SimpleNamespace

    class Batch(list):
        def to(self, device):
            return self

    class Stage:
        def validation_step(self, batch, epoch):
            return {"per": sum(batch) / len(batch)}

    model = SimpleNamespace(eval=lambda: None, train=lambda: None)
    trainer = SimpleNamespace(stage=Stage(), model=model, env=SimpleNamespace(device="cpu"),
                              val_loader=[Batch([0.0] * 8), Batch([1.0] * 2)])
    assert Trainer._validation_pass(trainer, epoch=1) == {"per": pytest.approx(0.2)}  # batches' mean: 0.5


def test_a_second_run_in_a_busy_run_folder_is_refused(corpus, tmp_path):
    import os

    from styletts2.model import parse_gin
    from styletts2.train.trainer import RunDirBusy, run_dir_lock

    gin.clear_config()
    parse_gin([str(REPO / "gin/model/tiny.gin")], toy_bindings(corpus, tmp_path / "run", epochs=1))
    with run_dir_lock(tmp_path / "run"):  # the live run (another open of the lock file conflicts as a process would)
        with pytest.raises(RunDirBusy, match=rf"run folder .*run is in use by another run \(pid {os.getpid()}\)"):
            Trainer().fit()
        assert not (tmp_path / "run" / "last.pth").exists()
    assert Trainer().fit().status == "completed"  # released when the run ends


def test_validation_clips_that_are_training_clips_are_warned_about_once(corpus, tmp_path, capsys):
    from styletts2.model import parse_gin

    for val_list, expected in (("train_list.txt", 1), ("val_list.txt", 0)):
        gin.clear_config()
        parse_gin([str(REPO / "gin/model/tiny.gin")],
                  toy_bindings(corpus, tmp_path / val_list, val_data=repr(str(corpus / val_list))))
        Trainer().setup()
        out = capsys.readouterr().out
        assert out.count("validation clip(s) are also in the training data") == expected
        assert ("warning: 6 validation clip(s)" in out) == bool(expected)  # the 6 usable clips of the list
