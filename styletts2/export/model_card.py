"""model.json (what a runtime needs to drive the graphs) and README.md (the model card) of an export."""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
from pathlib import Path

from torch import nn

from styletts2.export.common import LoadedModel
from styletts2.graphs import DECODER_NOISE_DOC
from styletts2.audio import mel as mel_frontend
# imported before any checkpoint's gin config is parsed, so its corpus_normalizer bindings are read
from styletts2.data.readers import corpus_normalizer
from styletts2.graph_contract import FORMAT_VERSION, GRAPH_METADATA, MODEL_JSON
from styletts2.synthesis_limits import default_tail_frames
from styletts2.text.symbols import PAD_ID, SYMBOL_TO_ID, SYMBOLS

LANGUAGE = "en-us"  # the phonemizer language the exported graphs are driven with
DEFAULTS = {"embedding_scale": 1.0, "alpha": 0.3, "beta": 0.7, "speed": 1.0, "blend": 0.7}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def espeak_version_for(loaded: LoadedModel) -> str | None:
    """The espeak-ng version the model was trained with (recorded in our checkpoints), else this
    machine's (printed, since it is an assumption), else None (printed as a warning)."""
    recorded = loaded.meta.get("espeak_version")
    if recorded:
        return str(recorded)
    try:
        from styletts2.text.espeak import espeak_version

        version = espeak_version()
    except Exception as err:  # noqa: BLE001 - any failure to load espeak ends in the same warning
        print(f"warning: the checkpoint records no espeak-ng version and espeak-ng cannot be loaded here "
              f"({err}); model.json gets espeak_version null")
        return None
    print(f"note: the checkpoint records no espeak-ng version; recording this machine's ({version})")
    return version


def text_normalizer_entry(language: str = LANGUAGE) -> dict | None:
    """model.json's `text_normalizer`: the normalizer the model's gin config binds (`corpus_normalizer`,
    the one its training text went through), in the phonemizer's language; None (JSON null) where
    that config switches normalization off. The runtime reads it with `read_text_normalizer`."""
    normalizer = corpus_normalizer(language=language)
    return normalizer.describe() if normalizer is not None else None


def mel_config() -> dict:
    """The reference-clip mel settings, as the runtime's numpy front-end takes them."""
    return {"n_fft": mel_frontend.N_FFT, "win_length": mel_frontend.WIN_LENGTH,
            "hop_length": mel_frontend.HOP_LENGTH, "n_mels": mel_frontend.N_MELS,
            "filterbank_sample_rate": mel_frontend.FILTERBANK_SAMPLE_RATE, "f_min": 0,
            "f_max": mel_frontend.FILTERBANK_SAMPLE_RATE // 2, "mean": mel_frontend.MEL_MEAN,
            "std": mel_frontend.MEL_STD, "htk": True, "log_offset": mel_frontend.LOG_OFFSET}


def bert_max_positions(model: nn.Module) -> int:
    """The most tokens (the pad included) the model's PL-BERT, and so its text encoder, takes."""
    return int(model.bert.config.max_position_embeddings)


def graph_metadata(model: nn.Module) -> dict[str, dict[str, str]]:
    """{graph: {model.json field: value}}: what each graph records of model.json (`GRAPH_METADATA`)."""
    values = {"bert_max_positions": bert_max_positions(model), "sample_rate": int(model.sample_rate)}
    return {graph: {key: str(values[key]) for key in keys} for graph, keys in GRAPH_METADATA.items()}


def synthesis_fields(model: nn.Module, steps: int, espeak_version: str | None) -> dict:
    """The fields of model.json that say how to synthesize with `model`: what the runtime's
    ModelConfig holds. An export writes them; the torch synthesizer reads a model in memory by them."""
    return {
        "format_version": FORMAT_VERSION,
        "sample_rate": int(model.sample_rate),
        "hop_length": int(model.hop_length),
        "symbols": list(SYMBOLS),
        "pad_id": PAD_ID,
        "apostrophe_id": SYMBOL_TO_ID["'"],
        "phonemizer": {"backend": "espeak-ng", "language": LANGUAGE, "espeak_version": espeak_version,
                       "preserve_punctuation": True, "with_stress": True},
        "text_normalizer": text_normalizer_entry(),
        "multispeaker": bool(model.multispeaker),
        "style_dim": int(model.style_dim),
        "decoder_type": model.decoder_type,
        "sigma_data": float(model.diffusion.sigma_data),
        "diffusion_steps": int(steps),
        "bert_max_positions": bert_max_positions(model),
        "defaults": {**DEFAULTS, "tail_frames": default_tail_frames(model.multispeaker)},
        "mel": mel_config(),
    }


