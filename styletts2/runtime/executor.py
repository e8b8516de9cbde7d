"""Executors: each runs the export contract's graphs (`styletts2.graph_contract`) by name, numpy
arrays in and out, so that one synthesizer (`runtime.synthesizer`), the parity report and the speed
benchmark drive any of them the same way:

- `OnnxExecutor` (here, no torch): the .onnx files of an exported folder on onnxruntime;
- `TorchExecutor` (`styletts2.torch_executor`): the same graphs as torch modules, either the
  export wrappers in eager mode or the TorchScript files of an export.

`run(graph, feeds)` takes the graph's inputs by name from `feeds`, which may hold more (a chain
passes everything computed so far), and returns the graph's outputs by name.
"""
from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..graph_contract import GRAPH_INPUTS, MULTISPEAKER_SAMPLER_INPUT
from .model_dir import CUDA, GraphSession, ModelConfig, ModelDirError, make_session_options, open_graph, \
    resolve_providers


def release_freed_memory() -> None:
    """glibc's malloc_trim(0): return the memory of freed blocks, in every thread's arena, to the
    system. A no-op where the C library has no such call (macOS, Windows, musl)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # TypeError: Windows' CDLL takes no None
        return
    trim(0)


def graph_input_names(graph: str, multispeaker: bool) -> tuple[str, ...]:
    """A graph's inputs in the contract's order (a multispeaker sampler takes the reference style last)."""
    extra = (MULTISPEAKER_SAMPLER_INPUT,) if multispeaker and graph.startswith("diffusion_sampler") else ()
    return GRAPH_INPUTS[graph] + extra


class Executor:
    """Runs graphs by name. `name` says how (onnxruntime, eager, torchscript), `precision` in what."""

    name = "executor"
    precision = "fp32"

    @property
    def label(self) -> str:
        return f"{self.name}/{self.precision}"

    def has_graph(self, graph: str) -> bool:
        raise NotImplementedError

    def load(self, graphs: Iterable[str]) -> None:
        """Open these graphs now (errors at start-up, not mid-synthesis); graphs not loaded here are
        opened on first use. Here: only check that the executor has them."""
        missing = [graph for graph in graphs if not self.has_graph(graph)]
        if missing:
            raise ValueError(f"this {self.label} executor has no {', '.join(missing)} graph: give one built "
                             "from the same model as the folder")

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the graphs hold; a later run opens them again. Here: nothing to release."""

    @property
    def device(self) -> str:
        """Where the graphs run, in words (for logs)."""
        return "cpu"


def check_not_torchscript(config: ModelConfig, files: Mapping[str, Path]) -> None:
    """A TorchScript export (export/to_torchscript.py: its model.json lists .pt graphs) is named as
    one, with how to run it: onnxruntime would fail on its first graph with a protobuf error."""
    scripted = [name for name in config.graphs if Path(files.get(name) or config.graph_file(name)).suffix == ".pt"]
    if scripted:
        raise ModelDirError(f"{config.directory} is a TorchScript export (its model.json lists "
                            f"{config.graphs[scripted[0]]['file']}), which onnxruntime cannot run: in Python, "
                            "Synthesizer(DIR, executor=TorchExecutor.torchscript(read_model_json(DIR))) "
                            "(styletts2.torch_executor) runs it; or export ONNX with export/to_onnx.py")


class OnnxExecutor(Executor):
    """An exported folder's .onnx graphs on onnxruntime, each opened once, on `load` or first use.

    providers: 'cpu', 'cuda', a list of onnxruntime provider names, or None (CUDA when this
        onnxruntime has it, else CPU). CUDA asked for by name must start (ProviderError otherwise);
        picked by None, it may fall back to CPU with a RuntimeWarning.
    threads: intra-op threads per session (None: onnxruntime's default).
    session_options: used instead of the default options (all graph optimisations on); `threads` applies.
    files: graph files to use instead of the folder's (e.g. an int8 decoder made elsewhere); they
        are checked against the contract like the folder's own.
    precision: a label for what the graphs compute in (the benchmark's tables).
    side_by_side: `load` opens its graphs in parallel threads: an LJSpeech-size folder opens in
        about 0.9 s instead of 1.25 s on 2 cores, and the process peaks 110-170 MB higher (README,
        runtime install); False opens them one by one.
    """

    name = "onnxruntime"

    def __init__(self, config: ModelConfig, providers: str | list[str] | None = None, threads: int | None = None,
                 session_options: ort.SessionOptions | None = None, files: Mapping[str, Path] | None = None,
                 precision: str = "fp32", side_by_side: bool = True):
        self.config, self.precision, self.side_by_side = config, precision, side_by_side
        self.files = {name: Path(path) for name, path in (files or {}).items()}
        check_not_torchscript(config, self.files)
        self.providers = resolve_providers(providers)
        self._require_cuda = providers is not None and CUDA in self.providers  # asked for, not picked
        self.session_options = make_session_options(threads, session_options)
        self.sessions: dict[str, GraphSession] = {}
        # Graphs opened on first use: threads making their first call at once would each open
        # (and hold in memory) a session of the same graph.
        self._opening = threading.Lock()

    def has_graph(self, graph: str) -> bool:
        return graph in self.files or self.config.has_graph(graph)

    def graph_file(self, graph: str) -> Path:
        return self.files.get(graph) or self.config.graph_file(graph)

    def session(self, graph: str) -> GraphSession:
        opened = self.sessions.get(graph)
        if opened is None:
            with self._opening:
                opened = self.sessions.get(graph)
                if opened is None:
                    opened = self.sessions[graph] = self._open(graph)
        return opened

    def load(self, graphs: Iterable[str]) -> None:
        """Open these graphs now, side by side: onnxruntime builds a session (reading and prepacking
        the weights) without holding the GIL, so the graphs a call needs open in about the time of
        the largest one."""
        wanted = [graph for graph in dict.fromkeys(graphs) if graph not in self.sessions]
        if len(wanted) > 1 and self.side_by_side:
            with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
                opened = list(pool.map(self._open, wanted))  # the first error, if any, is raised here
            self.sessions.update(zip(wanted, opened))
        for graph in wanted:
            self.session(graph)

    def _open(self, graph: str) -> GraphSession:
        return open_graph(self.config, graph, self.providers, self.session_options, self._require_cuda,
                          path=self.files.get(graph))

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.session(graph)
        return session(**{name: feeds[name] for name in session.input_names})

    def close(self) -> None:
        """Drop the sessions and hand the freed memory back to the system. Without the trim, glibc
        keeps what the threads of a side-by-side `load` freed: 8 LJSpeech-size synthesizers made and
        dropped in turn grew a process from 255 to 1,060 MB; closed, it stayed at 99-160 MB."""
        with self._opening:
            self.sessions.clear()
        gc.collect()
        release_freed_memory()

    @property
    def device(self) -> str:
        opened = next(iter(self.sessions.values()), None)
        return opened.providers[0] if opened is not None else self.providers[0]
