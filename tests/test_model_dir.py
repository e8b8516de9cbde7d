"""model.json checked field by field against the graphs, graph hashes, and staged exports (issue 11).

The model folders are test_runtime's fake exports (tiny ONNX graphs with the contract's names and
shapes); the staging is exercised without a model.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_runtime import STEPS, S, make_fake_model_dir

from conftest import REPO
from styletts2.runtime import LogMel, ModelDirError, Synthesizer, read_model_json


def _edit(folder, **changes):
    info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        target = info
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value
    (folder / "model.json").write_text(json.dumps(info), encoding="utf-8")  # NaN is written as NaN
    return folder


def _load(folder):
    return Synthesizer(folder, providers="cpu", threads=1)


@pytest.mark.parametrize("key, value, message", [
    ("sample_rate", 0, "field 'sample_rate' must be a finite number above 0, got 0"),
    ("hop_length", -600, "field 'hop_length' must be a finite number above 0"),
    ("style_dim", 0, "field 'style_dim' must be a finite number above 0"),
    ("sigma_data", float("nan"), "field 'sigma_data' must be a finite number above 0, got nan"),
    ("diffusion_steps", 1000, r"field 'diffusion_steps' must be in \[2, 100\]"),
    ("decoder_type", "wavenet", "field 'decoder_type' must be one of"),
    ("defaults.speed", float("inf"), "field 'defaults': speed must be a finite number"),
    ("defaults.alpha", 2.0, r"field 'defaults': alpha must be a finite number in \[0, 1\]"),
    ("mel.std", 0.0, "mel: field 'std' must be a finite number above 0"),
    ("mel.mean", float("nan"), "mel: field 'mean' must be a finite number, got nan"),
    ("phonemizer.language", "en us!", "field 'phonemizer.language' is not an espeak-ng language code"),
    ("sample_rate", 10 ** 12, r"field 'sample_rate' must be in \[8000, 192000\] Hz"),
    ("mel.win_length", 4096, r"mel: field 'win_length' \(4096\) must not exceed n_fft \(2048\)"),
    ("mel.f_max", 1e9, r"0 <= f_min < f_max <= filterbank_sample_rate / 2 = 8000, got 0 and 1000000000"),
    ("mel.f_min", 9000, "0 <= f_min < f_max"),
    ("mel.n_fft", 2 ** 26, r"mel: field 'n_fft' must be in \[512, 8192\] \(upstream's 2048 within a factor 4\), "
                           "got 67108864"),  # its filterbank alone: 10 GiB
    ("mel.hop_length", 1, r"mel: field 'hop_length' must be in \[75, 1200\]"),
    ("mel.n_mels", 4000, r"mel: field 'n_mels' must be in \[20, 320\]"),
    ("mel.log_offset", 0, "mel: field 'log_offset' must be a finite number above 0, got 0"),
    ("mel.log_offset", -1e-5, "mel: field 'log_offset' must be a finite number above 0"),
    ("mel.std", 1e-300, r"mel: field 'std' must be in \[0.01, 100\] \(upstream's 4\), got 1e-300"),
    ("mel.mean", 1e300, r"mel: field 'mean' must be in \[-100, 100\]"),
    ("bert_max_positions", 1, r"field 'bert_max_positions' must be at least 2 \(the pad and one token\), got 1"),
    ("graphs.diffusion_sampler.weights", "x",
     "field 'graphs.diffusion_sampler.weights' must be an object with a 'file' field, got 'x'"),
])
def test_bad_fields_are_named_before_loading(tmp_path, key, value, message):
    folder = _edit(make_fake_model_dir(tmp_path / "m"), **{key: value})
    with pytest.raises(ModelDirError, match=message):
        read_model_json(folder)


def test_a_mel_hop_beyond_its_window_is_named(tmp_path):
    folder = _edit(make_fake_model_dir(tmp_path / "m"), **{"mel.win_length": 600, "mel.hop_length": 800})
    with pytest.raises(ModelDirError, match=r"mel: field 'hop_length' \(800\) must not exceed win_length \(600\)"):
        read_model_json(folder)


def test_mel_settings_at_their_bounds_make_a_front_end(tmp_path):
    """The bounds refuse edits, not models: settings at each end give finite log-mels."""
    for name, ends in (("low", {"n_fft": 512, "win_length": 300, "hop_length": 75, "n_mels": 20, "std": 0.01,
                                "mean": -100, "log_offset": 1e-12}),
                       ("high", {"n_fft": 8192, "win_length": 4800, "hop_length": 1200, "n_mels": 320, "std": 100,
                                 "mean": 100, "log_offset": 1.0})):
        folder = _edit(make_fake_model_dir(tmp_path / name), **{f"mel.{k}": v for k, v in ends.items()})
        config = read_model_json(folder)
        mel = LogMel(**config.mel)(np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1)
        assert mel.shape[0] == ends["n_mels"] and np.isfinite(mel).all()


def test_a_model_json_that_is_not_utf8_is_named(tmp_path):
    folder = make_fake_model_dir(tmp_path / "m")
    path = folder / "model.json"
    path.write_bytes(path.read_bytes().replace(b'"en-us"', b'"en-\xe9s"', 1))  # é as an editor's Latin-1 writes it
    with pytest.raises(ModelDirError, match=rf"^{re.escape(str(path))} is not UTF-8 text \(byte \d+: b'\\xe9'\)"):
        read_model_json(folder)


@pytest.mark.parametrize("key, value, field", [
    ("style_dim", S + 1, "style_dim"),  # the graphs' style vectors are 2 * S wide
    ("diffusion_steps", STEPS + 1, "diffusion_steps"),  # step_noises has STEPS - 1 rows
    ("mel.n_mels", 64, "mel.n_mels"),  # the style encoder reads 80 mel bins
])
def test_fields_that_disagree_with_the_graphs_are_named(tmp_path, key, value, field):
    folder = _edit(make_fake_model_dir(tmp_path / "m", multispeaker=True), **{key: value})
    read_model_json(folder)  # well-formed on its own: only the graphs tell
    with pytest.raises(ModelDirError, match=f"field '{field}' does not fit .*another export"):
        _load(folder)


def _record_in_graph(folder, graph, **values):
    """What an export writes into a graph's metadata_props (graph_contract.GRAPH_METADATA)."""
    proto = onnx.load(folder / f"{graph}.onnx")
    onnx.helper.set_model_props(proto, {key: str(value) for key, value in values.items()})
    onnx.save(proto, folder / f"{graph}.onnx")
    return folder


