"""fp16 exports for GPU providers (`export/to_onnx.py --fp16`): half the folder, fp16 arithmetic where
it is safe, the same graph contract (inputs and outputs stay float32, so the runtime is unchanged).

What stays float32, and why:
- in the decoder graph, everything but the vocoder's learned layers (`DECODER_FP16_SCOPES`): the
  prosody predictor (a duration that rounds the other way changes the audio's length, and F0 drives
  the harmonic phase, where a relative error of 1e-3 becomes a drift over a sentence), the harmonic
  source (its phase is accumulated in float64 by design) and the signal arithmetic around the layers
  (F0 upsampling, the inverse STFT's magnitude and phase). On the tiny random model the vocoder's
  layers alone in fp16 keep the waveform at 64 dB SNR against fp32; the generator's signal
  arithmetic in fp16 too brought it to 20 dB;
- the values between float32 nodes, the graph inputs included: onnxruntime's converter types every
  float tensor fp16, so it rounds each one and casts it back for the next float32 node. Here float32
  nodes read float32 values (`_skip_round_trips`);
- everything onnxruntime's converter keeps in float32 by default (ops without fp16 kernels).

onnxruntime's CPU provider runs these graphs too (slowly: most of its fp16 kernels are casts around
float32 ones), which is how the parity tests check them on a machine without a GPU.
"""
from __future__ import annotations

from pathlib import Path

# The vocoder's learned layers, the decoder graph's only fp16 nodes (node names carry the torch module
# path); ISTFTNet and HiFi-GAN decoders name them alike.
DECODER_FP16_SCOPES = tuple(f"/decoder/{scope}" for scope in (
    "encode", "decode", "asr_res", "F0_conv", "N_conv", "generator/resblocks", "generator/noise_res",
    "generator/noise_convs", "generator/ups", "generator/conv_post"))
DECODER_PRECISION = "fp16 vocoder layers; prosody predictor, harmonic source and signal arithmetic (iSTFT) fp32"


def decoder_fp32_nodes(graph) -> list[str]:
    """The decoder graph's node names that stay float32 (see the module docstring)."""
    return [node.name for node in graph.node if not node.name.startswith(DECODER_FP16_SCOPES)]


def _skip_round_trips(proto) -> None:
    """Undo the converter's rounding between float32 nodes. It types every float tensor fp16, so each
    float32 (blocked) node's output is cast to fp16 and cast back by the next float32 node, and the
    graph inputs likewise: a float32 chain would see every intermediate rounded. Each
    `Cast(to float)` of a `Cast(to fp16)` of a float32 tensor is replaced by that tensor; casts
    nothing reads any more are dropped."""
    from onnx import TensorProto

    def cast_to(node, element_type: int) -> bool:
        return node.op_type == "Cast" and any(a.name == "to" and a.i == element_type for a in node.attribute)

    outputs = {o.name for o in proto.graph.output}
    types = {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.input, *proto.graph.value_info]}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    # only casts of values known to be float32 (a float64 source value must not replace a float32 one)
    to_half = {node.output[0]: node.input[0] for node in proto.graph.node
               if cast_to(node, TensorProto.FLOAT16) and types.get(node.input[0]) == TensorProto.FLOAT}
    back = {}
    for node in proto.graph.node:
        if cast_to(node, TensorProto.FLOAT) and node.input[0] in to_half:
            if node.output[0] in outputs:  # a graph output keeps its name: an Identity of the float32 value
                node.op_type, node.input[0] = "Identity", to_half[node.input[0]]
                del node.attribute[:]
            else:
                back[node.output[0]] = to_half[node.input[0]]
    nodes = [node for node in proto.graph.node if node.output[0] not in back]
    for node in nodes:
        for index, name in enumerate(node.input):
            if name in back:
                node.input[index] = back[name]
    while True:  # a dropped cast may leave the cast before it unread
        read = {name for node in nodes for name in node.input} | outputs
        kept = [node for node in nodes if not (node.op_type == "Cast" and node.output[0] not in read)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def to_fp16(proto, graph_name: str):
    """The fp16 form of one exported graph (an onnx ModelProto with its weights loaded)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = decoder_fp32_nodes(proto.graph) if graph_name == "decoder" else None
    half = convert_float_to_float16(proto, keep_io_types=True, node_block_list=keep)
    _skip_round_trips(half)
    return half


def convert_folder(out_dir: Path, info: dict) -> None:
    """Every graph model.json's `info` lists, rewritten in place in fp16 (self-contained files: the
    caller shares the weights again afterwards); `info["precision"]` records what runs in fp16."""
    import onnx

    from styletts2.export.shared_weights import SHARED_WEIGHTS

    for name, entry in info["graphs"].items():
        path = out_dir / entry["file"]
        half = to_fp16(onnx.load(str(path)), name)  # external data (shared weights) loaded with it
        onnx.save(half, str(path))
        entry.pop("weights", None)
        info["precision"][name] = DECODER_PRECISION if name == "decoder" else "fp16"
    (out_dir / SHARED_WEIGHTS).unlink(missing_ok=True)
