"""The StyleTTS2 composition: upstream's `build_model`, configured by gin.

Module names and state-dict keys are upstream's, so its checkpoints load key for key
(`styletts2.checkpoint`). `python -m styletts2.model --gin gin/model/ljspeech.gin --manifest` prints
the built model's state-dict manifest in the reference files' format.
"""
from __future__ import annotations

import argparse
import re
import sys
import tokenize
from collections.abc import Iterable

import gin
from torch import nn

from .manifest import format_manifest, manifest_rows
from .modules.aligner import ASRCNN
from .modules.diffusion.style_diffusion import build_style_diffusion
from .modules.hifigan import HiFiGANDecoder  # noqa: F401  (registers @HiFiGANDecoder with gin)
from .modules.istftnet import ISTFTNetDecoder  # noqa: F401  (registers @ISTFTNetDecoder with gin)
from .modules.discriminators import MultiPeriodDiscriminator, MultiResSpecDiscriminator, WavLMDiscriminator
from .modules.norms import count_parameters
from .modules.pitch import JDCNet
from .modules.plbert import PLBert
from .modules.prosody_predictor import ProsodyPredictor
from .modules.style_encoder import StyleEncoder
from .modules.text_encoder import TextEncoder

# Upstream's order of `build_model`'s Munch, which is also the order of its checkpoints' 'net'.
MODULE_NAMES = ("bert", "bert_encoder", "predictor", "decoder", "text_encoder", "predictor_encoder",
                "style_encoder", "diffusion", "text_aligner", "pitch_extractor", "mpd", "msd", "wd")
# What synthesis needs; the aligner, pitch extractor and discriminators only serve training.
INFERENCE_MODULES = MODULE_NAMES[:8]
TRAINING_ONLY_MODULES = MODULE_NAMES[8:]


@gin.configurable
class StyleTTS2(nn.Module):
    """All networks of StyleTTS2 as named children (upstream's names).

    decoder: a decoder class bound in gin (`@ISTFTNetDecoder` or `@HiFiGANDecoder`).
    modules: which networks to build; `INFERENCE_MODULES` skips the ~80M training-only parameters.
    The sub-networks take their sizes from their own gin bindings (see gin/model/*.gin).
    """

    def __init__(self, decoder=gin.REQUIRED, multispeaker: bool = False, hidden_dim: int = 512,
                 sample_rate: int = 24000, modules: Iterable[str] = MODULE_NAMES):
        super().__init__()
        modules = tuple(modules)
        unknown = set(modules) - set(MODULE_NAMES)
        if unknown:
            raise ValueError(f"unknown module name(s) {sorted(unknown)}; choose from {MODULE_NAMES}")
        self.multispeaker = multispeaker
        self.sample_rate = sample_rate
        builders = {
            "bert": PLBert,
            "bert_encoder": lambda: nn.Linear(self.bert.config.hidden_size, hidden_dim),
            "predictor": ProsodyPredictor,
            "decoder": decoder,
            "text_encoder": TextEncoder,
            "predictor_encoder": StyleEncoder,
            "style_encoder": StyleEncoder,
            "diffusion": lambda: build_style_diffusion(multispeaker=multispeaker,
                                                       bert_hidden=self.bert.config.hidden_size,
                                                       bert_max_positions=self.bert.config.max_position_embeddings),
            "text_aligner": ASRCNN,
            "pitch_extractor": JDCNet,
            "mpd": MultiPeriodDiscriminator,
            "msd": MultiResSpecDiscriminator,
            "wd": WavLMDiscriminator,
        }
        if ("bert_encoder" in modules or "diffusion" in modules) and "bert" not in modules:
            raise ValueError("bert_encoder and diffusion are sized by bert: include 'bert'")
        for name in MODULE_NAMES:  # fixed order, whatever order `modules` has
            if name in modules:
                self.add_module(name, builders[name]())

    @property
    def nets(self) -> dict[str, nn.Module]:
        """{name: module} in upstream's order, like upstream's Munch."""
        return dict(self.named_children())

    @property
    def hop_length(self) -> int:
        """Waveform samples per alignment (text-frame) step: two mel frames of 300 samples."""
        return 600

    # Facts synthesis needs, in one place (inference, export wrappers, model card, parity report);
    # the decoder also shifts and trims for itself (`delay_aligned`, `trim_tail`).

    @property
    def decoder_type(self) -> str:
        """The decoder's kind, "istftnet" or "hifigan" (what `model.json` records)."""
        return self.decoder.decoder_type

    @property
    def tail_trim(self) -> int:
        """Samples cut from the end of every waveform (50 for the HiFi-GAN models)."""
        return self.decoder.tail_trim

    @property
    def style_dim(self) -> int:
        """Width of each half of a style vector [acoustic | prosodic] (the diffusion samples both)."""
        return self.diffusion.unet.channels // 2

    def manifest(self) -> list[tuple[str, str, str, str]]:
        return manifest_rows(self.nets)