@pytest.mark.parametrize("graph, key, recorded, value", [
    ("text_encoder", "bert_max_positions", 512, 1000),  # a long sentence failed inside onnxruntime
    ("text_encoder", "bert_max_positions", 512, 100),
    ("decoder", "sample_rate", 24000, 16000),  # 24 kHz audio labelled 16 kHz plays 1.5x slow
])
def test_fields_that_disagree_with_what_the_graph_recorded_are_named(tmp_path, graph, key, recorded, value):
    folder = _record_in_graph(make_fake_model_dir(tmp_path / "m"), graph, **{key: recorded})
    _load(folder)  # as exported
    read_model_json(_edit(folder, **{key: value}))  # well-formed on its own: only the graph tells
    with pytest.raises(ModelDirError, match=f"field '{key}' is {value}, but {graph}.onnx was exported with {recorded}"):
        _load(folder)


def test_an_export_without_the_record_takes_no_more_positions_than_it_wrote(tmp_path):
    """Exports from before the graphs recorded their limit all wrote bert_max_positions 512."""
    folder = _edit(make_fake_model_dir(tmp_path / "m"), bert_max_positions=1000)
    with pytest.raises(ModelDirError, match="field 'bert_max_positions' is 1000, more than the 512 this export wrote"):
        _load(folder)
    assert _load(_edit(folder, bert_max_positions=300)).config.bert_max_positions == 300  # shorter windows: fine


