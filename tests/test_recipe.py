"""The from-nothing sequence (styletts2/train/recipe.py) that the demo and the learning benchmark run:
stage 0 -> stage 1 -> stage 2 as runner.py subprocesses, each passing its output to the next by path."""
import ast

import pytest
import torch

from styletts2.checkpoint import torch_load
from styletts2.data.make_corpus import SENTENCE_POOLS, make_corpus
from styletts2.data.readers import read_list
from styletts2.train.recipe import (ALIGNER_STUCK_PER, SHARES, Recipe, RecipeError, aligner_warning,
                                    describe_stages, parse_shares, parse_stage_bindings)


def _parameters(state: dict) -> dict:
    """A module's state without batch-norm statistics (stage 1 runs the pitch extractor in train mode)."""
    return {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k}


def test_recipe_trains_from_nothing_and_hands_each_stage_on(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "corpus", n=12)
    # The aligner validates every epoch, so its seconds of training end on a validation.
    recipe = Recipe(corpus, tmp_path / "runs", minutes=0.2, threads=1,
                    bindings={"aligner": ["Trainer.validate_every_epochs = 1"]})
    seen = []
    checkpoint = recipe.run(after_segment=lambda index, path: seen.append((index, path)))
    assert seen == [(0, checkpoint)] and checkpoint.exists()
    assert set(recipe.timings) == {"aligner", "pitch", "plbert", "stage1", "stage2"}
    # Each stage's step count comes from its runner.py summary line and matches its checkpoint.
    assert set(recipe.steps) == set(recipe.timings) and all(n > 0 for n in recipe.steps.values())
    out = capsys.readouterr().out
    assert "$ python runner.py --gin gin/learning/stage0_aligner.gin" in out
    assert "left its CTC plateau, if at all" in out  # seconds of training: it hears nothing yet

    aligner, pitch = torch_load(recipe.aligner_checkpoint()), torch_load(recipe.run_dir("pitch") / "last.pth")
    plbert, stage1 = torch_load(recipe.run_dir("plbert") / "last.pth"), torch_load(recipe.run_dir("stage1") / "last.pth")
    stage2 = torch_load(checkpoint)
    assert recipe.steps["stage2"] == stage2["trainer"]["iters"] and recipe.steps["stage1"] == stage1["trainer"]["iters"]
    # Stage 1 starts from the stage-0 aligner and pitch extractor; before TMA it trains neither.
    for key, value in aligner["model"].items():
        assert torch.equal(stage1["net"]["text_aligner"][key], value), key
    for key, value in _parameters(pitch["net"]["pitch_extractor"]).items():
        assert torch.equal(stage1["net"]["pitch_extractor"][key], value), key
    # Stage 2 starts from stage 1 (whose aligner it keeps frozen) and the stage-0 PL-BERT (which it
    # trains at 1e-5: a few steps move it by far less than the distance to a fresh initialisation).
    for key, value in stage1["net"]["text_aligner"].items():
        assert torch.equal(stage2["net"]["text_aligner"][key], value), key
    for key, value in plbert["net"]["bert"].items():
        assert torch.allclose(stage2["net"]["bert"][key], value, atol=1e-3), key


def test_a_budget_of_no_minutes_is_refused_and_a_tiny_share_still_trains_a_step(tmp_path):
    for minutes in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="budget must be a positive number of minutes"):
            Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=minutes)
    # 2 % of 0.01 minutes would print as 0.000, which the Trainer refuses (it stopped after one step)
    command = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=0.01).command("plbert", 0.0002)
    assert "Trainer.max_minutes = 0.001" in command


def test_later_stages_load_the_aligners_best_checkpoint_when_it_has_one(tmp_path):
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=1)
    aligner = recipe.run_dir("aligner")
    aligner.mkdir(parents=True)
    assert recipe.aligner_checkpoint() == aligner / "last.pth"  # stopped before its first validation
    (aligner / "best.pth").write_bytes(b"")
    assert recipe.aligner_checkpoint() == aligner / "best.pth"
    assert f'load_pretrained_parts.aligner_path = "{aligner / "best.pth"}"' in recipe.command("stage1", 1.0)


