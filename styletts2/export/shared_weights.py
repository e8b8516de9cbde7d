"""One copy of each weight in an ONNX export folder.

The guided and the unguided diffusion samplers hold the same style transformer: written as two
self-contained graphs, its weights are stored twice (85 MiB of the LJSpeech folder). `share_weights`
moves every initializer of `MIN_BYTES` or more that several of the given graphs hold into one file
beside them (one copy each), and points each graph at it as ONNX external data (offset and length),
which onnxruntime reads next to the graph file. Weights only one graph holds stay inside it. The
values are the same bytes: the graphs compute exactly what they did.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

ALIGN = 64  # byte alignment of each tensor in the shared file
# Smaller tensors (biases, norms) stay in each graph: their bytes are negligible, and a graph that
# shares nothing else keeps to its own file (random-init norms are equal across unrelated graphs).
MIN_BYTES = 4096
SHARED_WEIGHTS = "shared_weights.bin"


def share_folder_weights(out_dir: Path, info: dict) -> None:
    """`share_weights` over every graph that model.json's `info` lists; each graph that reads the
    shared file gets `"weights": {"file": ...}` in its entry (the model card adds its sha256)."""
    files = {name: out_dir / entry["file"] for name, entry in info["graphs"].items()}
    saved, users = share_weights(list(files.values()), SHARED_WEIGHTS)
    for name, path in files.items():
        if path in users:
            info["graphs"][name]["weights"] = {"file": SHARED_WEIGHTS}
    if saved:
        print(f"  {saved / 2**20:.1f} MiB of weights that several graphs hold stored once ({SHARED_WEIGHTS})")


def _key(tensor) -> tuple[int, tuple[int, ...], int, str]:
    """Equal keys, equal tensors: element type, shape, size in bytes and a digest of the bytes."""
    return tensor.data_type, tuple(tensor.dims), len(tensor.raw_data), hashlib.sha256(tensor.raw_data).hexdigest()


def _with_raw_data(proto) -> None:
    """Initializers stored as typed fields (float_data, ...) rewritten as raw bytes, as external data is."""
    from onnx import numpy_helper

    for tensor in proto.graph.initializer:
        if not tensor.HasField("raw_data") and tensor.data_location != tensor.EXTERNAL:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))


def share_weights(paths: list[Path], file_name: str) -> tuple[int, list[Path]]:
    """Move the initializers (`MIN_BYTES` or more) that two or more of `paths` hold into `file_name`
    in their folder (one copy each), rewriting the graphs in place. Returns the bytes saved and the
    graphs that now read the file; writes nothing when no initializer is shared."""
    import onnx

    protos = {path: onnx.load(str(path)) for path in paths}
    keys: dict[Path, list[tuple]] = {}  # each initializer's key, hashed once
    holders: dict[tuple, set[Path]] = defaultdict(set)
    for path, proto in protos.items():
        _with_raw_data(proto)
        keys[path] = [_key(tensor) for tensor in proto.graph.initializer]
        for key in keys[path]:
            holders[key].add(path)
    shared = {key for key, where in holders.items() if len(where) > 1 and key[2] >= MIN_BYTES}
    if not shared:
        return 0, []
    offsets: dict[tuple, tuple[int, int]] = {}
    saved = 0
    with open(paths[0].parent / file_name, "wb") as out:
        for path, proto in protos.items():
            for tensor, key in zip(proto.graph.initializer, keys[path]):
                if key not in shared:
                    continue
                if key in offsets:
                    saved += len(tensor.raw_data)
                else:
                    out.write(b"\0" * (-out.tell() % ALIGN))
                    offsets[key] = (out.tell(), len(tensor.raw_data))
                    out.write(tensor.raw_data)
                _point_at(tensor, file_name, *offsets[key])
            onnx.save(proto, str(path))
    return saved, sorted({path for key in shared for path in holders[key]})


def _point_at(tensor, file_name: str, offset: int, length: int) -> None:
    tensor.ClearField("raw_data")
    tensor.data_location = tensor.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", file_name), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
