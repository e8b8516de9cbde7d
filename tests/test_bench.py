"""bench/ smoke tests: the RTF benchmark runs end to end on a tiny random model (one sentence, one
repeat) and writes the documented JSON; the FLOP counter is exact on layers with known counts.
No speed assertions: speed targets live in the benchmark's results, not in tests."""
import json
import math
from pathlib import Path

import pytest
import torch

from styletts2.bench import flops, rtf
from styletts2.bench.matmul_rate import measure

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("torch/fp32", "eager/fp32", "onnxruntime/fp32", "onnxruntime/int8")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    argv = ["--random-init", str(REPO / "gin/model/tiny.gin"), "--backends", "torch,eager,onnxruntime,onnxruntime:int8",
            "--sentences", "short", "--repeats", "1", "--warmup", "0", "--threads", "1", "--profile", "--json", str(out)]
    assert rtf.main(argv) == 0
    return json.loads(out.read_text()), out


def test_machine_record(result):
    machine = result[0]["machine"]
    assert machine["threads"] == 1
    for key in ("cpu", "torch", "onnxruntime", "python", "logical_cpus"):
        assert machine[key]


def test_rows_per_backend_and_component(result):
    rows = result[0]["rows"]
    for label in BACKENDS:
        backend, precision = label.split("/")
        mine = {(r["sentence"], r["component"]): r for r in rows if (r["backend"], r["precision"]) == (backend, precision)}
        assert set(mine) == {("short", c) for c in (*rtf.COMPONENTS, "end_to_end")} | {("all", "end_to_end")}
        for row in mine.values():
            assert 0 < row["rtf_median"] <= row["rtf_p95"] < math.inf
            assert row["repeats"] == 1 and row["audio_s"] > 0
        assert mine[("all", "end_to_end")]["ttfa_median_s"] > 0
        assert mine[("short", "end_to_end")]["peak_rss_mb"] > 0


def test_audio_length_is_pinned(result):
    # --speed auto (random weights): the short sentence renders about its 1 s target
    row = next(r for r in result[0]["rows"] if r["sentence"] == "short" and r["component"] == "end_to_end")
    assert 0.7 < row["audio_s"] < 1.3


def test_quality_against_eager(result):
    rows = {(r["backend"], r["precision"]): r for r in result[0]["rows"]
            if r["sentence"] == "short" and r["component"] == "end_to_end"}
    assert rows[("eager", "fp32")]["snr_db"] == math.inf
    onnx = rows[("onnxruntime", "fp32")]
    assert onnx["durations_equal"] and onnx["snr_db"] > 20  # the exported graph computes what eager does
    int8 = rows[("onnxruntime", "int8")]  # the vocoder's convolutions in int8, the predictor fp32
    assert int8["durations_equal"] and 0 < int8["logmel_l1"] < 0.05 and int8["snr_db"] > 15
    # the library's torch synthesizer draws its own source noise: compared by durations only
    assert "durations_equal" in rows[("torch", "fp32")] and "snr_db" not in rows[("torch", "fp32")]
    assert rows[("onnxruntime", "fp32")]["ratio_to_torch"] > 0 and rows[("onnxruntime", "fp32")]["ratio_to_eager"] > 0


def test_flops_and_floor(result):
    data = result[0]
    assert data["flops"]["uncounted_ops"] == []  # every product-like op had a formula
    per_second = data["flops"]["gflop_per_audio_second"]
    assert per_second["decoder"] > 0 and per_second["end_to_end"] == pytest.approx(
        sum(per_second[c] for c in rtf.COMPONENTS), rel=1e-3)
    assert {f["precision"] for f in data["floor"]} == {"fp32", "bf16", "int8"}
    assert all(f["floor_rtf"] > 0 for f in data["floor"])


def test_decoder_profile(result):
    profile = result[0]["profile"]
    assert set(profile) == {"eager", "onnxruntime/fp32", "onnxruntime/int8"}
    for label in ("onnxruntime/fp32", "onnxruntime/int8"):
        entry = profile[label]
        assert entry["total_kernel_s"] > 0 and 0 < sum(o["share"] for o in entry["by_op_type"]) <= 1.0001
    assert any(o["op"].startswith("QLinear") for o in profile["onnxruntime/int8"]["by_op_type"])
    assert not any(o["op"].startswith("QLinear") for o in profile["onnxruntime/fp32"]["by_op_type"])


def test_markdown_written(result):
    table = result[1].with_suffix(".md").read_text()
    assert table.startswith("| backend | precision |") and "onnxruntime | int8" in table


def test_flop_counts_are_exact():
    lstm = torch.nn.LSTM(24, 8, batch_first=True, bidirectional=True)
    total, per_op, missing = flops.count_flops(lstm, torch.randn(1, 10, 24))
    assert total == 2 * 2 * 10 * 32 * (24 + 8) and missing == []
    conv = torch.nn.Conv1d(6, 4, 3)
    assert flops.count_flops(conv, torch.randn(1, 6, 20))[0] == 2 * 6 * 4 * 3 * 18
    q = torch.randn(1, 2, 5, 8)
    attention = flops.count_flops(torch.nn.functional.scaled_dot_product_attention, q, q, q)[0]
    assert attention == 2 * 2 * 5 * 5 * 16


def test_matmul_rate_per_precision():
    rates = measure(threads=1, size=128, repeats=2)
    assert set(rates) == {"fp32", "bf16", "int8"}
    assert all(r["best"] > 0 for r in rates.values())


