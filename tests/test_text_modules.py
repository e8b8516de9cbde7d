"""Text-side modules: state-dict layout, padding behaviour, input checks, inference helpers and
PL-BERT checkpoint loading (parity with upstream is in test_parity_text_modules.py)."""
from pathlib import Path

import pytest
import torch

from styletts2.manifest import manifest_rows, read_manifest
from styletts2.modules.masks import length_to_mask
from styletts2.modules.plbert import PLBert, load_plbert_weights
from styletts2.modules.prosody_predictor import ProsodyPredictor
from styletts2.modules.style_encoder import MIN_FRAMES, StyleEncoder
from styletts2.modules.text_encoder import TextEncoder

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
TINY_BERT = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                 num_hidden_layers=2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def full_size_rows():
    """Manifest rows of our modules at the LJSpeech/LibriTTS size (the two configs agree here)."""
    encoder = StyleEncoder(dim_in=64, style_dim=128, max_conv_dim=512)
    modules = {
        "bert": PLBert(),
        "predictor": ProsodyPredictor(style_dim=128, d_hid=512, nlayers=3, max_dur=50, dropout=0.2),
        "text_encoder": TextEncoder(channels=512, kernel_size=5, depth=3, n_symbols=178),
        "predictor_encoder": encoder,
        "style_encoder": encoder,
    }
    return manifest_rows(modules)


@pytest.mark.parametrize("reference", ["upstream_ljspeech_state_dict.tsv", "upstream_libritts_state_dict.tsv"])
@pytest.mark.parametrize("module", ["bert", "predictor", "text_encoder", "predictor_encoder", "style_encoder"])
def test_state_dict_matches_reference_manifest(full_size_rows, reference, module):
    expected = [row for row in read_manifest(REFERENCE / reference) if row[0] == module]
    assert expected, f"no {module} rows in {reference}"
    assert [row for row in full_size_rows if row[0] == module] == expected


def test_length_to_mask_marks_padding():
    mask = length_to_mask(torch.tensor([3, 1]))
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False, False, False], [False, True, True]]
    assert length_to_mask(torch.tensor([2]), max_len=4).tolist() == [[False, False, True, True]]


def test_text_encoder_padded_row_equals_unpadded_run():
    encoder = TextEncoder(channels=16, kernel_size=5, depth=2, n_symbols=20).eval()
    lengths = torch.tensor([9, 5])
    mask = length_to_mask(lengths)
    tokens = torch.randint(1, 20, (2, 9)).masked_fill(mask, 0)
    with torch.no_grad():
        batch = encoder(tokens, lengths, mask)
        alone = encoder(tokens[1:, :5], lengths[1:], mask[1:, :5])
    assert batch.shape == (2, 16, 9)
    torch.testing.assert_close(batch[1:, :, :5], alone, rtol=0, atol=1e-6)
    assert torch.all(batch[1, :, 5:] == 0)


def test_style_encoder_minimum_frames_is_tight():
    encoder = StyleEncoder(dim_in=4, style_dim=8, max_conv_dim=16).eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 1, 80, MIN_FRAMES)).shape == (2, 8)
        assert MIN_FRAMES == 65
        # one frame fewer and the unpadded head conv has nothing left to read
        with pytest.raises(RuntimeError):
            encoder.shared(torch.randn(1, 1, 80, MIN_FRAMES - 1))
    with pytest.raises(ValueError, match=r"at least 65 mel frames, got 64"):
        encoder(torch.randn(1, 1, 80, 64))


@pytest.mark.parametrize("shape", [(1, 80, 100), (1, 2, 80, 100), (1, 1, 72, 100), (1, 1, 88, 100)])
def test_style_encoder_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="StyleEncoder"):
        StyleEncoder(dim_in=4, style_dim=8, max_conv_dim=16)(torch.randn(*shape))


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return ProsodyPredictor(style_dim=8, d_hid=16, nlayers=2, max_dur=10, dropout=0.2).eval()


def test_predictor_encode_zeroes_padding(predictor):
    lengths = torch.tensor([7, 4])
    mask = length_to_mask(lengths)
    with torch.no_grad():
        d = predictor.encode(torch.randn(2, 16, 7), torch.randn(2, 8), lengths, mask)
    assert d.shape == (2, 7, 16 + 8)
    assert torch.all(d[1, 4:] == 0) and torch.all(d[1, :4] != 0)


def test_durations_divide_by_speed_before_rounding(predictor):
    d = torch.randn(1, 6, 24)
    with torch.no_grad():
        expected = torch.sigmoid(predictor.duration_proj(predictor.lstm(d)[0])).sum(-1)
        for speed in (1.0, 1.7, 0.5):
            frames = predictor.durations(d, speed=speed)
            assert frames.dtype == torch.long
            assert torch.equal(frames, torch.round(expected / speed).clamp(min=1).long())
        # a very fast speed still gives every token a frame
        assert torch.all(predictor.durations(d, speed=1e3) == 1)