def test_export_records_the_model_s_own_limit_and_rate_where_the_runtime_reads_them(tmp_path):
    """model.json's bert_max_positions is the model's PL-BERT table (it was 512 whatever the model's),
    and what the exporter stamps into a graph is what the runtime checks model.json against."""
    from styletts2.export.common import build_random_model
    from styletts2.export.model_card import graph_metadata, synthesis_fields
    from styletts2.export.to_onnx import stamp_io_shapes

    model = build_random_model(str(REPO / "gin/model/tiny.gin"), bindings=["PLBert.max_position_embeddings = 64"])
    fields = synthesis_fields(model, STEPS, None)
    assert fields["bert_max_positions"] == 64
    assert graph_metadata(model) == {"text_encoder": {"bert_max_positions": "64"},
                                     "decoder": {"sample_rate": str(fields["sample_rate"])}}
    folder = make_fake_model_dir(tmp_path / "m")
    for graph, values in graph_metadata(model).items():
        path = folder / f"{graph}.onnx"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        spec = {io: [{"name": t.name, "shape": t.shape} for t in getattr(session, f"get_{io}")()]
                for io in ("inputs", "outputs")}
        stamp_io_shapes(path, spec, values)
    assert _load(_edit(folder, bert_max_positions=64)).config.bert_max_positions == 64
    with pytest.raises(ModelDirError, match="field 'bert_max_positions' is 512, but text_encoder.onnx was exported "
                                            "with 64"):
        _load(_edit(folder, bert_max_positions=512))


def test_a_language_espeak_does_not_have_is_named(tmp_path):
    folder = _edit(make_fake_model_dir(tmp_path / "m"), **{"phonemizer.language": "xx-zz"})
    with pytest.raises(ModelDirError, match="field 'phonemizer.language': espeak-ng has no language 'xx-zz'"):
        _load(folder)


def test_graphs_must_match_their_recorded_hashes(tmp_path, caplog):
    good = make_fake_model_dir(tmp_path / "good", hashes=True)
    assert _load(good).synthesize("Hello.", seed=0).size > 0

    # a graph of "another export": the same contract, other bytes (as after a half-finished re-export)
    mixed = make_fake_model_dir(tmp_path / "mixed", hashes=True)
    decoder = onnx.load(mixed / "decoder.onnx")
    decoder.doc_string = "from another export"
    onnx.save(decoder, mixed / "decoder.onnx")
    read_model_json(mixed)  # well-formed: each file is hashed when its graph is opened
    with pytest.raises(ModelDirError, match=r"decoder.onnx does not match the sha256 recorded in .*model.json "
                                            r"\(graphs.decoder.sha256\).*export the model again"):
        _load(mixed)

    partial = make_fake_model_dir(tmp_path / "partial", hashes=True)
    info = json.loads((partial / "model.json").read_text())
    del info["graphs"]["text_encoder"]["sha256"]
    (partial / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelDirError, match="graphs.text_encoder has no sha256"):
        read_model_json(partial)

    old = make_fake_model_dir(tmp_path / "old")  # exported before hashes existed: loads, with a note
    with caplog.at_level("WARNING"):
        read_model_json(old)
    assert "records no graph hashes" in caplog.text



def test_a_graph_is_hashed_when_it_is_opened(tmp_path, monkeypatch):
    """Start-up hashes only the graphs a default call opens; the style encoder of a single-speaker
    model is checked on first use, and a file of another export is refused then."""
    from styletts2.runtime import model_dir

    folder = make_fake_model_dir(tmp_path / "m", hashes=True)
    encoder = onnx.load(folder / "style_encoder.onnx")
    encoder.doc_string = "from another export"
    onnx.save(encoder, folder / "style_encoder.onnx")
    hashed = []
    real_sha256 = model_dir.file_sha256
    monkeypatch.setattr(model_dir, "file_sha256", lambda path: hashed.append(Path(path).name) or real_sha256(path))
    synthesizer = _load(folder)
    assert sorted(hashed) == ["decoder.onnx", "diffusion_sampler.onnx", "text_encoder.onnx"]
    assert synthesizer.synthesize("Hello.", seed=0).size > 0
    with pytest.raises(ModelDirError, match=r"style_encoder.onnx does not match the sha256 recorded"):
        synthesizer.reference_style(0.1 * np.sin(np.arange(24000, dtype=np.float32) * 0.05))


