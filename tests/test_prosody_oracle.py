"""bench/prosody_oracle.py (styletts2/bench/prosody_oracle.py): the five decodings of a clip's text,
each with its own durations / F0 / energy, their framing, the table and the errors before any work."""
import numpy as np
import pytest
import torch

from conftest import build_tiny, voice_like
from styletts2.audio.mel import n_mel_frames
from styletts2.bench.prosody_oracle import (ORACLE_MODULES, VARIANTS, aligner_durations, decode_variants,
                                            edge_padding, main, table, training_inputs)
from styletts2.data.dataset import EDGE_PADDING
from styletts2.model import INFERENCE_MODULES

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLES_PER_FRAME = 600  # an alignment frame: 2 mel frames of 300 samples


@pytest.fixture(scope="module")
def model():
    model = build_tiny(modules=tuple(INFERENCE_MODULES) + ORACLE_MODULES)
    # Random style encoders' spectral norms are unconverged (styles of 1e20, NaN audio) until their
    # power iterations run, as they do in training mode.
    mel = torch.randn(1, 1, 80, 192)
    with torch.no_grad():
        for encoder in (model.style_encoder, model.predictor_encoder):
            encoder.train()
            for _ in range(30):
                encoder(mel)
            encoder.eval()
    return model


def test_inputs_are_framed_as_training_data():
    wave = voice_like(1.0)
    tokens, mel = training_inputs([5, 6, 7], wave)
    assert tokens.tolist() == [[0, 5, 6, 7, 0]]
    assert mel.shape[:2] == (1, 80) and mel.shape[-1] == n_mel_frames(wave.size + 2 * EDGE_PADDING) // 2 * 2
    assert float(mel[0, :, 0].mean()) < float(mel[0, :, mel.shape[-1] // 2].mean())  # silence in front
    assert training_inputs([5], wave, padding=0)[1].shape[-1] == n_mel_frames(wave.size) // 2 * 2


def test_edge_padding_is_the_training_runs():
    assert edge_padding("Trainer.epochs = 3\nSpeechDataset.edge_padding = 2400\n") == 2400
    assert edge_padding("Trainer.epochs = 3\n") == edge_padding(None) == EDGE_PADDING == 5000


def test_each_variant_decodes_with_its_own_durations_and_prosody(model):
    tokens, mel = training_inputs(list(range(10, 30)), voice_like(1.5))
    waves = decode_variants(model, tokens, mel, seed=3)
    assert list(waves) == list(VARIANTS) and all(np.isfinite(w).all() for w in waves.values())
    trim = model.decoder.tail_trim
    aligned = aligner_durations(model, tokens, mel)
    assert int(aligned.sum()) == mel.shape[-1] // 2 and aligned.shape == (tokens.shape[1],)
    for name in VARIANTS[1:]:  # the aligner's durations cover the whole clip
        assert waves[name].size == mel.shape[-1] // 2 * SAMPLES_PER_FRAME - trim
    # F0 and energy each change the decoding, and the seed makes each one repeatable
    for a, b in (("aligner durations", "teacher F0"), ("aligner durations", "teacher energy"),
                 ("teacher F0", "teacher prosody"), ("teacher energy", "teacher prosody")):
        assert not np.allclose(waves[a], waves[b], atol=1e-4), (a, b)
    again = decode_variants(model, tokens, mel, seed=3)
    assert all(np.array_equal(waves[n], again[n]) for n in VARIANTS)
    assert not np.array_equal(waves["predicted"], decode_variants(model, tokens, mel, seed=4)["predicted"])


def test_reconstruction_only_decodes_that_row_as_the_full_run_does(model):
    from styletts2.bench.prosody_oracle import RECONSTRUCTION

    tokens, mel = training_inputs(list(range(10, 30)), voice_like(1.5))
    full = decode_variants(model, tokens, mel, seed=3)
    alone = decode_variants(model, tokens, mel, seed=3, variants=RECONSTRUCTION)
    assert list(alone) == ["teacher prosody"]
    assert np.array_equal(alone["teacher prosody"], full["teacher prosody"])


def test_table_gives_means_spreads_and_the_difference_from_predicted():
    rows = [{"variant": v, "seed": s, "per_text": p + 0.1 * s, "per": p, "dnsmos_ovrl": 2.0}
            for s in (0, 1) for v, p in (("predicted", 0.4), ("teacher prosody", 0.3))]
    lines = table(rows).splitlines()
    assert lines[2] == "| predicted | 0.450 ± 0.071 | 0.400 ± 0.000 | 2.000 ± 0.000 | +0.000 |"
    assert lines[3] == "| teacher prosody | 0.350 ± 0.071 | 0.300 ± 0.000 | 2.000 ± 0.000 | -0.100 |"


def test_errors_come_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "none.pth"), "--teacher", str(tmp_path)])
    assert "no checkpoint" in capsys.readouterr().err
    checkpoint = tmp_path / "c.pth"
    torch.save({}, checkpoint)
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(checkpoint), "--teacher", str(tmp_path)])
    assert "no teacher clip" in capsys.readouterr().err


def test_a_stage1_checkpoint_is_refused_in_one_line_that_names_reconstruction_only(tmp_path, capsys):
    for i in range(12):
        (tmp_path / f"heldout_{i:02d}.wav").touch()  # only their presence is checked before the model
    checkpoint = tmp_path / "stage1.pth"
    torch.save({"net": {}, "gin_config": "Trainer.stage = @Stage1()\n"}, checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(checkpoint), "--teacher", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Stage1 checkpoint" in err and "--reconstruction-only" in err


def test_report_prints_the_table_and_writes_it_with_its_command(tmp_path, capsys):
    import argparse

    from styletts2.bench.prosody_oracle import write_results
    from styletts2.bench.seed_rows import report

    rows = [{"variant": "predicted", "seed": 0, "per_text": 0.4, "per": 0.3, "dnsmos_ovrl": 2.0}]
    args = argparse.Namespace(json=tmp_path / "o.json", threads=1)
    report("bench/prosody_oracle.py", ["--seeds", "1"], args, rows, table(rows), write_results)
    assert "| predicted | 0.400 ± 0.000 | 0.300 ± 0.000 |" in capsys.readouterr().out
    markdown = (tmp_path / "o.md").read_text()
    assert markdown.startswith("Command: `python bench/prosody_oracle.py --seeds 1`")
    assert "| predicted | 0 | 0.400 | 0.300 | 2.000 |" in markdown
