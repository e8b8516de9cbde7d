"""bench/learning.py's results: the table, the JSON and the curve image it writes (the training
itself is `styletts2/train/recipe.py`, tested in test_recipe.py)."""
import argparse
import json

import pytest
from PIL import Image

from styletts2.bench.learning import Row, build_parser, main, make_recipe, mean_over_seeds, parse_arguments, write_results


def test_results_table_json_and_curve(tmp_path):
    args = argparse.Namespace(results=tmp_path, minutes=60.0, clips=160, sentences="wide", threads=2, segments=4,
                              shares="", aligner_clips=None, plbert_text="clips", seeds=3, aligner_check_epochs=20,
                              gin_param=["aligner:Stage0Aligner.ctc_weight = 3.0"], stage0=None)
    rows = [Row(20.0, "stage 2, segment 1", 0.97, 0.95, 1.2, 2.5, "sampled", 3, 0.02),
            Row(40.0, "stage 2, segment 2", 0.60, 0.55, None, 1.1, "sampled", 3, 0.015),
            Row(20.0, "stage 2, segment 1", 0.90, 0.85, 1.3, 1.2, "clip"),
            Row(40.0, "stage 2, segment 2", 0.50, 0.45, 1.5, 1.0, "clip")]
    teacher = {"per": 0.0, "per_text": 0.28, "dnsmos_ovrl": 2.6}
    machine = {"cpu": "Test CPU", "logical_cpus": 2, "threads": 2, "platform": "Linux", "python": "3.11",
               "date": "2026-12-03"}
    write_results(args, rows, teacher, 4000.0, {"aligner": 6.0}, {"aligner": 1200}, machine, [0.61])
    table = (tmp_path / "learning.md").read_text()
    assert ("python bench/learning.py --minutes 60 --clips 160 --sentences wide --threads 2 --segments 4 "
            "--plbert-text clips --seeds 3 --aligner-check-epochs 20 "
            "--gin_param 'aligner:Stage0Aligner.ctc_weight = 3.0'") in table
    assert "Aligner restarted: its run with validation CTC PER 0.61 after 20 epochs was set aside" in table
    assert "Machine: Test CPU, 2 logical CPUs, 2 threads" in table
    assert "Stages: aligner 6.0 min, 1200 steps (0.30 s/step)" in table
    assert "| 40.0 | stage 2, segment 2 | sampled | 0.600 ± 0.015 | 0.320 | 0.550 | - | 1.100 |" in table
    assert "Sampled styles: the mean over 3 runtime seeds" in table
    assert "| 40.0 | stage 2, segment 2 | clip | 0.500 | 0.220 | 0.450 | 1.500 | 1.000 |" in table
    payload = json.loads((tmp_path / "learning.json").read_text())
    assert payload["rows"][0]["per_text"] == 0.97 and payload["stage_minutes"] == {"aligner": 6.0}
    assert payload["stage_steps"] == {"aligner": 1200} and payload["machine"]["cpu"] == "Test CPU"
    assert payload["aligner_restarts"] == [0.61]
    image = Image.open(tmp_path / "learning.png")
    assert image.size == (960, 240)
    # the PER curves are drawn in blue (sampled styles) and orange (styles from a clip) in the first panel
    for colour in ((0, 0, 255), (255, 165, 0)):
        assert any(image.getpixel((x, y))[:3] == colour for x in range(36, 284) for y in range(36, 204))


def test_refuses_a_used_folder(tmp_path, capsys):
    (tmp_path / "stage2").mkdir()
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path)])
    assert err.value.code == 2
    assert "holds an earlier run" in capsys.readouterr().err


def test_refuses_bad_shares_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--shares", "aligner=0.5,stage1=0.6"])
    assert err.value.code == 2
    assert "add up to 1.15" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_refuses_an_aligner_subset_the_corpus_cannot_give(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--clips", "16", "--aligner-clips", "20"])
    assert err.value.code == 2 and "--aligner-clips must lie between 1 and --clips (16)" in capsys.readouterr().err


def test_refuses_a_negative_aligner_check(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--aligner-check-epochs", "-1"])
    assert err.value.code == 2 and "--aligner-check-epochs must be at least 0" in capsys.readouterr().err


def test_refuses_a_binding_without_its_stage_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--gin_param", "Stage0Aligner.ctc_weight = 3.0"])
    assert err.value.code == 2 and "STAGE:BINDING" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--minutes", "inf"], "--minutes must be a positive number"), (["--minutes", "nan"], "got nan"),
    (["--threads", "0"], "--threads must be at least 1"), (["--threads", "-3"], "--threads"),
    (["--clips", "0"], "--clips must be at least 2"), (["--clips", "-5"], "--clips"),
    (["--segments", "0"], "--segments must be at least 1"), (["--segments", "-1"], "--segments"),
    (["--gin_param", "stage1:notgin"], "'notgin' cannot be parsed"),
    (["--results", "{tmp}/file"], "--results {tmp}/file: {tmp}/file is a file"),
    (["--results", "{tmp}/file/results"], "{tmp}/file is a file"),
    (["--out", "{tmp}/file"], "--out {tmp}/file: {tmp}/file is a file")])