@pytest.mark.parametrize("side_by_side", [True, False])
def test_graphs_open_side_by_side_or_one_by_one(tmp_path, monkeypatch, side_by_side):
    """`OnnxExecutor.load` opens its graphs in threads, or in order on the caller's (a lower peak)."""
    import threading

    from styletts2.runtime import executor as executor_module

    folder = make_fake_model_dir(tmp_path / "m")
    opened = []
    real_open = executor_module.open_graph

    def recording_open(config, name, *args, **kwargs):
        opened.append((name, threading.get_ident()))
        return real_open(config, name, *args, **kwargs)

    monkeypatch.setattr(executor_module, "open_graph", recording_open)
    runner = executor_module.OnnxExecutor(read_model_json(folder), "cpu", threads=1, side_by_side=side_by_side)
    runner.load(["text_encoder", "diffusion_sampler", "decoder"])
    assert sorted(runner.sessions) == ["decoder", "diffusion_sampler", "text_encoder"]
    on_caller = [thread == threading.get_ident() for _, thread in opened]
    if side_by_side:
        assert not any(on_caller)
    else:
        assert all(on_caller) and [name for name, _ in opened] == ["text_encoder", "diffusion_sampler", "decoder"]
    synthesizer = Synthesizer(folder, executor=runner)  # its own load finds them open
    assert len(opened) == 3 and synthesizer.synthesize("Hello.", seed=0).size > 0