def test_recipe_names_the_failing_stage(tmp_path):
    recipe = Recipe(tmp_path / "no_corpus", tmp_path / "runs", minutes=0.1, threads=1)
    with pytest.raises(RecipeError, match="aligner: .*failed with exit code"):
        recipe.run()


def test_shares_replace_the_named_stages_and_leave_stage_2_the_rest():
    shares = parse_shares("aligner=0.18, stage1=0.44")
    assert shares == {**SHARES, "aligner": 0.18, "stage1": 0.44} and parse_shares("") == SHARES
    for text, message in (("stage2=0.3", "unknown stage 'stage2'"), ("aligner=x", "must be a number"),
                          ("pitch=0", "between 0 and 1"), ("aligner=0.5,stage1=0.5", "add up to 1.05")):
        with pytest.raises(ValueError, match=message):
            parse_shares(text)


def test_a_stages_bindings_go_to_its_command_only_and_after_the_recipes_own(tmp_path):
    bindings = parse_stage_bindings(["aligner: Stage0Aligner.ctc_weight = 3.0", "stage2:Trainer.x = 'a:b'"])
    assert bindings == {"aligner": ["Stage0Aligner.ctc_weight = 3.0"], "stage2": ["Trainer.x = 'a:b'"]}
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=1, bindings=bindings)
    aligner = recipe.command("aligner", 1.0)
    assert aligner[-2:] == ["--gin_param", "Stage0Aligner.ctc_weight = 3.0"]  # last: it overrides the files
    assert "Stage0Aligner.ctc_weight = 3.0" not in recipe.command("stage1", 1.0)
    # The recipe's bindings for one run (a check's epochs, a restart's seed, a stage-2 budget) come last.
    assert recipe.command("stage2", 1.0, ("extra = 1",))[-4:] == ["--gin_param", "Trainer.x = 'a:b'",
                                                                   "--gin_param", "extra = 1"]
    for item, message in (("Stage0Aligner.ctc_weight = 3.0", "STAGE:BINDING"), ("stage3:x = 1", "STAGE:BINDING"),
                          ("stage1: ", "no binding")):
        with pytest.raises(ValueError, match=message):
            parse_stage_bindings([item])


def test_the_aligner_can_train_on_the_first_clips_only(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train_list.txt").write_text("".join(f"wavs/{i}.wav|text {i}|0\n" for i in range(6)))
    recipe = Recipe(corpus, tmp_path / "runs", minutes=1, aligner_clips=4)
    aligner = " ".join(recipe.command("aligner", 1.0))
    assert f'Trainer.train_data = "{tmp_path / "runs" / "aligner_train_list.txt"}"' in aligner
    assert (tmp_path / "runs" / "aligner_train_list.txt").read_text().splitlines() == \
        [f"wavs/{i}.wav|text {i}|0" for i in range(4)]
    assert f'Trainer.train_data = "{corpus / "train_list.txt"}"' in " ".join(recipe.command("stage1", 1.0))
    with pytest.raises(RecipeError, match="between 1 and the 6 training clips"):
        Recipe(corpus, tmp_path / "runs", minutes=1, aligner_clips=7).command("aligner", 1.0)


def test_pl_bert_can_train_on_text_beyond_the_clips(tmp_path):
    corpus, text = tmp_path / "corpus", tmp_path / "text_pool.txt"
    corpus.mkdir()
    recipe = Recipe(corpus, tmp_path / "runs", minutes=1, plbert_text=text)
    with pytest.raises(RecipeError, match="text_pool.txt does not exist"):
        recipe.command("plbert", 1.0)
    with pytest.raises(RecipeError, match="text_pool.txt does not exist"):
        recipe.run()  # before any stage trains
    assert not recipe.log.exists() and not recipe.spent
    text.write_text("One sentence.\n")
    plbert = " ".join(recipe.command("plbert", 1.0))
    assert f'Trainer.train_data = "{text}"' in plbert
    assert f'Trainer.train_data = "{corpus / "train_list.txt"}"' not in plbert
    assert f'Trainer.val_data = "{corpus / "val_list.txt"}"' in plbert  # validated on the clips' text
    assert f'Trainer.train_data = "{corpus / "train_list.txt"}"' in " ".join(recipe.command("stage2", 1.0))


def test_stage_2_segments_share_one_learning_rate_budget(tmp_path, monkeypatch):
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=10, shares={"stage1": 0.6})
    runs = []
    monkeypatch.setattr(recipe, "run_stage", lambda name, minutes, extra=(): runs.append((name, minutes, extra)))
    recipe.spent = 6.0  # what the stubbed stage 1 would have used
    recipe.run(segments=2)
    assert [(name, round(minutes, 3)) for name, minutes, _ in runs] == [("stage1", 6.0), ("stage2", 2.0), ("stage2", 2.0)]
    assert runs[1][2] == ("build_scheduler.budget_minutes = 4.000", "build_scheduler.budget_spent_minutes = 0.000")
    assert runs[2][2] == ("build_scheduler.budget_minutes = 4.000", "build_scheduler.budget_spent_minutes = 2.000")


