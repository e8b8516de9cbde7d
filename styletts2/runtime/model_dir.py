"""An exported model directory: model.json, checked against the export contract, and one onnxruntime
session per graph.

The directory holds text_encoder.onnx, diffusion_sampler.onnx, decoder.onnx, style_encoder.onnx
(required for multispeaker models, optional otherwise), diffusion_sampler_unguided.onnx (optional;
exports from before it existed lack it) and model.json. Every problem found is raised
as `ModelDirError` naming the file and the field, before anything is synthesized: each field's type
and range, the model.json fields the graphs fix (style_dim, diffusion_steps, n_mels) against the
graphs' input and output shapes, those no shape shows (bert_max_positions, sample_rate) against what
the export recorded in the graphs' metadata (`check_graph_metadata`), and each graph file against the
sha256 model.json records for it, hashed while onnxruntime opens it (exports from before the hashes
existed record none; they load with a note). A graph opened on first use (the guided sampler, a
single-speaker model's style encoder) is checked then. Weights that several graphs hold are stored
once, in the file their entries name as `weights` (the two samplers').

model.json's `text_normalizer` ({name, version, language, settings}, or null for a model whose text
is read as written) says how text is normalized before phonemization; exports from before it
existed get their language's default normalizer, with a note in the log.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..audio.mel_params import HOP_LENGTH, N_FFT, N_MELS, WIN_LENGTH
from ..errors import UserError
from ..graph_contract import (DECODER_TYPES, FORMAT_VERSION, GRAPH_INPUTS, GRAPH_OUTPUTS,  # noqa: F401 (re-exported)
                              GRAPH_METADATA, LEGACY_BERT_MAX_POSITIONS, MODEL_JSON, MULTISPEAKER_SAMPLER_INPUT,
                              REQUIRED_GRAPHS, STYLE_ENCODER, UNGUIDED_SAMPLER)
from ..synthesis_limits import OPTION_RANGES, check_option
from ..text.normalize import NormalizerError, TextNormalizer
from ..text.symbols import SYMBOL_TO_ID, SYMBOLS

logger = logging.getLogger(__name__)

_PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_OPTIONS = ("embedding_scale", "alpha", "beta", "speed", "blend", "tail_frames")
REEXPORT = "export the model again (export/to_onnx.py)"
# Output rates a model.json may give (a hand-edited 10**12 overflowed the wav writer).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
# The reference-clip mel's sizes: upstream's, on which the style encoders were trained, within a factor
# 4. Beyond that a value is an edit, not a model, and the front-end's arrays grow with it (an n_fft of
# 2**26 tried to allocate 10 GiB when the model opened).
MEL_SIZES = {key: (value // 4, value * 4) for key, value in
             (("n_fft", N_FFT), ("win_length", WIN_LENGTH), ("hop_length", HOP_LENGTH), ("n_mels", N_MELS))}
# Log-mel normalisation (upstream: mean -4, std 4, on log-mels between about -12 and 15): beyond these
# the style encoder reads values far outside its training range (a std of 1e-300 gave NaN styles).
MEL_MAX_ABS_MEAN, MEL_STD_RANGE = 100.0, (0.01, 100.0)


class ModelDirError(ValueError):
    """An exported model directory is missing a file or holds a malformed one."""


class ProviderError(UserError, RuntimeError):
    """A requested onnxruntime execution provider cannot be used."""


class FileDigests:
    """The sha256 of files, each computed once per model folder: graphs opened side by side may
    share a weights file."""

    def __init__(self):
        self._lock = threading.Lock()
        self._digests: dict[Path, Future] = {}

    def sha256(self, path: Path) -> str:
        with self._lock:
            digest = self._digests.get(path)
            computes = digest is None
            if computes:
                digest = self._digests[path] = Future()
        if computes:
            try:
                digest.set_result(file_sha256(path))
            except BaseException as err:  # the waiting threads see the same error
                digest.set_exception(err)
        return digest.result()


@dataclass(frozen=True)
class ModelConfig:
    """The fields of model.json the runtime uses (`raw` keeps the whole document)."""

    directory: Path
    sample_rate: int
    hop_length: int
    symbols: tuple[str, ...]
    pad_id: int
    apostrophe_id: int
    phonemizer: dict
    multispeaker: bool
    style_dim: int
    decoder_type: str
    sigma_data: float
    diffusion_steps: int
    bert_max_positions: int
    defaults: dict
    mel: dict
    graphs: dict
    raw: dict = field(repr=False)
    text_normalizer: dict | None = None  # TextNormalizer.describe(); None: text is read as written
    digests: FileDigests = field(default_factory=FileDigests, repr=False, compare=False)

    def graph_file(self, name: str) -> Path:
        return self.directory / self.graphs[name]["file"]

    def has_graph(self, name: str) -> bool:
        return name in self.graphs


def _field(data: dict, key: str, kind: type | tuple[type, ...], where: str):
    if key not in data:
        raise ModelDirError(f"{where}: missing field '{key}'")
    value = data[key]
    # bool is an int in Python: do not let `true` pass as a number, nor 1 as a bool
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ModelDirError(f"{where}: field '{key}' must be {names}, got {value!r}")
    return value


def _number(data: dict, key: str, where: str, positive: bool = False, integer: bool = False):
    """A finite number (an integer where asked), above 0 where asked; the error names the field."""
    value = _field(data, key, int if integer else (int, float), where)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ModelDirError(f"{where}: field '{key}' must be a finite number{' above 0' if positive else ''}, "
                            f"got {value!r}")
    return value


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def check_hashes_recorded(graphs: dict, where: str) -> None:
    """Every graph has a sha256 in model.json, or none has (an export from before they existed)."""
    recorded = {name: entry.get("sha256") for name, entry in graphs.items() if name in GRAPH_INPUTS}
    if not any(recorded.values()):
        logger.warning("note: %s records no graph hashes (exported before they existed): the graphs are not "
                       "checked against it", where)
        return
    for name, digest in recorded.items():
        if not isinstance(digest, str):
            raise ModelDirError(f"{where}: graphs.{name} has no sha256 although the other graphs do; {REEXPORT}")


def verify_graph_file(config: ModelConfig, name: str) -> None:
    """Graph `name`'s file, and the weights file it shares, against the sha256 model.json records for
    them. A mismatch means the folder mixes files of two exports (e.g. a re-export into it that was
    stopped half way, from before exports were staged) or a graph was replaced by hand: configs may
    agree, weights do not. Checked when a graph is opened, so a call pays only for the graphs it uses."""
    where = config.directory / MODEL_JSON
    entry = config.graphs[name]
    weights = entry.get("weights", {})
    for file, digest, field_name in ((entry["file"], entry.get("sha256"), f"graphs.{name}.sha256"),
                                     (weights.get("file"), weights.get("sha256"), f"graphs.{name}.weights.sha256")):
        if isinstance(digest, str) and config.digests.sha256(config.directory / file) != digest.lower():
            raise ModelDirError(f"{config.directory / file} does not match the sha256 recorded in {where} "
                                f"({field_name}): the folder holds files of another export; {REEXPORT}")


def check_language(language: str, where: str) -> None:
    """An espeak-ng language code in form ('en-us', 'fr', 'cmn'); whether espeak-ng has it is checked
    when the phonemizer is made (loading espeak-ng's language list takes about a second)."""
    parts = language.split("-")
    if not (1 <= len(parts) <= 3 and all(p.isascii() and p.isalnum() for p in parts) and parts[0].isalpha()):
        raise ModelDirError(f"{where}: field 'phonemizer.language' is not an espeak-ng language code: {language!r}")


def read_text_normalizer(data: dict, where: str) -> dict | None:
    """model.json's `text_normalizer` entry, checked (a normalizer and settings this version has);
    None where the model reads text as written. Older exports without the entry: the default
    normalizer of their phonemizer's language."""
    if "text_normalizer" not in data:
        try:
            entry = TextNormalizer(data["phonemizer"]["language"]).describe()
        except NormalizerError as err:
            raise ModelDirError(f"{where}: phonemizer.language: {err}") from err
        logger.warning("note: %s records no text_normalizer (exported before text normalization existed): "
                       "text is normalized with the default %s normalizer", where, entry["name"])
        return entry
    entry = data["text_normalizer"]
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ModelDirError(f"{where}: field 'text_normalizer' must be an object or null, got {entry!r}")
    for key, kind in (("name", str), ("version", str), ("language", str), ("settings", dict)):
        _field(entry, key, kind, f"{where}: text_normalizer")
    try:
        TextNormalizer(entry["language"], name=entry["name"], **entry["settings"])
    except NormalizerError as err:
        raise ModelDirError(f"{where}: text_normalizer: {err}") from err
    return entry


def read_model_json(model_dir: str | os.PathLike) -> ModelConfig:
    """Parse and check `model_dir/model.json`; graph files must exist (their contents are checked
    when sessions open). Raises ModelDirError naming the file and the field at fault."""
    directory = Path(model_dir)
    data = _load_json(directory)
    where = str(directory / MODEL_JSON)
    version = _field(data, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ModelDirError(f"{where}: format_version {version} is not supported (this runtime reads "
                            f"{FORMAT_VERSION}); export the model again with this version of styletts2")
    symbols, pad_id, apostrophe_id = _read_symbols(data, where)
    phonemizer = _read_phonemizer(data, where)
    steps = _field(data, "diffusion_steps", int, where)
    low, high, _ = OPTION_RANGES["diffusion_steps"]
    if not low <= steps <= high:
        raise ModelDirError(f"{where}: field 'diffusion_steps' must be in [{low}, {high}], got {steps}")
    defaults = _read_defaults(data, where)
    mel = _read_mel(data, where)
    multispeaker = _field(data, "multispeaker", bool, where)
    graphs = _read_graphs(data, directory, multispeaker, where)
    decoder_type = _field(data, "decoder_type", str, where)
    if decoder_type not in DECODER_TYPES:
        raise ModelDirError(f"{where}: field 'decoder_type' must be one of {list(DECODER_TYPES)}, got {decoder_type!r}")
    return ModelConfig(
        directory=directory,
        sample_rate=_sample_rate(data, where),
        hop_length=_number(data, "hop_length", where, positive=True, integer=True),
        symbols=symbols,
        pad_id=pad_id,
        apostrophe_id=apostrophe_id,
        phonemizer=phonemizer,
        multispeaker=multispeaker,
        style_dim=_number(data, "style_dim", where, positive=True, integer=True),
        decoder_type=decoder_type,
        sigma_data=float(_number(data, "sigma_data", where, positive=True)),
        diffusion_steps=steps,
        bert_max_positions=_bert_max_positions(data, where),
        defaults=defaults,
        mel=mel,
        graphs=graphs,
        raw=data,
        text_normalizer=read_text_normalizer(data, where),
    )


def _load_json(directory: Path) -> dict:
    if directory.is_file():
        raise ModelDirError(f"{directory} is a file: give the exported model's folder (the one holding model.json)")
    if not directory.is_dir():
        raise ModelDirError(f"model directory not found: {directory}")
    path = directory / MODEL_JSON
    if not path.is_file():
        raise ModelDirError(f"{path} not found: is {directory} an exported model (export/to_onnx.py)?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:  # e.g. saved as Latin-1 by an editor
        bad = err.object[err.start:err.start + 1]
        raise ModelDirError(f"{path} is not UTF-8 text (byte {err.start}: {bad!r}): save it as UTF-8") from err
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _bert_max_positions(data: dict, where: str) -> int:
    """At least the pad and one token; the graph's own limit is checked when the text encoder opens."""
    positions = _number(data, "bert_max_positions", where, positive=True, integer=True)
    if positions < 2:
        raise ModelDirError(f"{where}: field 'bert_max_positions' must be at least 2 (the pad and one token), "
                            f"got {positions}")
    return positions


def _read_symbols(data: dict, where: str) -> tuple[tuple[str, ...], int, int]:
    """The symbol table, pad id and apostrophe id: the runtime's own, or the model speaks another table."""
    symbols = _field(data, "symbols", list, where)
    if tuple(symbols) != SYMBOLS:
        first = next((i for i, (a, b) in enumerate(zip(symbols, SYMBOLS)) if a != b), min(len(symbols), len(SYMBOLS)))
        raise ModelDirError(f"{where}: field 'symbols' ({len(symbols)} entries) differs from this runtime's "
                            f"{len(SYMBOLS)}-symbol table from index {first}")
    pad_id = _field(data, "pad_id", int, where)
    apostrophe_id = _field(data, "apostrophe_id", int, where)
    if pad_id != SYMBOL_TO_ID["$"] or apostrophe_id != SYMBOL_TO_ID["'"]:
        raise ModelDirError(f"{where}: pad_id {pad_id} / apostrophe_id {apostrophe_id} differ from the "
                            f"symbol table's {SYMBOL_TO_ID['$']} / {SYMBOL_TO_ID[chr(39)]}")
    return tuple(symbols), pad_id, apostrophe_id


def _read_phonemizer(data: dict, where: str) -> dict:
    phonemizer = _field(data, "phonemizer", dict, where)
    backend = _field(phonemizer, "backend", str, f"{where}: phonemizer")
    check_language(_field(phonemizer, "language", str, f"{where}: phonemizer"), where)
    if backend != "espeak-ng":
        raise ModelDirError(f"{where}: phonemizer backend {backend!r} is not supported (only 'espeak-ng')")
    for flag in ("preserve_punctuation", "with_stress"):
        if _field(phonemizer, flag, bool, f"{where}: phonemizer") is not True:
            raise ModelDirError(f"{where}: phonemizer.{flag} must be true (the only front-end implemented)")
    return phonemizer


def _read_defaults(data: dict, where: str) -> dict:
    defaults = _field(data, "defaults", dict, where)
    for knob in DEFAULT_OPTIONS:
        _field(defaults, knob, (int, float), f"{where}: defaults")
        try:  # finite and in the range a caller may pass (synthesis_limits.OPTION_RANGES)
            check_option(knob, defaults[knob])
        except ValueError as err:
            raise ModelDirError(f"{where}: field 'defaults': {err}") from err
    return defaults


def _read_mel(data: dict, where: str) -> dict:
    mel = _field(data, "mel", dict, where)
    where = f"{where}: mel"
    for key, (low, high) in MEL_SIZES.items():
        if not low <= _number(mel, key, where, integer=True) <= high:
            raise ModelDirError(f"{where}: field '{key}' must be in [{low}, {high}] (upstream's {low * 4} within a "
                                f"factor 4), got {mel[key]}")
    _number(mel, "filterbank_sample_rate", where, positive=True, integer=True)
    _read_mel_normalisation(mel, where)
    _field(mel, "htk", bool, where)
    if mel["win_length"] > mel["n_fft"]:
        raise ModelDirError(f"{where}: field 'win_length' ({mel['win_length']}) must not exceed "
                            f"n_fft ({mel['n_fft']})")
    if mel["hop_length"] > mel["win_length"]:  # the samples between two windows would be skipped
        raise ModelDirError(f"{where}: field 'hop_length' ({mel['hop_length']}) must not exceed "
                            f"win_length ({mel['win_length']})")
    nyquist = mel["filterbank_sample_rate"] / 2
    if not 0 <= _number(mel, "f_min", where) < _number(mel, "f_max", where) <= nyquist:
        raise ModelDirError(f"{where}: fields 'f_min' and 'f_max' must satisfy 0 <= f_min < f_max <= "
                            f"filterbank_sample_rate / 2 = {nyquist:g}, got {mel['f_min']} and {mel['f_max']}")
    return mel


def _read_mel_normalisation(mel: dict, where: str) -> None:
    """`(log(log_offset + power) - mean) / std`: a log of 0 or less, or a division by almost 0, makes
    infinite mels and NaN styles."""
    _number(mel, "log_offset", where, positive=True)
    mean = _number(mel, "mean", where)
    if abs(mean) > MEL_MAX_ABS_MEAN:
        raise ModelDirError(f"{where}: field 'mean' must be in [{-MEL_MAX_ABS_MEAN:g}, {MEL_MAX_ABS_MEAN:g}] "
                            f"(upstream's -4), got {mean!r}")
    low, high = MEL_STD_RANGE
    if not low <= _number(mel, "std", where, positive=True) <= high:
        raise ModelDirError(f"{where}: field 'std' must be in [{low:g}, {high:g}] (upstream's 4), got {mel['std']!r}")


def _sample_rate(data: dict, where: str) -> int:
    rate = _number(data, "sample_rate", where, positive=True, integer=True)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ModelDirError(f"{where}: field 'sample_rate' must be in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz "
                            f"(the model's output rate, 24000 for every released model), got {rate}")
    return rate


def _read_graphs(data: dict, directory: Path, multispeaker: bool, where: str) -> dict:
    """The graphs entry: the required graphs listed, each known graph's file present and unchanged."""
    graphs = _field(data, "graphs", dict, where)
    required = list(REQUIRED_GRAPHS) + [STYLE_ENCODER] * multispeaker
    for name in required:
        if name not in graphs:
            raise ModelDirError(f"{where}: graphs has no '{name}' entry"
                                + (" (multispeaker models need it)" if name == STYLE_ENCODER else ""))
    for name, entry in graphs.items():
        if name not in GRAPH_INPUTS:
            continue  # e.g. a fused graph this runtime does not use
        file = _field(entry, "file", str, f"{where}: graphs.{name}") if isinstance(entry, dict) else None
        if file is None:
            raise ModelDirError(f"{where}: graphs.{name} must be an object with a 'file' field")
        if not (directory / file).is_file():
            raise ModelDirError(f"{directory / file} not found (listed in {where} as graphs.{name})")
        if "weights" in entry:  # weights that several graphs share, stored once (export/shared_weights.py)
            if not isinstance(entry["weights"], dict):
                raise ModelDirError(f"{where}: field 'graphs.{name}.weights' must be an object with a 'file' field, "
                                    f"got {entry['weights']!r}")
            weights = _field(entry["weights"], "file", str, f"{where}: graphs.{name}.weights")
            if not (directory / weights).is_file():
                raise ModelDirError(f"graphs.{name}.weights in {where}: the weights file {weights!r} is missing "
                                    f"from {directory}; copy the whole exported folder")
    check_hashes_recorded(graphs, where)
    return graphs


def resolve_providers(providers: str | Sequence[str] | None = None) -> list[str]:
    """Execution providers to ask onnxruntime for. None: CUDA when this onnxruntime has it, else CPU.
    Names may be onnxruntime's ('CUDAExecutionProvider') or short ('cuda', 'cpu')."""
    available = ort.get_available_providers()
    if providers is None:
        return [CUDA, CPU] if CUDA in available else [CPU]
    if isinstance(providers, str):
        providers = [providers]
    resolved = [_PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
    if not resolved:
        raise ProviderError("no execution provider given")
    for name in resolved:
        if name in available:
            continue
        if name == CUDA:
            raise ProviderError(
                f"CUDA was requested but this onnxruntime {ort.__version__} offers only {available}: "
                "install onnxruntime-gpu (requirements-gpu.txt) in place of onnxruntime, with a CUDA and "
                "cuDNN it supports, or use providers='cpu' (--provider cpu on the command line)")
        raise ProviderError(f"execution provider {name!r} is not available; this onnxruntime "
                            f"{ort.__version__} offers {available}")
    return resolved


def make_session_options(threads: int | None = None,
                         session_options: ort.SessionOptions | None = None) -> ort.SessionOptions:
    """Session options: all graph optimisations on, `threads` intra-op threads (None: onnxruntime's
    default, one per physical core). A given `session_options` is used as is, apart from `threads`."""
    if session_options is None:
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer of at least 1, got {threads!r}")
        cpus = usable_cpus()
        if threads > cpus:
            warnings.warn(f"threads {threads} is more than the {cpus} CPUs this process may use: "
                          "each session's threads will wait on each other (slower, not faster)",
                          ThreadCountWarning, stacklevel=3)
        session_options.intra_op_num_threads = threads
    return session_options


class ThreadCountWarning(UserWarning):
    """More intra-op threads were asked for than this process has CPUs."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, e.g. in a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class GraphSession:
    """One exported graph: an onnxruntime session whose input and output names were checked against
    the export contract. Call it with numpy inputs by name; it returns the outputs by name."""

    def __init__(self, name: str, path: Path, multispeaker: bool, providers: list[str],
                 options: ort.SessionOptions, require_cuda: bool = False):
        self.name, self.path = name, path
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ModelDirError(f"{path}: onnxruntime cannot load this graph: {err}") from err
        if CUDA in providers and CUDA not in self.session.get_providers():
            # e.g. onnxruntime-gpu on a machine without a usable GPU: onnxruntime falls back to CPU
            message = (f"{path}: onnxruntime could not start the CUDA provider (see its log above); "
                       f"the session runs on {self.session.get_providers()}")
            if require_cuda:
                raise ProviderError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        expected = list(GRAPH_INPUTS[name])
        if name.startswith("diffusion_sampler") and multispeaker:
            expected.append(MULTISPEAKER_SAMPLER_INPUT)
        if sorted(self.input_names) != sorted(expected):
            raise ModelDirError(f"{path}: graph inputs are {self.input_names}, the export contract expects "
                                f"{expected} for a {'multispeaker' if multispeaker else 'single-speaker'} model")
        missing = [o for o in GRAPH_OUTPUTS[name] if o not in self.output_names]
        if missing:
            raise ModelDirError(f"{path}: graph outputs {self.output_names} lack {missing}")
        self.shapes = {t.name: t.shape for t in self.session.get_inputs() + self.session.get_outputs()}
        self.metadata = self.session.get_modelmeta().custom_metadata_map  # what the export recorded

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, inputs)
        return dict(zip(self.output_names, outputs))


def open_graph(config: ModelConfig, name: str, providers: list[str], options: ort.SessionOptions,
               require_cuda: bool = False, path: Path | None = None) -> GraphSession:
    """The session of graph `name` of an exported model (from `path` instead of the folder's file,
    where given). With `require_cuda`, a CUDA provider that onnxruntime cannot start is an error;
    otherwise a warning, and the session runs on CPU."""
    if path is None and not config.has_graph(name):
        raise ModelDirError(f"{config.directory / MODEL_JSON}: this model has no '{name}' graph")
    if path is not None:
        graph = GraphSession(name, path, config.multispeaker, providers, options, require_cuda)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:  # hashed while onnxruntime builds the session
            verified = pool.submit(verify_graph_file, config, name)
            try:
                graph = GraphSession(name, config.graph_file(name), config.multispeaker, providers, options,
                                     require_cuda)
            except ModelDirError:
                verified.result()  # a file of another export explains a graph onnxruntime refuses
                raise
            verified.result()
    check_graph_shapes(config, graph)
    check_graph_metadata(config, graph)
    return graph


def expected_sizes(config: ModelConfig) -> dict[str, dict[int, tuple[int, str]]]:
    """{tensor: {axis: (size, model.json field)}}: the axes whose size a model.json field fixes (the
    style vector is [acoustic | prosodic], 2 * style_dim wide; the sampler unrolls diffusion_steps - 1
    iterations). Negative axes count from the end."""
    style = (2 * config.style_dim, "style_dim")
    return {"noise": {-1: style}, "step_noises": {0: (config.diffusion_steps - 1, "diffusion_steps"), -1: style},
            "reference_style": {-1: style}, "style": {-1: style}, "mel": {1: (config.mel["n_mels"], "mel.n_mels")}}


def check_graph_shapes(config: ModelConfig, graph: GraphSession) -> None:
    """A model.json field that disagrees with a graph's static axis would fail inside onnxruntime
    mid-synthesis (or silently feed wrong noise): name the field now."""
    for tensor, axes in expected_sizes(config).items():
        shape = graph.shapes.get(tensor)
        if not shape:
            continue
        for axis, (size, field_name) in axes.items():
            actual = shape[axis] if -len(shape) <= axis < len(shape) else None
            if isinstance(actual, int) and actual != size:  # symbolic axes (str/None) are free
                raise ModelDirError(
                    f"{config.directory / MODEL_JSON}: field '{field_name}' does not fit {graph.path.name}: its "
                    f"'{tensor}' has {actual} at axis {axis}, the field implies {size}; model.json belongs to "
                    f"another export: {REEXPORT}")


def check_graph_metadata(config: ModelConfig, graph: GraphSession) -> None:
    """model.json's fields against what the export recorded in the graph (`GRAPH_METADATA`): a
    bert_max_positions above the graph's failed inside onnxruntime mid-synthesis, a sample_rate of
    16000 labelled 24 kHz audio 1.5x slow. Exports from before the record are checked against what
    they all wrote: bert_max_positions 512."""
    where = config.directory / MODEL_JSON
    for field_name in GRAPH_METADATA.get(graph.name, ()):
        value, recorded = getattr(config, field_name), graph.metadata.get(field_name)
        if recorded is not None and str(value) != recorded:
            raise ModelDirError(f"{where}: field '{field_name}' is {value}, but {graph.path.name} was exported with "
                                f"{recorded}: model.json was edited or belongs to another export; {REEXPORT}")
    if graph.name == "text_encoder" and "bert_max_positions" not in graph.metadata \
            and config.bert_max_positions > LEGACY_BERT_MAX_POSITIONS:
        raise ModelDirError(f"{where}: field 'bert_max_positions' is {config.bert_max_positions}, more than the "
                            f"{LEGACY_BERT_MAX_POSITIONS} this export wrote (its graphs record no limit)")
