"""8-bit weight storage (`export/to_onnx.py --int8-weights`): a quarter of the bytes, float32 arithmetic.

Each float32 weight of `MIN_ELEMENTS` or more is stored as int8 with one float32 scale per output
channel (symmetric, rounded to nearest: scale = max |w| / 127 over the channel), and the graph
computes `Cast(int8 -> float) * scale` in front of the layer that reads it. onnxruntime folds those
two constant nodes into a float32 weight when it opens the graph, so the layers run exactly as in a
float32 export, on weights rounded to 8 bits. (A DequantizeLinear node instead would stay in the
graph before a convolution and run on every call.)

What keeps float32 weights:
- the prosody predictor, every node of the decoder graph outside the vocoder (`/decoder/...`): a
  duration that rounds the other way changes the audio's length (the export checks that durations
  do not move);
- PL-BERT and its projection in the text encoder graph (`/bert...`): ALBERT applies its one shared
  layer 12 times, so its rounding grows; in 8 bits `d_en` came out at 34 dB SNR, and the predictor
  turned that into other F0 and energy (LJSpeech size, random weights: waveform 3.8 dB SNR, log-mel
  L1 0.37; the text encoder's own weights in 8 bits: 66 dB, 0.0004);
- every tensor below `MIN_ELEMENTS` (biases, norms, small projections: few bytes).
Weights that are already integers (the `--int8-decoder` vocoder's) are left as they are.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

MIN_ELEMENTS = 16384
# The decoder graph's vocoder nodes (node names carry the torch module path); the rest is the predictor.
VOCODER_SCOPE = "/decoder/"
BERT_SCOPE = "/bert"  # PL-BERT (/bert/) and its projection (/bert_encoder/) in the text encoder graph
# The axis of a weight that indexes output channels, by the op that reads it (default 0: Conv,
# ConvTranspose groups of 1 read input channels on axis 0, which quantizes as well).
CHANNEL_AXIS = {("MatMul", 1): -1, ("LSTM", 1): 1, ("LSTM", 2): 1, ("GRU", 1): 1, ("GRU", 2): 1}
DESCRIPTION = "per-channel symmetric, float32 arithmetic"


def quantize_weight(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales shaped to broadcast against them) with values * scales ~ weight."""
    axis = axis % weight.ndim
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    peak = np.abs(weight).max(axis=reduce, keepdims=True).astype(np.float32)
    scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    values = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
    return values, scale


def _readers(graph) -> dict[str, list[tuple[object, int]]]:
    """{tensor: [(node, input index)]} of the nodes that read it, looking through Identity nodes (the
    exporter reads a weight that several layers share through one Identity per layer)."""
    direct: dict[str, list[tuple[object, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            direct.setdefault(name, []).append((node, index))

    def through(name: str) -> list[tuple[object, int]]:
        found = []
        for node, index in direct.get(name, []):
            found += through(node.output[0]) if node.op_type == "Identity" else [(node, index)]
        return found

    return {name: through(name) for name in direct}


def keeps_float(graph_name: str) -> Callable[[object], bool]:
    """Whether a node of that graph keeps float32 weights (see the module docstring)."""
    if graph_name == "decoder":
        return lambda node: not node.name.startswith(VOCODER_SCOPE)
    if graph_name == "text_encoder":
        return lambda node: node.name.startswith(BERT_SCOPE)
    return lambda node: False


def store_int8(proto, keep_float: Callable[[object], bool] = lambda node: False) -> int:
    """Rewrite `proto` (an onnx ModelProto, weights loaded) in place; returns how many weights it stores
    in int8. A weight that any node with `keep_float(node)` reads stays float32."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    readers = _readers(graph)
    kept, added, count = [], [], 0
    for tensor in graph.initializer:
        uses = readers.get(tensor.name, [])
        size = int(np.prod(tensor.dims)) if tensor.dims else 1
        if (tensor.data_type != TensorProto.FLOAT or size < MIN_ELEMENTS or len(tensor.dims) < 2 or not uses
                or any(keep_float(node) for node, _ in uses)):
            kept.append(tensor)
            continue
        axes = {CHANNEL_AXIS.get((node.op_type, index), 0) for node, index in uses}
        values, scale = quantize_weight(numpy_helper.to_array(tensor), axes.pop() if len(axes) == 1 else 0)
        name = tensor.name
        kept += [numpy_helper.from_array(values, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale")]
        added += [helper.make_node("Cast", [f"{name}_int8"], [f"{name}_float"], to=TensorProto.FLOAT,
                                   name=f"{name}_int8_to_float"),
                  helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name], name=f"{name}_int8_scale")]
        count += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*added, *graph.node]  # the new nodes read initializers only: first is a topological order
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def store_folder_int8(out_dir: Path, info: dict) -> dict[str, int]:
    """Every graph model.json's `info` lists, rewritten in place with int8 weight storage
    (self-contained files: the caller shares the weights again afterwards). Returns the number of
    int8 weights per graph; `info["precision"]` records them."""
    import onnx

    from styletts2.export.shared_weights import SHARED_WEIGHTS

    counts = {}
    for name, entry in info["graphs"].items():
        path = out_dir / entry["file"]
        proto = onnx.load(str(path))  # external data (shared weights) loaded with it
        counts[name] = store_int8(proto, keeps_float(name))
        onnx.save(proto, str(path))
        entry.pop("weights", None)
        stored = f"{counts[name]} weights stored in 8 bits ({DESCRIPTION})"
        record = info["precision"].get(name, "fp32")
        if isinstance(record, dict):  # the int8 decoder's record
            record["weights"] = stored
        else:
            info["precision"][name] = f"{record}; {stored}"
    (out_dir / SHARED_WEIGHTS).unlink(missing_ok=True)
    return counts