def _stage0_folder(root, aligner_best: bool = True):
    """An earlier run's folder with its stage-0 checkpoints (empty files: only their paths are read)."""
    for part, name in (("aligner", "best.pth" if aligner_best else "last.pth"), ("pitch", "last.pth"),
                       ("plbert", "last.pth")):
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / part / name).write_bytes(b"")
    return root


def test_stage_0_parts_of_an_earlier_run_replace_stage_0(tmp_path, monkeypatch):
    earlier = _stage0_folder(tmp_path / "earlier")
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=10, stage0=earlier,
                    shares=parse_shares("stage1=0.7"))  # with the stage-0 shares: unused
    stage1, stage2 = " ".join(recipe.command("stage1", 1.0)), " ".join(recipe.command("stage2", 1.0))
    assert f'load_pretrained_parts.aligner_path = "{earlier / "aligner" / "best.pth"}"' in stage1
    assert f'load_pretrained_parts.pitch_path = "{earlier / "pitch" / "last.pth"}"' in stage1
    assert f'load_pretrained_parts.plbert_path = "{earlier / "plbert" / "last.pth"}"' in stage2
    # stage 2 still starts from this run's own stage 1
    assert f'Stage2.first_stage_checkpoint = "{tmp_path / "runs" / "stage1" / "last.pth"}"' in stage2
    runs = []
    monkeypatch.setattr(recipe, "run_stage", lambda name, minutes, extra=(): runs.append((name, round(minutes, 3))))
    recipe.spent = 7.0
    recipe.run()
    assert runs == [("stage1", 7.0), ("stage2", 3.0)]  # no stage-0 run, whatever their shares


def test_stages_whose_parts_are_given_take_no_share():
    assert parse_shares("stage1=0.9", without=("aligner", "pitch", "plbert")) == {"stage1": 0.9}
    with pytest.raises(ValueError, match="'pitch' does not train in this run"):
        parse_shares("pitch=0.1", without=("aligner", "pitch", "plbert"))
    with pytest.raises(ValueError, match="add up to 1.07"):  # counted when they train
        parse_shares("stage1=0.9")


def test_missing_stage_0_parts_stop_the_recipe_before_anything_trains(tmp_path, monkeypatch):
    earlier = _stage0_folder(tmp_path / "earlier", aligner_best=False)
    (earlier / "plbert" / "last.pth").unlink()
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=10, stage0=earlier)
    monkeypatch.setattr(recipe, "run_stage", lambda *args, **kwargs: pytest.fail("a stage ran"))
    with pytest.raises(RecipeError, match=r"lacks the stage-0 parts plbert/last\.pth: give the --out folder"):
        recipe.run()
    recipe.stage0 = tmp_path / "nowhere"
    with pytest.raises(RecipeError, match="is not a folder"):
        recipe.run()


def test_the_demo_checks_its_stage_0_folder_before_making_a_corpus(tmp_path):
    from styletts2.demo import main

    with pytest.raises(SystemExit, match="demo: .* lacks the stage-0 parts aligner/last.pth, pitch/last.pth"):
        main(["--out", str(tmp_path / "demo"), "--stage0", str(tmp_path)])
    assert not (tmp_path / "demo").exists()


def _aligner_validation(epoch: int, ctc_per: float) -> str:
    return (f"epoch {epoch}/100000 | 5s | train: ctc 1.103 s2s 1.017 guided 0.015 | val: ctc 2.635 s2s 1.616 "
            f"guided 0.01844 ctc_per {ctc_per} boundary_mae_ms 71.63 uniform_mae_ms 51.9\n")


