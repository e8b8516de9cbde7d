"""bench/int8_quality.py (styletts2/bench/int8_quality.py): the summary of int8 against fp32 over
seeds, the results it writes, and its errors before any work."""
import json

import pytest

from styletts2.bench.int8_quality import main, score_folders, table, write_results
from styletts2.bench.machine import machine_record


def _rows():
    rows = []
    for seed, (fp32, int8) in enumerate(((0.40, 0.42), (0.50, 0.46))):
        for name, per in (("fp32", fp32), ("int8", int8)):
            rows.append({"export": name, "seed": seed, "per_text": per, "per": per + 0.1, "dnsmos_ovrl": 2.0 + seed,
                         "total_duration_ratio": 1.1})
    return rows


def test_table_gives_mean_spread_and_the_difference():
    lines = table(_rows()).splitlines()
    assert lines[2].startswith("| fp32 | 0.450 ± 0.071 | 0.550 ± 0.071 | 2.500 ± 0.707 | 1.100 ± 0.000 |")
    assert lines[3].startswith("| int8 | 0.440 ± 0.028 |")
    assert lines[4] == "| int8 - fp32 | -0.010 | -0.010 | +0.000 | +0.000 |"


def test_results_are_written_as_json_and_markdown(tmp_path):
    rows = _rows()
    machine = machine_record(threads=2, libraries=False)
    write_results(tmp_path / "q.json", "python bench/int8_quality.py ...", rows, table(rows), machine)
    assert json.loads((tmp_path / "q.json").read_text())["rows"] == rows
    markdown = (tmp_path / "q.md").read_text()
    assert f"Machine: {machine['cpu']}, " in markdown and machine["cpu"] != "unknown"
    assert "| int8 | 1 | 0.460 | 0.560 | 3.000 | 1.100 |" in markdown and "int8 - fp32" in markdown


def test_errors_come_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "none.pth"), "--teacher", str(tmp_path)])
    assert "no checkpoint" in capsys.readouterr().err
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(SystemExit):  # before the exports
        main(["--checkpoint", str(checkpoint), "--teacher", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "no teacher clip" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(SystemExit, match="no teacher clip"):
        score_folders({"fp32": tmp_path}, tmp_path / "teacher", seeds=1, threads=1)
