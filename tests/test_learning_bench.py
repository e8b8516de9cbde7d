"""bench/learning.py's results: the table, the JSON and the curve image it writes (the training
itself is `styletts2/train/recipe.py`, tested in test_recipe.py)."""
import argparse
import json

import pytest
from PIL import Image

from styletts2.bench.learning import Row, build_parser, main, write_results


def test_results_table_json_and_curve(tmp_path):
    args = argparse.Namespace(results=tmp_path, minutes=60.0, clips=160, sentences="wide", threads=2, segments=4,
                              shares="", aligner_clips=None, plbert_text="clips",
                              gin_param=["aligner:Stage0Aligner.ctc_weight = 3.0"])
    rows = [Row(20.0, "stage 2, segment 1", 0.97, 0.95, 1.2, 2.5), Row(40.0, "stage 2, segment 2", 0.60, 0.55, None, 1.1),
            Row(20.0, "stage 2, segment 1", 0.90, 0.85, 1.3, 1.2, "clip"),
            Row(40.0, "stage 2, segment 2", 0.50, 0.45, 1.5, 1.0, "clip")]
    teacher = {"per": 0.0, "per_text": 0.28, "dnsmos_ovrl": 2.6}
    machine = {"cpu": "Test CPU", "logical_cpus": 2, "threads": 2, "platform": "Linux", "python": "3.11",
               "date": "2026-12-03"}
    write_results(args, rows, teacher, 4000.0, {"aligner": 6.0}, {"aligner": 1200}, machine)
    table = (tmp_path / "learning.md").read_text()
    assert ("python bench/learning.py --minutes 60 --clips 160 --sentences wide --threads 2 --segments 4 "
            "--plbert-text clips --gin_param 'aligner:Stage0Aligner.ctc_weight = 3.0'") in table
    assert "Machine: Test CPU, 2 logical CPUs, 2 threads" in table
    assert "Stages: aligner 6.0 min, 1200 steps (0.30 s/step)" in table
    assert "| 40.0 | stage 2, segment 2 | sampled | 0.600 | 0.320 | 0.550 | - | 1.100 |" in table
    assert "| 40.0 | stage 2, segment 2 | clip | 0.500 | 0.220 | 0.450 | 1.500 | 1.000 |" in table
    payload = json.loads((tmp_path / "learning.json").read_text())
    assert payload["rows"][0]["per_text"] == 0.97 and payload["stage_minutes"] == {"aligner": 6.0}
    assert payload["stage_steps"] == {"aligner": 1200} and payload["machine"]["cpu"] == "Test CPU"
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


def test_refuses_a_binding_without_its_stage_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--minutes", "1", "--out", str(tmp_path), "--gin_param", "Stage0Aligner.ctc_weight = 3.0"])
    assert err.value.code == 2 and "STAGE:BINDING" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_pl_bert_reads_the_pool_unless_told_otherwise():
    assert build_parser().parse_args([]).plbert_text == "pool"
    assert build_parser().parse_args(["--plbert-text", "clips"]).plbert_text == "clips"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--plbert-text", "wikipedia"])