def test_an_aligner_left_on_its_ctc_plateau_is_warned_about_by_its_last_validation():
    stuck = _aligner_validation(5, 0.965) + "epoch 6/100000:  39%|\r" + _aligner_validation(80, 0.5861)
    warning = aligner_warning(stuck + "runner.py: finished after 81 epoch(s), 1446 step(s)\n")
    assert warning is not None and "CTC PER is 0.59" in warning and "plateau" in warning
    # The last validation decides: an aligner that left the plateau late is not warned about.
    assert aligner_warning(_aligner_validation(5, 0.965) + _aligner_validation(80, 0.0742)) is None
    assert aligner_warning("runner.py: finished after 1 epoch(s), 3 step(s)\n") is None  # never validated


def _fake_aligner_runs(recipe: Recipe, monkeypatch, check_per: float) -> list:
    """run_stage stubbed: each aligner run takes 3 minutes and leaves a checkpoint; the check's run
    ends on a validation CTC PER of `check_per`, any later run on 0.08."""
    runs = []

    def run_stage(name, minutes, extra=()):
        runs.append((name, round(minutes, 3), extra))
        recipe.timings[name] = recipe.timings.get(name, 0.0) + 3.0
        recipe.run_dir(name).mkdir(parents=True, exist_ok=True)
        (recipe.run_dir(name) / "last.pth").write_text(f"run {len(runs)}")
        return _aligner_validation(35 if len(runs) == 1 else 80, check_per if len(runs) == 1 else 0.08)

    monkeypatch.setattr(recipe, "run_stage", run_stage)
    return runs


def test_an_aligner_still_on_its_plateau_at_its_check_starts_again_with_the_next_seed(tmp_path, monkeypatch,
                                                                                         capsys):
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=60, aligner_check_epochs=35,
                    bindings={"aligner": ["Trainer.seed = 1", "Stage0Aligner.lr = 2e-3"]})
    runs = _fake_aligner_runs(recipe, monkeypatch, check_per=0.62)
    recipe.run_aligner(7.2)
    assert runs == [("aligner", 7.2, ("Trainer.epochs = 35",)), ("aligner", 4.2, ("Trainer.seed = 2",))]
    assert (recipe.run_dir("aligner_stuck") / "last.pth").read_text() == "run 1"  # set aside, not deleted
    assert (recipe.run_dir("aligner") / "last.pth").read_text() == "run 2"
    assert recipe.aligner_restarts == [0.62]
    out = capsys.readouterr().out
    assert "CTC PER 0.62 after 35 epochs, still on its CTC plateau: starting again with Trainer.seed = 2" in out
    assert "warning" not in out  # the restart left the plateau


def test_an_aligner_off_its_plateau_at_its_check_resumes_and_is_judged_at_its_end(tmp_path, monkeypatch, capsys):
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=60, aligner_check_epochs=35)
    runs = _fake_aligner_runs(recipe, monkeypatch, check_per=0.37)  # above the end's warning line, not the check's
    assert 0.37 <= ALIGNER_STUCK_PER
    recipe.run_aligner(7.2)
    assert runs == [("aligner", 7.2, ("Trainer.epochs = 35",)), ("aligner", 4.2, ())]
    assert not recipe.run_dir("aligner_stuck").exists() and recipe.aligner_restarts == []
    assert "warning" not in capsys.readouterr().out
    # Without a check: one run, and the warning reads its last validation.
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs2", minutes=60)
    runs = _fake_aligner_runs(recipe, monkeypatch, check_per=0.59)
    recipe.run_aligner(7.2)
    assert runs == [("aligner", 7.2, ())] and "CTC PER is 0.59" in capsys.readouterr().out


