"""Read upstream's YAML configs (`Configs/config.yml`, the `config.yml` shipped with released
checkpoints) as gin bindings, so an upstream checkpoint loads with the config it came with:

    python -m styletts2.synthesize --checkpoint epoch_2nd_00100.pth --config config.yml "Hello."

Only `model_params` matters for building the model (its `diffusion.dist.sigma_data` is the value
upstream's training wrote back).
"""
from __future__ import annotations

from pathlib import Path

import yaml

BASE_GIN = "gin/model/common.gin"
_DECODERS = {"istftnet": "ISTFTNetDecoder", "hifigan": "HiFiGANDecoder"}


def is_upstream_config(path: str | Path) -> bool:
    return str(path).endswith((".yml", ".yaml"))


def _binding(name: str, value) -> str:
    return f"{name} = {value!r}"


def bindings_from_yaml(path: str | Path) -> list[str]:
    """gin bindings (to apply on top of gin/model/common.gin) for an upstream config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
        params = config["model_params"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an upstream StyleTTS2 config with model_params ({exc})") from exc
    decoder = dict(params["decoder"])
    decoder_type = decoder.pop("type")
    if decoder_type not in _DECODERS:
        raise ValueError(f"{path}: unknown decoder type {decoder_type!r}; expected one of {sorted(_DECODERS)}")
    cls = _DECODERS[decoder_type]
    macros = {"HIDDEN_DIM": "hidden_dim", "STYLE_DIM": "style_dim", "N_LAYER": "n_layer", "DIM_IN": "dim_in",
              "MAX_DUR": "max_dur", "DROPOUT": "dropout", "N_TOKEN": "n_token", "N_MELS": "n_mels"}
    bindings = [_binding(macro, params[key]) for macro, key in macros.items() if key in params]
    bindings += [_binding("StyleTTS2.multispeaker", bool(params.get("multispeaker", False))),
                 f"StyleTTS2.decoder = @{cls}",
                 f"{cls}.dim_in = %HIDDEN_DIM", f"{cls}.style_dim = %STYLE_DIM", f"{cls}.dim_out = %N_MELS"]
    bindings += [_binding(f"{cls}.{key}", value) for key, value in decoder.items()]
    slm = params.get("slm", {})
    for ours, theirs in (("slm_hidden", "hidden"), ("slm_layers", "nlayers"), ("initial_channel", "initial_channel")):
        if theirs in slm:
            bindings.append(_binding(f"WavLMDiscriminator.{ours}", slm[theirs]))
    diffusion = params.get("diffusion", {})
    if "embedding_mask_proba" in diffusion:
        bindings.append(_binding("build_style_diffusion.embedding_mask_proba", diffusion["embedding_mask_proba"]))
    bindings += [_binding(f"build_style_diffusion.{k}", v) for k, v in diffusion.get("transformer", {}).items()]
    dist = diffusion.get("dist", {})
    for ours, theirs in (("sigma_data", "sigma_data"), ("dist_mean", "mean"), ("dist_std", "std")):
        if theirs in dist:
            bindings.append(_binding(f"build_style_diffusion.{ours}", float(dist[theirs])))
    return bindings


def split_configs(configs) -> tuple[list[str], list[str]]:
    """Separate gin files from upstream YAML configs; YAML becomes bindings on top of the base gin."""
    gin_files, bindings = [], []
    for config in configs:
        if is_upstream_config(config):
            if BASE_GIN not in gin_files:
                gin_files.insert(0, BASE_GIN)
            bindings += bindings_from_yaml(config)
        else:
            gin_files.append(str(config))
    return gin_files, bindings