def test_a_graph_opened_on_first_use_is_opened_once_by_threads_at_once(tmp_path, monkeypatch):
    """Four threads whose first call needs the same unopened graph share one session."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from styletts2.runtime import executor as executor_module

    folder = make_fake_model_dir(tmp_path / "m")
    opened, all_waiting = [], threading.Barrier(4)
    real_open = executor_module.open_graph

    def recording_open(config, name, *args, **kwargs):
        opened.append(name)
        return real_open(config, name, *args, **kwargs)

    monkeypatch.setattr(executor_module, "open_graph", recording_open)
    runner = executor_module.OnnxExecutor(read_model_json(folder), "cpu", threads=1)

    def first_call(_):
        all_waiting.wait()
        return runner.session("decoder")

    with ThreadPoolExecutor(max_workers=4) as pool:
        sessions = list(pool.map(first_call, range(4)))
    assert opened == ["decoder"] and all(session is sessions[0] for session in sessions)


def test_one_synthesizer_serves_threads_with_each_seed_its_audio(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    synthesizer = _load(make_fake_model_dir(tmp_path / "m"))
    texts = ["The kettle whistled.", "Numbers like 1999 are read aloud.", "She sells sea shells.", "A fourth one."]
    expected = [synthesizer.synthesize(text, seed=i) for i, text in enumerate(texts)]

    def calls(i):
        return [synthesizer.synthesize(texts[i], seed=i) for _ in range(25)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, waves in enumerate(pool.map(calls, range(4))):
            assert all(np.array_equal(wave, expected[i]) for wave in waves)


def test_close_releases_the_sessions_and_a_later_call_opens_them_again(tmp_path, monkeypatch):
    from styletts2.runtime import executor as executor_module

    executor_module.release_freed_memory()  # glibc's malloc_trim here; a no-op elsewhere
    trims = []
    monkeypatch.setattr(executor_module, "release_freed_memory", lambda: trims.append(1))
    with _load(make_fake_model_dir(tmp_path / "m")) as synthesizer:
        first = synthesizer.synthesize("Hello.", seed=0)
        assert "decoder" in synthesizer.executor.sessions
    assert synthesizer.executor.sessions == {} and trims == [1]
    np.testing.assert_array_equal(synthesizer.synthesize("Hello.", seed=0), first)
    assert "decoder" in synthesizer.executor.sessions


# Staged exports ----------------------------------------------------------------------------------------

def _siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir())


def test_staged_export_replaces_the_folder_only_when_done(tmp_path):
    from styletts2.export.common import ExportError, staged_export

    out = tmp_path / "exported"
    with staged_export(out) as staging:
        assert staging.parent == tmp_path and not out.exists()
        (staging / "model.json").write_text("{}")
        (staging / "decoder.onnx").write_text("first")
    assert (out / "decoder.onnx").read_text() == "first" and _siblings(out) == ["exported"]

    with pytest.raises(RuntimeError, match="stopped"):
        with staged_export(out) as staging:
            (staging / "decoder.onnx").write_text("second")
            raise RuntimeError("stopped half way")
    assert (out / "decoder.onnx").read_text() == "first" and _siblings(out) == ["exported"]

    with staged_export(out) as staging:
        (staging / "model.json").write_text("{}")
        (staging / "text_encoder.onnx").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "text_encoder.onnx"]  # replaced whole
    assert _siblings(out) == ["exported"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="holds files but no model.json"):
        with staged_export(other):
            pass
    assert (other / "mine.txt").read_text() == "keep"


def test_a_killed_export_leaves_the_old_folder_whole(tmp_path):
    from styletts2.export.common import staged_export

    out = tmp_path / "exported"
    with staged_export(out) as staging:
        (staging / "model.json").write_text("old")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from styletts2.export.common import staged_export
        with staged_export(Path({str(out)!r})) as staging:
            (staging / "model.json").write_text("new, half written")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert (out / "model.json").read_text() == "old"
    assert len(_siblings(out)) == 2  # the dead export's staging folder is left ...
    with staged_export(out) as staging:  # ... until the next export into the folder removes it
        (staging / "model.json").write_text("new")
    assert (out / "model.json").read_text() == "new" and _siblings(out) == ["exported"]


def test_export_onnx_writes_hashes_and_a_failed_re_export_leaves_the_old_folder(tmp_path, monkeypatch):
    """export_onnx through its staging folder, the tracing replaced by stand-in graph files (the real
    graphs are test_export's): a re-export that fails at its second graph leaves the previous export
    as it was; one that completes replaces it, with each graph's sha256 in model.json."""
    import hashlib

    from styletts2.export import to_onnx
    from styletts2.export.common import LoadedModel, build_random_model

    out = make_fake_model_dir(tmp_path / "exported", hashes=True)  # the previous export
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written = []

    def export_graph(graph, inputs, spec, path, opset):
        if fail and written:
            raise OSError(28, "No space left on device", str(path))
        written.append(path)
        path.write_bytes(f"graph {path.name}".encode())

    monkeypatch.setattr(to_onnx, "export_graph", export_graph)
    monkeypatch.setattr(to_onnx, "stamp_io_shapes", lambda path, spec, metadata=None: None)
    monkeypatch.setattr(to_onnx, "share_folder_weights", lambda out_dir, info: None)  # no real graphs to share
    loaded = LoadedModel(build_random_model(str(REPO / "gin/model/tiny.gin"), seed=0), "random-init:tiny", "")
    fail = True
    with pytest.raises(OSError, match="No space left"):
        to_onnx.export_onnx(loaded, out, 3, verify=False)
    assert written and written[0].parent != out  # the first graph went to the staging folder
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and _siblings(out) == ["exported"]
    _load(out)  # still whole: hashes and shapes agree

    fail, written[:] = False, []
    info = to_onnx.export_onnx(loaded, out, 3, verify=False)
    assert _siblings(out) == ["exported"]
    # the folder is the new export's alone: nothing of the previous one is left over
    assert {p.name for p in out.iterdir()} == {g["file"] for g in info["graphs"].values()} | {"model.json", "README.md"}
    saved = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert saved["graphs"] == info["graphs"]
    for name, entry in saved["graphs"].items():
        assert entry["sha256"] == hashlib.sha256(f"graph {name}.onnx".encode()).hexdigest()


def test_a_torchscript_export_given_to_the_runtime_is_named_with_how_to_run_it(tmp_path, capsys):
    from styletts2.runtime.__main__ import main as runtime_main

    folder = make_fake_model_dir(tmp_path / "ts")
    info = json.loads((folder / "model.json").read_text())
    for entry in info["graphs"].values():  # as export/to_torchscript.py writes them: .pt files
        (folder / entry["file"]).unlink()
        entry["file"] = entry["file"].replace(".onnx", ".pt")
        (folder / entry["file"]).write_bytes(b"PK\x03\x04 a TorchScript zip archive")
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelDirError, match=r"is a TorchScript export \(its model.json lists text_encoder.pt\)"):
        _load(folder)
    assert runtime_main(["-m", str(folder), "Hello.", "-o", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TorchExecutor.torchscript(read_model_json(DIR))" in err
    assert "Protobuf" not in err and not (tmp_path / "x.wav").exists()