def test_a_restarted_aligner_trains_anew_in_a_real_run(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "corpus", n=12)
    # At most two steps a run; the check after its one epoch (a fresh aligner hears nothing: CTC PER ~1).
    recipe = Recipe(corpus, tmp_path / "runs", minutes=2, threads=1, aligner_check_epochs=1,
                    bindings={"aligner": ["Trainer.validate_every_epochs = 1", "Trainer.max_steps = 2",
                                          "Trainer.seed = 3"]})
    recipe.run_aligner(2.0)
    assert len(recipe.aligner_restarts) == 1 and recipe.aligner_restarts[0] > ALIGNER_STUCK_PER
    stuck = torch_load(recipe.run_dir("aligner_stuck") / "last.pth")
    restarted = torch_load(recipe.run_dir("aligner") / "last.pth")
    assert restarted["trainer"]["iters"] == 2 and recipe.steps["aligner"] == 2  # counted from nothing
    restart_command = capsys.readouterr().out.split("$ python ")[2].splitlines()[0]
    assert restart_command.split()[-4:] == ["--gin_param", "'Trainer.seed", "=", "4'"]  # after the bound seed 3
    differ = [k for k, v in stuck["model"].items()
              if v.is_floating_point() and not torch.equal(v, restarted["model"][k])]
    assert differ  # another seed: other initial weights


def test_stages_are_described_with_their_seconds_per_step():
    line = describe_stages({"aligner": 7.2, "pitch": 1.8, "stage2": 16.0}, {"aligner": 1800, "stage2": 960})
    assert line == "aligner 7.2 min, 1800 steps (0.24 s/step); pitch 1.8 min; stage2 16.0 min, 960 steps (1.00 s/step)"


@pytest.mark.parametrize("args, message", [(["--minutes", "-1"], "--minutes must be positive"),
                                           (["--text", "?! ..."], "--text: nothing to say"),
                                           (["--text", "\U0001F600"], "once normalized")])
def test_the_demo_refuses_a_bad_budget_or_text_before_any_work(tmp_path, capsys, args, message):
    from styletts2.demo import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "demo"), *args])
    assert message in capsys.readouterr().err and not (tmp_path / "demo").exists()


def test_the_demos_bindings_parse_in_the_configs_of_their_stages(tmp_path):
    # A misspelt binding would fail only once the corpus and the stages before it had run.
    import gin

    import runner
    from styletts2.demo import DEMO_BINDINGS
    from styletts2.model import parse_gin

    runner._register_configurables()
    recipe = Recipe(tmp_path / "corpus", tmp_path / "runs", minutes=1, bindings=DEMO_BINDINGS)
    for stage, stage_bindings in DEMO_BINDINGS.items():
        config = recipe.command(stage, 1.0)[2]
        gin.clear_config()
        try:
            parse_gin([config], stage_bindings)
            for binding in stage_bindings:
                name, _, value = binding.partition("=")
                assert gin.query_parameter(name.strip()) == ast.literal_eval(value.strip()), binding
        finally:
            gin.clear_config()


def test_the_demo_says_whether_its_text_was_trained_on(tmp_path):
    from styletts2.demo import TEXT, text_status

    corpus = make_corpus(tmp_path / "corpus", n=12, sentences="wide")
    metadata = [line.split("|") for line in (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    by_id = {fields[0]: fields[1] for fields in metadata}
    train, val = ([r.wav.stem for r in read_list(corpus / name)] for name in ("train_list.txt", "val_list.txt"))
    assert text_status(corpus, by_id[train[0]]) == "training"
    assert text_status(corpus, by_id[val[0]]) == "validation"
    assert text_status(corpus, "A sentence that no clip of this corpus reads.") == "held out"
    assert TEXT in {text for text, _ in SENTENCE_POOLS["wide"]}  # as the README says: a pool sentence


def test_the_demo_ends_with_its_files_and_the_way_to_a_model_that_speaks(tmp_path):
    from styletts2.demo import closing_lines

    lines = closing_lines({"training": 540.0, "export": 9.4}, tmp_path / "demo.wav", tmp_path / "clip.wav",
                          tmp_path / "exported", tmp_path / "train.log", "It's late.")
    assert lines[0].endswith("training 540 s, export 9 s (total 549 s)")
    assert f"onnx model: {tmp_path / 'exported'}" in lines[2]
    # the hint is a command a shell runs as printed: the text quoted, the benchmark's last export
    assert lines[-1].strip() == ("python bench/learning.py --minutes 60 && python -m styletts2.runtime "
                                 "'It'\"'\"'s late.' -m runs/learning/export_3 -o hour.wav")
