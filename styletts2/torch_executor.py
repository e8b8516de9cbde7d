"""The contract's graphs as torch modules, run by name like the onnxruntime executor
(`styletts2.runtime.executor`): numpy in, numpy out, so the runtime's synthesizer, the parity report
and the speed benchmark can swap one for the other.

- `TorchExecutor.eager(model, steps)`: the export wrappers (`styletts2.graphs`) in eager mode, on a
  model passed through `prepare_for_export`: the computation that the .onnx and .pt files hold;
- `TorchExecutor.float64(...)`: the same graphs in float64, the reference float32 backends are
  measured against (export/parity_report.py);
- `TorchExecutor.torchscript(config)`: an export's TorchScript files (export/to_torchscript.py);
- `TorchExecutor.fidelity(model, steps)`: upstream's exact float32 path (`styletts2.fidelity`) on a
  model as trained (NOT prepared for export), bit for bit upstream's notebooks; what
  `styletts2.inference.TorchSynthesizer` runs.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from .devices import resolve_device
from .fidelity import fidelity_graphs
from .graph_contract import GRAPH_OUTPUTS
from .graphs import build_graphs
from .runtime.executor import Executor, graph_input_names
from .runtime.model_dir import ModelConfig, ModelDirError, verify_graph_file


class TorchExecutor(Executor):
    """graphs: {graph name: module taking the contract's inputs positionally, in order}.
    multispeaker: whether the samplers take the reference style (the contract's last input).
    device: where the graphs' modules are (inputs go there, outputs come back to numpy)."""

    def __init__(self, graphs: Mapping[str, nn.Module], multispeaker: bool, name: str = "eager",
                 precision: str = "fp32", dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        self.graphs, self.multispeaker = dict(graphs), multispeaker
        self.name, self.precision, self.dtype = name, precision, dtype
        self.torch_device = torch.device(device)

    @classmethod
    def eager(cls, model: nn.Module, steps: int) -> TorchExecutor:
        """The export wrappers over `model`, which must have been passed through `prepare_for_export`."""
        return cls(build_graphs(model, steps), bool(model.multispeaker))

    @classmethod
    def float64(cls, graphs: Mapping[str, nn.Module], multispeaker: bool) -> TorchExecutor:
        """`graphs` copied to float64: float inputs are widened, float outputs rounded back to float32.
        One deep copy of the whole dict, so modules the graphs share (the diffusion model of both
        samplers) stay shared."""
        copied = {name: graph.double() for name, graph in copy.deepcopy(dict(graphs)).items()}
        return cls(copied, multispeaker, name="eager-fp64", precision="fp64", dtype=torch.float64)

    @classmethod
    def fidelity(cls, model: nn.Module, steps: int, device: str | torch.device | None = None) -> TorchExecutor:
        """Upstream's exact path over `model` (not prepared for export), moved to `device` (default:
        CUDA when available) and put in eval mode."""
        device = resolve_device(device)
        model.to(device).eval()
        return cls(fidelity_graphs(model, steps), bool(model.multispeaker), name="torch", device=device)

    @classmethod
    def torchscript(cls, config: ModelConfig) -> TorchExecutor:
        """The TorchScript files (.pt) of an export folder, as its model.json lists them."""
        graphs = {}
        for name in config.graphs:
            path = config.graph_file(name)
            if path.suffix != ".pt":
                raise ModelDirError(f"{path}: not a TorchScript file (export/to_torchscript.py writes .pt graphs)")
            verify_graph_file(config, name)
            graphs[name] = torch.jit.load(str(path), map_location="cpu").eval()
        return cls(graphs, config.multispeaker, name="torchscript")

    def has_graph(self, graph: str) -> bool:
        return graph in self.graphs

    def inputs(self, graph: str, feeds: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        """The graph's inputs from `feeds`, as tensors in the contract's order."""
        tensors = (torch.from_numpy(np.asarray(feeds[name])).to(self.torch_device)
                   for name in graph_input_names(graph, self.multispeaker))
        return tuple(t.to(self.dtype) if t.is_floating_point() else t for t in tensors)

    @torch.no_grad()
    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if graph not in self.graphs:
            raise KeyError(f"this {self.name} executor has no '{graph}' graph (it has {sorted(self.graphs)})")
        outputs = self.graphs[graph](*self.inputs(graph, feeds))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return {name: (o.float() if o.is_floating_point() else o).cpu().numpy()
                for name, o in zip(GRAPH_OUTPUTS[graph], outputs)}

    @property
    def device(self) -> str:
        return str(self.torch_device)