def model_json(loaded: LoadedModel, steps: int, spec: dict, extension: str, opset: int | None) -> dict:
    model: nn.Module = loaded.model
    return {
        **synthesis_fields(model, steps, espeak_version_for(loaded)),
        "decoder_noise": {**DECODER_NOISE_DOC, "harmonic_phase": "float64",
                          "tail_trim": int(model.tail_trim)},
        "graphs": {name: {"file": f"{name}.{extension}", **io} for name, io in spec.items()},
        "precision": {name: "fp32" for name in spec},
        "exported_with": {
            "styletts2": _version("styletts2") or __import__("styletts2").__version__,
            "torch": _version("torch"), "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime"),
            "opset": opset, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": loaded.source, "gin_config_sha256": loaded.gin_config_sha256,
        },
    }


def _precision(value) -> str:
    if isinstance(value, str):
        return value
    quality = value.get("quality_vs_fp32", {})
    weights = f"; {value['weights']}" if "weights" in value else ""
    return (f"({value['decoder']}{weights}; on a held-out sentence vs the fp32 decoder: SNR {quality.get('snr_db')} dB, "
            f"log-mel L1 {quality.get('log_mel_l1')})")


def _shape(shape: list) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]" if shape else "[] (scalar)"


def readme(info: dict, backend: str, verification: dict[str, dict[str, float]] | None) -> str:
    """The model card: what the files are, how to drive them, how it was checked."""
    lines = [f"# StyleTTS2 export ({backend})", "", *_model_lines(info), "", "## Pipeline", "", *_pipeline_lines(info),
             "", "## Graphs", "", "| graph | file | inputs | outputs |", "|---|---|---|---|"]
    for name, graph in info["graphs"].items():
        ins = "<br>".join(f"`{t['name']}` {t['dtype']} {_shape(t['shape'])}" for t in graph["inputs"])
        outs = "<br>".join(f"`{t['name']}` {t['dtype']} {_shape(t['shape'])}" for t in graph["outputs"])
        weights = f" (weights in {graph['weights']['file']})" if "weights" in graph else ""
        lines.append(f"| {name} | {graph['file']}{weights} | {ins} | {outs} |")
    if verification:
        lines += ["", "## Check at export time", "",
                  f"Max abs difference, {backend} vs torch eager, on the trace example (a padded batch of 2):", "",
                  "| graph | output | max abs error |", "|---|---|---|"]
        for name, outputs in verification.items():
            lines += [f"| {name} | {out} | {err:.3g} |" for out, err in outputs.items()]
    return "\n".join(lines + ["", "## Notes", "", *_NOTES, ""])


def _model_lines(info: dict) -> list[str]:
    """What the model is, and what it was exported with."""
    kind = "multispeaker (voice from a reference clip)" if info["multispeaker"] else "single speaker"
    return [
        f"- model: {info['exported_with']['checkpoint']}, {kind}, {info['decoder_type']} decoder, "
        f"style_dim {info['style_dim']}, sigma_data {info['sigma_data']:.6g}",
        f"- audio: {info['sample_rate']} Hz, {info['hop_length']} samples per duration frame",
        f"- diffusion: ADPM2 + Karras schedule, {info['diffusion_steps']} steps unrolled "
        f"({info['diffusion_steps'] - 1} sampler iterations, both guidance passes always run)",
        f"- phonemes: espeak-ng {info['phonemizer']['espeak_version']} ({info['phonemizer']['language']}); "
        "phonemize with the same version as training",
        "- text normalizer: " + (f"{info['text_normalizer']['name']} version {info['text_normalizer']['version']}, "
                                 f"settings {json.dumps(info['text_normalizer']['settings'])}"
                                 if info.get("text_normalizer") else "none (text is phonemized as written)"),
        f"- exported with torch {info['exported_with']['torch']}"
        + (f", opset {info['exported_with']['opset']}" if info['exported_with']['opset'] else "")
        + f" on {info['exported_with']['date']}; gin config sha256 {info['exported_with']['gin_config_sha256'][:16]}...",
        "- precision: " + ", ".join(f"{name} {_precision(value)}" for name, value in info["precision"].items()),
    ]


