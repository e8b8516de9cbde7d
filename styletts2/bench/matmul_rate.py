"""This machine's measured matrix-product rate (GFLOP/s) per precision, at a fixed thread count.

    python bench/matmul_rate.py --threads 2

The rate is the best of several timed square products (size --size) after a warm-up: the most a
dense kernel gets out of these cores, the denominator of the compute floor in bench/rtf.py.
fp32: torch (MKL) and onnxruntime (MLAS) -- they differ a lot on AMD CPUs, where MKL takes a slow
path; bf16: torch (oneDNN, AVX-512 BF16); int8: onnxruntime's MatMulInteger (the kernel its dynamic
quantization uses), one multiply-add counted as 2 operations like the float rates.
The floor uses each precision's best library.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

PRECISIONS = ("fp32", "bf16", "int8")


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pick kernels and allocate
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def torch_rate(dtype: torch.dtype, size: int, repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    with torch.no_grad():
        seconds = _best_seconds(lambda: torch.mm(a, b), repeats)
    return 2 * size ** 3 / seconds / 1e9


def _ort_session(op: str, weight: np.ndarray, input_type: int, output_type: int, extra: list, threads: int):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    size = weight.shape[0]
    inputs = ["a", "b"] + [t.name for t in extra]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"])], op.lower(),
        [helper.make_tensor_value_info("a", input_type, [size, size])],
        [helper.make_tensor_value_info("y", output_type, [size, size])],
        [onnx.numpy_helper.from_array(weight, "b"), *extra])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ort_rate(precision: str, size: int, repeats: int, threads: int) -> float:
    """onnxruntime MatMul (fp32, MLAS) or MatMulInteger (uint8 activations x int8 weights -> int32, the
    kernel of onnxruntime's dynamic quantization)."""
    import onnx
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    if precision == "fp32":
        weight = rng.standard_normal((size, size), dtype=np.float32)
        session = _ort_session("MatMul", weight, TensorProto.FLOAT, TensorProto.FLOAT, [], threads)
        a = rng.standard_normal((size, size), dtype=np.float32)
    else:
        weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
        zero = onnx.numpy_helper.from_array(np.array(128, np.uint8), "a_zero")
        session = _ort_session("MatMulInteger", weight, TensorProto.UINT8, TensorProto.INT32, [zero], threads)
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    seconds = _best_seconds(lambda: session.run(None, {"a": a}), repeats)
    return 2 * size ** 3 / seconds / 1e9


def measure(threads: int, size: int = 1024, repeats: int = 10) -> dict[str, dict[str, float]]:
    """{precision: {library: GFLOP/s, "best": the highest}} with `threads` intra-op threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rates = {"fp32": {"torch": torch_rate(torch.float32, size, repeats)},
                 "bf16": {"torch": torch_rate(torch.bfloat16, size, repeats)}}
    finally:
        torch.set_num_threads(previous)
    rates["fp32"]["onnxruntime"] = ort_rate("fp32", size, repeats, threads)
    rates["int8"] = {"onnxruntime": ort_rate("int8", size, repeats, threads)}
    for by_library in rates.values():
        by_library["best"] = max(by_library.values())
    return {p: {k: round(v, 1) for k, v in r.items()} for p, r in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="square matrix size (default 1024)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    rates = measure(args.threads, args.size, args.repeats)
    print(json.dumps({"threads": args.threads, "size": args.size, "gflops": rates}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
