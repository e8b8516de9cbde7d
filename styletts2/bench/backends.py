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
  (`int8_decoder`, styletts2/export/quantize.py), the other graphs fp32 (same reason as bf16);
- upstream fp32: upstream's own inference code, from a checkout, in a worker process
  (`UpstreamExecutor`, `upstream_worker.py`), on the same weights.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from styletts2.graphs import DecoderGraph
from styletts2.errors import UserError
from styletts2.runtime.executor import Executor, OnnxExecutor, graph_input_names
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
    """'int8' or 'fp16' for an export made with `export/to_onnx.py --int8-decoder` or `--fp16`, else 'fp32'."""
    record = config.raw.get("precision", {}).get("decoder", "fp32")
    text = record if isinstance(record, str) else str(record.get("decoder", ""))
    return next((precision for precision in ("int8", "fp16") if precision in text), "fp32")


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


COMPONENT_OF = {"diffusion_sampler_unguided": "diffusion_sampler"}  # the benchmark's components by graph


def upstream_backend(model: nn.Module, args, steps: int, weights: Path) -> UpstreamExecutor:
    """`model`'s weights saved in upstream's layout, run by upstream's code from `args.upstream`."""
    from styletts2.checkpoint import atomic_save, make_checkpoint

    atomic_save(make_checkpoint(model.nets), weights)
    config = Path(args.upstream_config or Path(args.upstream) / "Configs" / "config.yml")
    return UpstreamExecutor(Path(args.upstream), config, weights, steps, args.threads, args.upstream_python)


class UpstreamError(UserError, RuntimeError):
    """The upstream worker could not start or failed; the message carries its error output."""


class UpstreamExecutor(Executor):
    """Upstream's inference code from a checkout (`upstream_worker.py`), one graph per request, in a
    process of its own: upstream's imports (its torchaudio stand-in, its `models`, `Modules`) never
    meet this process's. `last_seconds` is the last graph's compute time measured in the worker,
    without the pipe, and `component_seconds` the last per benchmark component: what the benchmark
    counts. `peak_rss_mb` is the worker's own peak memory.

    upstream: the checkout; config: the config.yml the weights were built from; weights: a
    checkpoint in upstream's layout; python: the interpreter that has upstream's requirements."""

    name = "upstream"

    def __init__(self, upstream: Path, config: Path, weights: Path, steps: int, threads: int | None = None,
                 python: str = sys.executable):
        # the worker runs from the repository root
        upstream, config, weights = Path(upstream).resolve(), Path(config).resolve(), Path(weights).resolve()
        command = [python, "-m", "styletts2.bench.upstream_worker", "--upstream", str(upstream), "--config",
                   str(config), "--weights", str(weights), "--steps", str(steps)]
        if threads:
            command += ["--threads", str(threads)]
        self._errors = open(Path(weights).with_suffix(".worker.log"), "w+b")
        # upstream's modules import each other as top-level packages: the checkout goes on PYTHONPATH
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(upstream),
                                                                          os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._errors, cwd=Path(__file__).resolve().parents[2], env=env)
        self.multispeaker = bool(self._reply("start")["multispeaker"])
        self.last_seconds, self.peak_rss_mb, self.component_seconds = 0.0, 0.0, {}

    def _reply(self, doing: str):
        try:
            reply = pickle.load(self._process.stdout)
        except EOFError:
            self._process.wait()
            self._errors.seek(0)
            tail = self._errors.read().decode(errors="replace")[-3000:]
            hint = (" (upstream's model code needs `pip install munch einops einops-exts`)"
                    if "No module named" in tail else "")
            raise UpstreamError(f"the upstream worker exited ({self._process.returncode}) during {doing}{hint}; "
                                f"its output ends:\n{tail}") from None
        if doing == "start":
            if reply[0] != "ready":
                raise UpstreamError(f"the upstream worker answered {reply!r} instead of starting")
            return reply[1]
        return reply

    def has_graph(self, graph: str) -> bool:
        return graph in ("text_encoder", "diffusion_sampler", "diffusion_sampler_unguided", "decoder")

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = graph_input_names(graph, self.multispeaker)
        pickle.dump((graph, {name: np.asarray(feeds[name]) for name in names}), self._process.stdin)
        self._process.stdin.flush()
        outputs, self.last_seconds, self.peak_rss_mb = self._reply(f"the {graph} graph")
        self.component_seconds[COMPONENT_OF.get(graph, graph)] = self.last_seconds
        return outputs

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                pickle.dump(None, self._process.stdin)
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
        self._errors.close()
