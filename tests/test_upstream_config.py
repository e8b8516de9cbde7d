"""Upstream YAML configs build the same model as our gin configs."""
import pytest

from conftest import REFERENCE, REPO
from styletts2.manifest import read_manifest
from styletts2.model import build_model_from_config
from styletts2.upstream_config import bindings_from_yaml, split_configs

# model_params of upstream's Configs/config.yml, with sigma_data as training writes it back.
LJSPEECH_YAML = """
model_params:
  multispeaker: false
  dim_in: 64
  hidden_dim: 512
  max_conv_dim: 512
  n_layer: 3
  n_mels: 80
  n_token: 178
  max_dur: 50
  style_dim: 128
  dropout: 0.2
  decoder:
      type: 'istftnet'
      resblock_kernel_sizes: [3,7,11]
      upsample_rates :  [10, 6]
      upsample_initial_channel: 512
      resblock_dilation_sizes: [[1,3,5], [1,3,5], [1,3,5]]
      upsample_kernel_sizes: [20, 12]
      gen_istft_n_fft: 20
      gen_istft_hop_size: 5
  slm:
      model: 'microsoft/wavlm-base-plus'
      sr: 16000
      hidden: 768
      nlayers: 13
      initial_channel: 64
  diffusion:
    embedding_mask_proba: 0.1
    transformer:
      num_layers: 3
      num_heads: 8
      head_features: 64
      multiplier: 2
    dist:
      sigma_data: 0.19926648961191362
      estimate_sigma_data: true
      mean: -3.0
      std: 1.0
"""


def test_upstream_yaml_builds_the_reference_model(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(LJSPEECH_YAML)
    files, bindings = split_configs([str(config)])
    model = build_model_from_config(files, bindings)
    rows = sorted(model.manifest())
    assert rows == sorted(read_manifest(str(REFERENCE / "upstream_ljspeech_state_dict.tsv")))
    assert model.diffusion.sigma_data == pytest.approx(0.19926648961191362)
    assert type(model.decoder).__name__ == "ISTFTNetDecoder"


def test_hifigan_and_bad_configs(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(LJSPEECH_YAML.replace("'istftnet'", "'hifigan'").replace("multispeaker: false",
                                                                               "multispeaker: true"))
    bindings = bindings_from_yaml(config)
    assert "StyleTTS2.decoder = @HiFiGANDecoder" in bindings and "StyleTTS2.multispeaker = True" in bindings
    config.write_text(LJSPEECH_YAML.replace("'istftnet'", "'wavenet'"))
    with pytest.raises(ValueError, match="unknown decoder type 'wavenet'"):
        bindings_from_yaml(config)
    config.write_text("log_dir: x\n")
    with pytest.raises(ValueError, match="model_params"):
        bindings_from_yaml(config)
    assert split_configs([str(REPO / "gin/model/tiny.gin")]) == ([str(REPO / "gin/model/tiny.gin")], [])
