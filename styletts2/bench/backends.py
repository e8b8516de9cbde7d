"""The backends bench/rtf.py times: executors (`styletts2.runtime.executor`, `styletts2.torch_executor`)
that run an exported graph by name on numpy inputs and return numpy outputs by name, the same ones
the runtime's synthesizer and the parity report use, so every backend is fed the same arrays.

- torch fp32: upstream's exact path (`styletts2.fidelity`, what the torch synthesizer runs) on the
  unprepared model (`TorchExecutor.fidelity`);
- eager fp32: the export wrappers (styletts2/graphs.py) in torch eager, the graphs that were exported;
- eager bf16: the same, with the vocoder (the decoder graph's `decoder` module, ~95 % of the FLOPs)
  under CPU bf16 autocast; durations, F0 and energy stay fp32 so the audio keeps its length;
- torchscript fp32: the traced .pt files;
- onnxruntime fp32: the .onnx files;
- onnxruntime int8: the decoder graph with the vocoder's convolutions statically quantized to int8
  (`int8_decoder`, styletts2/export/quantize.py), the other graphs fp32 (same reason as bf16).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from styletts2.graphs import DecoderGraph
from styletts2.runtime.executor import OnnxExecutor
from styletts2.runtime.model_dir import ModelConfig, read_model_json
from styletts2.torch_executor import TorchExecutor


class Autocast(nn.Module):
    """Runs `module` under CPU autocast to `dtype`; returns float32."""

    def __init__(self, module: nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.module, self.dtype = module, dtype

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # e.g. the decoder's noise_shape: not computed, so not autocast
            return getattr(super().__getattr__("module"), name)

    def forward(self, *args, **kwargs):
        with torch.autocast("cpu", dtype=self.dtype):
            out = self.module(*args, **kwargs)
        return out.float()


def eager_backend(model: nn.Module, steps: int, precision: str = "fp32") -> TorchExecutor:
    executor = TorchExecutor.eager(model, steps)
    if precision == "bf16":
        decoder = DecoderGraph(model).eval()
        decoder.decoder = Autocast(model.decoder)  # this graph's own attribute: the model is untouched
        executor.graphs["decoder"], executor.precision = decoder, "bf16"
    elif precision != "fp32":
        raise ValueError(f"eager runs fp32 or bf16, not {precision}")
    return executor


def torchscript_backend(directory: Path) -> TorchExecutor:
    if not (directory / "model.json").is_file():
        raise FileNotFoundError(f"{directory} has no TorchScript export (export/to_torchscript.py)")
    return TorchExecutor.torchscript(read_model_json(directory))


def onnx_backend(config: ModelConfig, graphs: list[str], options, precision: str = "fp32",
                 files: dict[str, Path] | None = None) -> OnnxExecutor:
    """The export's graphs on onnxruntime's CPU provider, opened now (not inside the first timed run)."""
    executor = OnnxExecutor(config, "cpu", session_options=options, files=files, precision=precision)
    executor.load(graphs)
    return executor


def session_options(threads: int, optimization: str = "all", execution: str = "sequential",
                    spinning: bool = True, profile_prefix: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    options.execution_mode = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL,
                              "parallel": ort.ExecutionMode.ORT_PARALLEL}[execution]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def decoder_precision(config) -> str:
    """'int8' for an export made with `export/to_onnx.py --int8-decoder`, else 'fp32'."""
    return "fp32" if config.raw.get("precision", {}).get("decoder", "fp32") == "fp32" else "int8"


def int8_decoder(model_dir: Path, config, out_dir: Path, feeds: dict[str, dict[str, np.ndarray]]) -> Path:
    """out_dir/decoder.onnx: the export's decoder with the vocoder's convolutions in static int8
    (styletts2/export/quantize.py, what `--int8-decoder` exports), calibrated on the built-in calibration
    sentences (not the timed ones) at the timed sentences' median speed."""
    from styletts2.export.quantize import calibration_feeds, quantize_decoder

    speed = float(np.median([float(feed["speed"]) for feed in feeds.values()]))
    print(f"quantizing the vocoder to int8 (calibration speed {speed:.3g}) ...", flush=True)
    target = out_dir / "decoder.onnx"
    quantize_decoder(config.graph_file("decoder"), target, calibration_feeds(model_dir, speed=speed))
    return target