def _pipeline_lines(info: dict) -> list[str]:
    """How to drive the graphs, step by step (what styletts2.runtime does)."""
    return [
        "1. tokens = [0] + ids (symbol table in model.json; at most 512 incl. the pad) -> `text_encoder`",
        "2. `diffusion_sampler`(bert, noise ~ N(0,1), step_noises ~ N(0,1), embedding_scale"
        + (", reference_style from `style_encoder`" if info["multispeaker"] else "") + ") -> raw style s; "
        "at embedding_scale 1 (no guidance) `diffusion_sampler_unguided`, the same without the scale input, "
        "computes it in half the time",
        "3. long-form: s = blend * previous + (1 - blend) * s; "
        + "with a reference r (from `style_encoder`): acoustic = alpha * s[:, :S] + (1 - alpha) * r[:, :S], "
          "prosodic = beta * s[:, S:] + (1 - beta) * r[:, S:]; style = [acoustic | prosodic]"
        + ("" if info["multispeaker"] else "; without a reference, style = s"),
        "4. `decoder`(t_en, d_en, style, speed, token_lengths, noise_seed, tail_frames) -> waveform, durations "
        "(tail_frames more on the last token: 5 in upstream's LJSpeech notebook, 0 in its LibriTTS one). "
        "Item b's audio is its first sum(durations[b]) * hop_length"
        + (f" - {info['decoder_noise']['tail_trim']}" if info["decoder_noise"]["tail_trim"] else "")
        + " samples; the rest of a padded batch row is filler.",
        "", f"Defaults: {json.dumps(info['defaults'])}", "",
        "Source noise: " + info["decoder_noise"]["description"],
    ]


_NOTES = [
    "- No lengths are baked in: batch, token and frame axes are dynamic; durations are data-dependent "
    "and the audio length follows them.",
    "- Batches of different lengths are padded: durations are 0 at padding, but the sampler's "
    "transformer averages over every position and the decoder's instance norms see the padded "
    "frames, so a padded item does not sound exactly as it does alone. Synthesize one utterance per "
    "call (or equal lengths) for the reference result.",
    "- The NSF harmonic source is computed in float64 (upstream: float32, whose phase drifts by "
    "~1e-2 rad over 10 s). It integrates F0 over time, so float32 rounding differences in the "
    "predicted F0 between backends grow into small phase differences; the iSTFTNet additionally "
    "reads the raw phase of the source's STFT, where a weak bin near +-pi can flip by 2 pi, a short "
    "local difference. Waveforms of different backends therefore agree closely but not bit for bit: "
    "`export/parity_report.py` shows onnxruntime as far from torch eager as float32 itself is (eager "
    "against float64, or against eager with its inputs moved by one rounding step).",
]


def record_graph_hashes(out_dir: Path, info: dict) -> None:
    """Each graph's sha256 in its model.json entry, and its shared weights file's: the runtime refuses
    files that do not match (styletts2.runtime.model_dir.check_graph_hashes)."""
    for entry in info["graphs"].values():
        for record in (entry, entry.get("weights")):
            if record is not None and (out_dir / record["file"]).is_file():
                with open(out_dir / record["file"], "rb") as stream:
                    record["sha256"] = hashlib.file_digest(stream, "sha256").hexdigest()


def save_model_card(out_dir: Path, info: dict, backend: str,
                    verification: dict[str, dict[str, float]] | None = None) -> None:
    record_graph_hashes(out_dir, info)
    (out_dir / MODEL_JSON).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(readme(info, backend, verification), encoding="utf-8")


def write_model_card(out_dir: Path, loaded: LoadedModel, steps: int, spec: dict, extension: str,
                     opset: int | None, backend: str,
                     verification: dict[str, dict[str, float]] | None = None) -> dict:
    info = model_json(loaded, steps, spec, extension, opset)
    save_model_card(out_dir, info, backend, verification)
    return info