def test_refuses_settings_the_run_cannot_use_before_any_work(tmp_path, capsys, extra, fragment):
    (tmp_path / "file").write_text("a file where a folder is asked for")
    out = tmp_path / "out"
    argv = ["--minutes", "1", "--out", str(out), "--results", str(tmp_path / "results"),
            *(a.format(tmp=tmp_path) for a in extra)]
    with pytest.raises(SystemExit) as err:
        parse_arguments(argv)
    message = capsys.readouterr().err.splitlines()[-1]
    assert err.value.code == 2 and message.startswith("bench/learning.py: error: --")
    assert fragment.format(tmp=tmp_path) in message
    assert not out.exists() and not (tmp_path / "results").exists()


def test_pl_bert_reads_the_pool_unless_told_otherwise():
    assert build_parser().parse_args([]).plbert_text == "pool"
    assert build_parser().parse_args(["--plbert-text", "clips"]).plbert_text == "clips"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--plbert-text", "wikipedia"])


def test_scores_are_the_mean_over_seeds_with_the_per_spread():
    mean, spread = mean_over_seeds([{"per_text": 0.30, "dnsmos_ovrl": 2.0, "per": None},
                                    {"per_text": 0.34, "dnsmos_ovrl": 3.0, "per": 0.5}])
    assert mean["per_text"] == pytest.approx(0.32) and mean["dnsmos_ovrl"] == pytest.approx(2.5)
    assert mean["per"] is None  # not scored in one seed: no mean
    assert spread == pytest.approx(0.028284, abs=1e-6)  # sample standard deviation
    one, none = mean_over_seeds([{"per_text": 0.4}])
    assert one == {"per_text": 0.4} and none is None


def test_refuses_no_seeds(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--seeds", "0"])
    assert err.value.code == 2 and "--seeds must be at least 1" in capsys.readouterr().err
    assert build_parser().parse_args([]).seeds == 3


def _earlier_run(root):
    """An earlier run's folder with its stage-0 checkpoints (empty files: only their paths are read)."""
    for part, name in (("aligner", "best.pth"), ("pitch", "last.pth"), ("plbert", "last.pth")):
        (root / part).mkdir(parents=True)
        (root / part / name).write_bytes(b"")
    return root


def test_stage0_parts_of_an_earlier_run_give_the_budget_to_stages_1_and_2(tmp_path):
    earlier = _earlier_run(tmp_path / "earlier")
    args, shares, bindings = parse_arguments(["--out", str(tmp_path / "out"), "--stage0", str(earlier)])
    assert shares == {"stage1": 0.72}  # SHARES' ratio of stage 1 to stage 2
    recipe = make_recipe(args, shares, bindings, tmp_path / "out")
    assert recipe.stage0 == earlier.resolve()
    assert f'aligner_path = "{earlier / "aligner" / "best.pth"}"' in " ".join(recipe.command("stage1", 1.0))
    assert parse_arguments(["--out", str(tmp_path / "out"), "--stage0", str(earlier), "--shares", "stage1=0.5"])[1] \
        == {"stage1": 0.5}


@pytest.mark.parametrize("extra, fragment", [
    ([], "lacks the stage-0 parts aligner/last.pth"),
    (["--shares", "aligner=0.1"], "'aligner' does not train in this run"),
    (["--gin_param", "pitch:Trainer.seed = 1"], "pitch does not train with --stage0"),
    (["--aligner-clips", "8"], "with --stage0 it does not train"),
])
def test_stage0_refuses_what_it_cannot_use_before_training(tmp_path, capsys, extra, fragment):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    if extra:
        _earlier_run(tmp_path / "complete")
        earlier = tmp_path / "complete"
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path / "out"), "--stage0", str(earlier), *extra])
    assert err.value.code == 2 and fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
