"""The export contract: which graphs an exported folder holds and each graph's inputs and outputs
(names, dtypes, shapes), with the model.json format version.

Export (`styletts2/export/common.py`) writes graphs to it and records it in model.json; the runtime
(`styletts2/runtime/model_dir.py`) checks a folder against it. No torch here: the runtime installs
without it.

Shapes are lists of sizes (int) and axis names (str): "batch", "tokens", "samples", "frames".
"""
from __future__ import annotations

FORMAT_VERSION = 2  # 2: the decoder takes tail_frames
MODEL_JSON = "model.json"

REQUIRED_GRAPHS = ("text_encoder", "diffusion_sampler", "decoder")
UNGUIDED_SAMPLER = "diffusion_sampler_unguided"  # optional: the sampler at embedding_scale 1, one pass per step
STYLE_ENCODER = "style_encoder"  # required for multispeaker models, optional otherwise
# The multispeaker samplers take the reference clip's style as one more input.
MULTISPEAKER_SAMPLER_INPUT = "reference_style"
DECODER_TYPES = ("istftnet", "hifigan")
# model.json fields an export also records in a graph's ONNX metadata (metadata_props): values the
# graph holds that no input or output shape shows (PL-BERT's position table, the sample rate of the
# decoder's harmonic source), so that the runtime tells a model.json edited by hand from its graphs.
GRAPH_METADATA = {"text_encoder": ("bert_max_positions",), "decoder": ("sample_rate",)}
# What every export from before GRAPH_METADATA wrote as bert_max_positions, whatever its graph's limit.
LEGACY_BERT_MAX_POSITIONS = 512


def _tensor(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def io_spec(*, style_width: int, channels: int, bert_hidden: int, steps: int, n_mels: int = 80,
            multispeaker: bool = False, style_encoder: bool = True) -> dict[str, dict[str, list[dict]]]:
    """{graph: {"inputs": [...], "outputs": [...]}} for a model of these sizes.

    style_width: the whole style vector [acoustic | prosodic]; channels: the text encoder's width
    (t_en, d_en); bert_hidden: PL-BERT's; steps: the diffusion sampler's (steps - 1 noises);
    style_encoder: whether the folder holds the style_encoder graph.
    """
    S2, C, E = style_width, channels, bert_hidden
    sampler_inputs = [_tensor("bert", "float32", ["batch", "tokens", E]),
                      _tensor("noise", "float32", ["batch", 1, S2]),
                      _tensor("step_noises", "float32", [steps - 1, "batch", 1, S2]),
                      _tensor("embedding_scale", "float32", [])]
    if multispeaker:
        sampler_inputs.append(_tensor(MULTISPEAKER_SAMPLER_INPUT, "float32", ["batch", S2]))
    style = [_tensor("style", "float32", ["batch", S2])]
    spec = {
        "text_encoder": {
            "inputs": [_tensor("tokens", "int64", ["batch", "tokens"]), _tensor("token_lengths", "int64", ["batch"])],
            "outputs": [_tensor("t_en", "float32", ["batch", C, "tokens"]),
                        _tensor("bert", "float32", ["batch", "tokens", E]),
                        _tensor("d_en", "float32", ["batch", C, "tokens"])]},
        "diffusion_sampler": {"inputs": sampler_inputs, "outputs": style},
        UNGUIDED_SAMPLER: {"inputs": [i for i in sampler_inputs if i["name"] != "embedding_scale"], "outputs": style},
        "decoder": {
            "inputs": [_tensor("t_en", "float32", ["batch", C, "tokens"]),
                       _tensor("d_en", "float32", ["batch", C, "tokens"]),
                       _tensor("style", "float32", ["batch", S2]), _tensor("speed", "float32", []),
                       _tensor("token_lengths", "int64", ["batch"]), _tensor("noise_seed", "int64", []),
                       _tensor("tail_frames", "int64", [])],
            "outputs": [_tensor("waveform", "float32", ["batch", "samples"]),
                        _tensor("durations", "int64", ["batch", "tokens"])]},
    }
    if style_encoder:
        spec[STYLE_ENCODER] = {"inputs": [_tensor("mel", "float32", ["batch", n_mels, "frames"])],
                               "outputs": [_tensor(MULTISPEAKER_SAMPLER_INPUT, "float32", ["batch", S2])]}
    return spec


# Names alone, what the runtime checks a session's graph against (single-speaker form: a multispeaker
# sampler adds MULTISPEAKER_SAMPLER_INPUT). Derived from io_spec, so the two cannot drift apart.
_NAMES_ONLY = io_spec(style_width=1, channels=1, bert_hidden=1, steps=2)
GRAPH_INPUTS = {graph: tuple(t["name"] for t in io["inputs"]) for graph, io in _NAMES_ONLY.items()}
GRAPH_OUTPUTS = {graph: tuple(t["name"] for t in io["outputs"]) for graph, io in _NAMES_ONLY.items()}