def parse_gin(files: Iterable[str] = (), bindings: Iterable[str] = (), finalize: bool = False) -> None:
    """Parse gin files then bindings (later ones win); gin paths resolve relative to the repo root too.
    A binding or file gin cannot parse is a ValueError (a user error), not gin's SyntaxError."""
    from .gin_paths import add_search_paths, check_binding_syntax

    add_search_paths()
    files, bindings = list(files), list(bindings)
    for binding in bindings:
        check_binding_syntax(binding)
    try:
        gin.parse_config_files_and_bindings(files, bindings, finalize_config=finalize)
    except SyntaxError as err:  # a file's: gin's message names the file and line
        raise ValueError(f"gin syntax error: {err}") from err
    except tokenize.TokenError as err:  # an unclosed bracket at a file's end; gin names no file
        raise ValueError(f"gin syntax error in one of {', '.join(map(str, files))}: {err.args[0]}") from err


def build_model_from_config(config_files: Iterable[str] = (), bindings: Iterable[str] = (),
                            config_str: str | None = None, modules: Iterable[str] = MODULE_NAMES) -> StyleTTS2:
    """Clear gin, apply a config (files + bindings, or a saved operative config string), build."""
    gin.clear_config()
    if config_str is not None:
        # A training checkpoint's config also binds the trainer, stage and optimisers, which a
        # process that only builds the model has not imported: those bindings are not needed here.
        gin.parse_config(config_str, skip_unknown=True)
    parse_gin(config_files, bindings)
    return StyleTTS2(modules=modules)


# Training stages whose checkpoints hold untrained synthesis modules: what is missing in each.
PARTIAL_STAGES = {
    "Stage1": "stage 1 trains the acoustic modules only (its prosody predictor, style diffusion and "
              "PL-BERT are untrained)",
    "Stage0Aligner": "it holds the text aligner only",
    "Stage0Pitch": "it holds the pitch extractor only",
    "Stage0PLBert": "it holds PL-BERT only",
}
# Where a partial checkpoint goes next: a stage-1 one into stage 2, a stage-0 part into stage 1 (the
# aligner and pitch extractor) or stage 2 (PL-BERT), by path.
NEXT_STAGE = {
    "Stage1": "Train stage 2 from it (gin/stage2_*.gin, Stage2.first_stage_checkpoint)",
    "Stage0Aligner": "Train stage 1 with it (gin/stage1_*.gin, load_pretrained_parts.aligner_path)",
    "Stage0Pitch": "Train stage 1 with it (gin/stage1_*.gin, load_pretrained_parts.pitch_path)",
    "Stage0PLBert": "Train stage 2 with it (gin/stage2_*.gin, load_pretrained_parts.plbert_path)",
}


def trained_stage(gin_config: str | None) -> str | None:
    """The stage class a training checkpoint's operative config binds (`Trainer.stage = @Stage1`)."""
    match = re.search(r"^Trainer\.stage\s*=\s*@(?:[\w.]+/)?([\w.]+?)(?:\(\))?\s*$", gin_config or "", re.M)
    return match.group(1).rsplit(".", 1)[-1] if match else None


def load_model(checkpoint: str, config_files: Iterable[str] = (), bindings: Iterable[str] = (),
               modules: Iterable[str] = INFERENCE_MODULES, allow_partial: bool = False) -> tuple[StyleTTS2, dict]:
    """Rebuild a model from a checkpoint and load its weights strictly.

    Our checkpoints carry their operative gin config; upstream's do not, so give theirs a model
    config: `gin/model/ljspeech.gin` / `gin/model/libritts.gin`, or the upstream `config.yml` it
    came with. Configs given here override the saved one. Returns (model in eval mode, the
    checkpoint dict without its weights). A checkpoint of a stage that leaves synthesis modules
    untrained (stage 1, stage 0) is refused unless `allow_partial`.
    """
    from .checkpoint import CheckpointError, load_net_state, net_entry, torch_load
    from .upstream_config import split_configs

    state = torch_load(checkpoint)
    net = net_entry(state, checkpoint)
    saved_config = state.get("gin_config")
    stage = trained_stage(saved_config)
    if stage in PARTIAL_STAGES and not allow_partial:
        raise CheckpointError(f"{checkpoint} is a {stage} checkpoint: {PARTIAL_STAGES[stage]}, so it cannot "
                              f"synthesize. {NEXT_STAGE[stage]}, then use stage 2's checkpoint")
    config_files, yaml_bindings = split_configs(config_files)
    bindings = [*yaml_bindings, *bindings]
    if saved_config is None and not config_files:
        raise CheckpointError(f"{checkpoint} carries no gin config (an upstream checkpoint?): pass a model "
                              "config such as gin/model/ljspeech.gin, gin/model/libritts.gin or its upstream config.yml")
    model = build_model_from_config(config_files, bindings, saved_config, modules)
    load_net_state(model.nets, net)
    if "sigma_data" in state and hasattr(model, "diffusion"):
        model.diffusion.sigma_data = float(state["sigma_data"])
    meta = {k: v for k, v in state.items() if k not in ("net", "optimizer")}
    return model.eval(), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletts2.model", description=__doc__.split("\n")[0])
    parser.add_argument("--gin", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--manifest", action="store_true", help="print the state-dict manifest (TSV)")
    parser.add_argument("--params", action="store_true", help="print parameter counts per module")
    args = parser.parse_args(argv)
    if not args.gin:
        parser.error("give at least one --gin file, e.g. gin/model/ljspeech.gin")
    parse_gin(args.gin, args.gin_param)
    model = StyleTTS2()
    if args.manifest:
        sys.stdout.write(format_manifest(model.manifest()))
    if args.params or not args.manifest:
        for name, module in model.nets.items():
            print(f"{name}\t{count_parameters(module)}")
        print(f"total\t{count_parameters(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