@pytest.mark.parametrize("initial", [None, 2.0, 7.5])
def test_initial_duration_sets_the_untrained_prediction(initial):
    torch.manual_seed(0)
    predictor = ProsodyPredictor(style_dim=8, d_hid=64, nlayers=1, max_dur=20, initial_duration=initial).eval()
    with torch.no_grad():
        mean = predictor.durations(torch.randn(4, 50, 72)).float().mean().item()
    # the default init predicts about max_dur / 2
    assert mean == pytest.approx(10.0 if initial is None else initial, rel=0.25)


@pytest.mark.parametrize("initial", [0.0, 20.0, -1.0])
def test_initial_duration_outside_the_bins_is_refused(initial):
    with pytest.raises(ValueError, match="initial_duration"):
        ProsodyPredictor(style_dim=8, d_hid=16, nlayers=1, max_dur=20, initial_duration=initial)


def test_durations_with_lengths_match_single_utterances(predictor):
    lengths = torch.tensor([7, 4])
    mask = length_to_mask(lengths)
    d_en, style = torch.randn(2, 16, 7), torch.randn(2, 8)
    with torch.no_grad():
        batch = predictor.durations(predictor.encode(d_en, style, lengths, mask), lengths=lengths)
        short = predictor.encode(d_en[1:, :, :4], style[1:], lengths[1:], mask[1:, :4])
        alone = predictor.durations(short)
    assert torch.equal(batch[1, :4], alone[0])
    assert torch.all(batch[1, 4:] == 0)


def test_prosody_curves_are_twice_the_frame_rate(predictor):
    with torch.no_grad():
        f0, n = predictor.prosody(torch.randn(2, 24, 13), torch.randn(2, 8))
    assert f0.shape == n.shape == (2, 26)


def test_plbert_has_no_dropout_like_upstream():
    bert = PLBert(**TINY_BERT, dropout=0.3)
    assert bert.config.hidden_dropout_prob == 0.0 and bert.config.attention_probs_dropout_prob == 0.0
    assert bert.config.dropout == 0.3  # recorded, as upstream's config carries it, but unused
    bert.train()
    ids = torch.randint(0, 178, (2, 9))
    attention = torch.ones(2, 9, dtype=torch.int)
    attention[1, 6:] = 0
    out = bert(ids, attention_mask=attention)
    assert out.shape == (2, 9, 32)
    assert torch.equal(out, bert(ids, attention_mask=attention))


def test_plbert_state_dict_keeps_position_ids_out():
    keys = PLBert(**TINY_BERT).state_dict().keys()
    assert len(keys) == 25 and "embeddings.position_ids" not in keys


def _pretraining_checkpoint(bert: PLBert, path: Path, extra: dict | None = None) -> Path:
    """A file laid out like PL-BERT's step_*.t7: MultiTaskModel weights under DataParallel."""
    net = {f"module.encoder.{k}": v for k, v in bert.state_dict().items()}
    net["module.encoder.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    net["module.mask_predictor.weight"] = torch.randn(178, 32)
    net["module.word_predictor.bias"] = torch.randn(100)
    net.update(extra or {})
    torch.save({"net": net, "step": 1000}, path)
    return path


def test_load_plbert_weights_roundtrip(tmp_path):
    source = PLBert(**TINY_BERT).eval()
    path = _pretraining_checkpoint(source, tmp_path / "step_1000.t7")
    target = load_plbert_weights(PLBert(**TINY_BERT), path).eval()
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    ids = torch.randint(0, 178, (1, 5))
    assert torch.equal(source(ids), target(ids))


@pytest.mark.parametrize("extra, message", [
    ({"module.encoder.pooler.extra": torch.zeros(1)}, "unexpected.*pooler.extra"),
    ({"module.decoder.weight": torch.zeros(1)}, "module.decoder.weight"),
])
def test_load_plbert_weights_rejects_foreign_keys(tmp_path, extra, message):
    path = _pretraining_checkpoint(PLBert(**TINY_BERT), tmp_path / "step_1.t7", extra)
    with pytest.raises(KeyError, match=message):
        load_plbert_weights(PLBert(**TINY_BERT), path)


def test_load_plbert_weights_reports_missing_keys(tmp_path):
    bert = PLBert(**TINY_BERT)
    path = tmp_path / "step_1.t7"
    net = {f"module.encoder.{k}": v for k, v in bert.state_dict().items() if not k.startswith("pooler.")}
    torch.save({"net": net}, path)
    with pytest.raises(KeyError, match="missing.*pooler.weight"):
        load_plbert_weights(PLBert(**TINY_BERT), path)
    torch.save({"model": net}, path)
    with pytest.raises(KeyError, match="under 'net'"):
        load_plbert_weights(PLBert(**TINY_BERT), path)
