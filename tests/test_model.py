"""The composed model equals upstream's build_model: manifests row for row, parameter counts."""
import pytest

from conftest import REFERENCE, REPO
from styletts2.manifest import format_manifest, read_manifest
from styletts2.model import StyleTTS2, main, parse_gin
from styletts2.modules.norms import count_parameters

# From the reference notes (upstream's build_model, random init).
PARAMS = {"ljspeech": 187_045_995, "libritts": 191_468_193}


@pytest.mark.parametrize("config", ["ljspeech", "libritts"])
def test_manifest_and_parameter_count_equal_upstream(config, capsys):
    assert main(["--gin", str(REPO / f"gin/model/{config}.gin"), "--manifest"]) == 0
    printed = capsys.readouterr().out
    reference_file = REFERENCE / f"upstream_{config}_state_dict.tsv"
    reference = read_manifest(str(reference_file))
    lines = printed.splitlines()
    assert lines[0] == reference_file.read_text().splitlines()[0]
    rows = [tuple(line.split("\t")) for line in lines[1:]]
    assert len(rows) == len(reference)
    assert sorted(rows) == sorted(reference)


@pytest.mark.parametrize("config", ["ljspeech", "libritts"])
def test_parameter_count(config):
    parse_gin([str(REPO / f"gin/model/{config}.gin")])
    model = StyleTTS2()
    assert count_parameters(model) == PARAMS[config]
    assert format_manifest(model.manifest()).count("\n") == len(model.manifest()) + 1


def test_inference_subset_and_bad_names():
    parse_gin([str(REPO / "gin/model/tiny.gin")])
    model = StyleTTS2(modules=("bert", "bert_encoder", "text_encoder"))
    assert list(model.nets) == ["bert", "bert_encoder", "text_encoder"]
    with pytest.raises(ValueError, match="unknown module"):
        StyleTTS2(modules=("bert", "vocoder"))
    with pytest.raises(ValueError, match="include 'bert'"):
        StyleTTS2(modules=("diffusion",))


def test_cli_requires_a_config():
    with pytest.raises(SystemExit):
        main([])


@pytest.mark.parametrize("config, facts", [
    ("gin/model/tiny.gin", ("istftnet", 0, 0, 32)),
    ("gin/model/tiny_multispeaker.gin", ("hifigan", 1, 50, 32)),
])
def test_synthesis_facts_come_from_the_model(config, facts):
    """Decoder kind, alignment delay, tail trim and style width are the model's, read by every
    synthesis path (inference, export wrappers, model card, parity report)."""
    import torch
    parse_gin([config])
    model = StyleTTS2(modules=("bert", "diffusion", "decoder"))
    kind, delay, trim, style_dim = facts
    assert (model.decoder_type, model.decoder.alignment_delay, model.tail_trim) == (kind, delay, trim)
    assert model.style_dim == style_dim and 2 * model.style_dim == model.diffusion.unet.channels
    x = torch.arange(12.0).reshape(1, 2, 6)
    delayed = model.decoder.delay_aligned(x)
    assert delayed.shape == x.shape
    assert torch.equal(delayed, x if not delay else torch.cat([x[..., :1], x[..., :-1]], dim=-1))
    assert model.decoder.trim_tail(torch.zeros(3, 100)).shape == (3, 100 - trim)


def test_durations_round_half_to_even_and_are_at_least_one_frame():
    import torch
    from styletts2.modules.prosody_predictor import frames_per_token
    expected = torch.tensor([0.0, 0.2, 0.5, 1.5, 2.5, 2.51, 7.0])
    assert frames_per_token(expected).tolist() == [1, 1, 1, 2, 2, 3, 7]
    assert frames_per_token(expected).dtype == torch.long