def test_unknown_backend_is_rejected():
    with pytest.raises(rtf.RtfError, match="unknown backend"):
        rtf.parse_backends("eager,tensorrt")


RTF_ERRORS = [(["--sentences", "bogus"], "--sentences"), (["--sentences", ","], "--sentences"),
              (["--backends", "nonsense"], "unknown backend"), (["--backends", ","], "names no backend"),
              (["--backends", "onnxruntime,eager,onnxruntime:fp32"], "onnxruntime:fp32 twice"),
              (["--threads", "0"], "--threads must be at least 1"), (["--repeats", "0"], "--repeats"),
              (["--warmup", "-1"], "--warmup must be at least 0"), (["--upstream", "/nonexistent"], "no models.py"),
              (["--speed", "0"], "speed must be"), (["--speed", "nan"], "speed must be"),
              (["--speed", "-1"], "at least 0.25"), (["--speed", "fast"], "'auto' or a number"),
              (["--json", "{tmp}"], "is a folder"), (["--json", "{tmp}/file.wav/x.json"], "is a file, not a folder"),
              (["--json", "{tmp}/r.md"], "would overwrite it"), (["--json", "{tmp}/shadow.json"], "is a folder")]


@pytest.mark.parametrize("args, fragment", RTF_ERRORS)
def test_rtf_refuses_bad_settings_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, args, fragment):
    (tmp_path / "file.wav").write_bytes(b"")
    (tmp_path / "shadow.md").mkdir()  # where the markdown copy of shadow.json would go

    def no_work(*_):
        raise AssertionError("the model was built before the settings were checked")

    monkeypatch.setattr(rtf, "export_model", no_work)
    argv = ["--random-init", str(REPO / "gin/model/tiny.gin"), "--no-flops",
            *(a.format(tmp=tmp_path) for a in args)]
    assert rtf.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtf.py: error: ") and err.count("\n") == 1 and fragment in err, err


def test_rtf_times_random_weights_at_speeds_above_the_runtimes_range():
    """Random-init models speak ~25 frames per token: they are timed at speed 5-10 on purpose."""
    rtf.check_speed(rtf.build_parser().parse_args(["--random-init", "x.gin", "--speed", "8"]))


@pytest.mark.parametrize("args", [["--backends", "torch"], ["--backends", "onnxruntime", "--speed", "auto"]])
def test_rtf_on_an_export_refuses_what_needs_the_torch_model(tmp_path, capsys, args):
    assert rtf.main(["--model", str(tmp_path / "nowhere"), *args]) == 2  # before the folder is read
    err = capsys.readouterr().err
    assert err.startswith("rtf.py: error: ") and "the torch model" in err and "nowhere" not in err


def test_train_memory_extrapolates_linearly_and_tells_what_fits():
    from styletts2.bench.train_memory import extrapolate, table

    measured = {2: 3.0, 4: 5.0}  # 1 GB of weights and optimiser state, 1 GB per utterance
    assert extrapolate(measured, 8) == pytest.approx(9.0)
    assert extrapolate(measured, 4) == 5.0
    lines = table({"stage2 joint (SLM)": measured, "stage1": {2: 10.0, 4: 20.0}}, 8).splitlines()
    assert lines[0].split("|")[1:-1] == [" phase ", " batch 2 (measured) ", " batch 4 (measured) ",
                                          " batch 8 (extrapolated) ", " fits 16 GB ", " fits 24 GB ",
                                          " fits 40 GB ", " fits 80 GB "]
    assert lines[2] == "| stage2 joint (SLM) | 3.00 | 5.00 | 9.00 | yes | yes | yes | yes |"
    assert lines[3] == "| stage1 | 10.00 | 20.00 | 40.00 | no | no | yes | yes |"
    # The SLM step ran at one batch only: its row has one point, and nothing is extrapolated from it.
    assert extrapolate({4: 5.0}, 8) is None
    split = table({"stage2 joint (no SLM step)": {2: 3.0}, "stage2 joint (SLM)": {4: 5.0}}, 8).splitlines()
    assert split[2] == "| stage2 joint (no SLM step) | 3.00 | - | - | - | - | - | - |"


@pytest.mark.usefixtures("one_thread")  # at 2 threads beside the other worker: 90 s in a full run, 3 s alone
def test_train_memory_writes_its_figures_with_the_machine(tmp_path):
    from styletts2.bench.train_memory import main

    out = tmp_path / "memory.json"
    assert main(["--phases", "stage2", "--batch_size", "1", "--max_len", "80", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["settings"]["phases"] == "stage2" and record["machine"]["cpu"]
    assert set(record["peak_gb"]) == {"stage2"} and 0 < record["peak_gb"]["stage2"]["1"] < 2


def test_upstream_backend_errors_name_the_cause(tmp_path):
    """`--upstream` must point at an upstream checkout; a worker that cannot start reports its own
    error output (here: no upstream code at the path) instead of hanging or a bare EOFError."""
    from styletts2.bench.backends import UpstreamError, UpstreamExecutor

    with pytest.raises(rtf.RtfError, match="not an upstream StyleTTS2 checkout"):
        rtf.main(["--random-init", "gin/model/tiny.gin", "--upstream", str(tmp_path), "--no-flops", "--debug"])
    (tmp_path / "models.py").write_text("raise ImportError('this checkout is broken')\n")
    weights = tmp_path / "weights.pth"
    with pytest.raises(UpstreamError, match="exited .* during start; its output ends:[\\s\\S]*this checkout is broken"):
        UpstreamExecutor(tmp_path, tmp_path / "config.yml", weights, steps=5)
