"""The onnxruntime runtime (`styletts2.runtime`): numpy mel, model-dir checks, the synthesis plumbing
(tokens, noises, style mixing, long form, streaming), the CLI, and that nothing imports torch.

The plumbing runs on a FAKE exported model: tiny ONNX graphs with the export contract's names and
shapes whose outputs are simple functions of their inputs, so every step can be checked exactly.
"""
import hashlib
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from conftest import REPO, voice_like
from styletts2.audio.io import resample
from styletts2.graph_contract import FORMAT_VERSION
from styletts2.runtime import (EspeakVersionWarning, Executor, LogMel, ModelDirError, ProviderError, Synthesizer,
                               SynthesisOptions)
from styletts2.runtime.__main__ import main as runtime_main
from styletts2.runtime.synthesizer import decoder_noise_seed, mix_styles
from styletts2.text.espeak import espeak_version
from styletts2.text.symbols import SYMBOLS

S, C, E, STEPS, HOP = 4, 8, 6, 3, 600  # fake widths: style_dim, hidden, bert hidden; diffusion steps
FRAMES_PER_TOKEN = 2  # the fake decoder's duration for every token at speed 1
TEXT = "The quick brown fox jumps over the lazy dog. It was not amused! Then it left."

# Fake graphs -----------------------------------------------------------------------------------------

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _const(name, values, dtype=np.float32):
    return helper.make_tensor(name, F if dtype == np.float32 else I64, np.shape(values),
                              np.asarray(values, dtype=dtype).ravel().tolist())


def _save(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _fake_text_encoder(path):
    """t_en[b, c, t] = token id, bert[b, t, e] = 0.01 * token id, d_en = t_en / 2."""
    n = helper.make_node
    _save(path, [
        n("Cast", ["tokens"], ["tf"], to=F),
        n("Cast", ["token_lengths"], ["lf"], to=F),
        n("Mul", ["lf", "zero"], ["l0"]),  # lengths used (by zero) so the input stays in the graph
        n("Unsqueeze", ["l0", "axis1"], ["l0b"]),
        n("Add", ["tf", "l0b"], ["tf2"]),
        n("Unsqueeze", ["tf2", "axis1"], ["t1"]), n("Mul", ["t1", "onesC"], ["t_en"]),
        n("Unsqueeze", ["tf2", "axis2"], ["t2"]), n("Mul", ["t2", "bertE"], ["bert"]),
        n("Mul", ["t_en", "half"], ["d_en"]),
    ], [helper.make_tensor_value_info("tokens", I64, ["batch", "tokens"]),
        helper.make_tensor_value_info("token_lengths", I64, ["batch"])],
        [helper.make_tensor_value_info("t_en", F, ["batch", C, "tokens"]),
         helper.make_tensor_value_info("bert", F, ["batch", "tokens", E]),
         helper.make_tensor_value_info("d_en", F, ["batch", C, "tokens"])],
        [_const("zero", 0.0), _const("half", 0.5), _const("onesC", np.ones((1, C, 1))),
         _const("bertE", np.full((1, 1, E), 0.01)), _const("axis1", [1], np.int64),
         _const("axis2", [2], np.int64)])


def fake_style(bert, noise, step_noises, scale, reference=None):
    """What the fake diffusion sampler computes."""
    style = noise[:, 0] + 0.5 * step_noises.sum(0)[:, 0] + scale * bert.mean(axis=(1, 2))[:, None]
    return style + 0.25 * reference if reference is not None else style


def _fake_sampler(path, multispeaker):
    n = helper.make_node
    nodes = [
        n("Squeeze", ["noise", "axis1"], ["n0"]),
        n("ReduceSum", ["step_noises", "axis0"], ["ssum"], keepdims=0),
        n("Squeeze", ["ssum", "axis1"], ["s0"]), n("Mul", ["s0", "half"], ["s1"]),
        n("ReduceMean", ["bert"], ["bm"], axes=[1, 2], keepdims=0),
        n("Unsqueeze", ["bm", "axis1"], ["bm1"]), n("Mul", ["bm1", "embedding_scale"], ["bs"]),
        n("Add", ["n0", "s1"], ["a0"]), n("Add", ["a0", "bs"], ["style" if not multispeaker else "a1"]),
    ]
    inputs = [helper.make_tensor_value_info("bert", F, ["batch", "tokens", E]),
              helper.make_tensor_value_info("noise", F, ["batch", 1, 2 * S]),
              helper.make_tensor_value_info("step_noises", F, [STEPS - 1, "batch", 1, 2 * S]),
              helper.make_tensor_value_info("embedding_scale", F, [])]
    if multispeaker:
        nodes += [n("Mul", ["reference_style", "quarter"], ["r"]), n("Add", ["a1", "r"], ["style"])]
        inputs.append(helper.make_tensor_value_info("reference_style", F, ["batch", 2 * S]))
    _save(path, nodes, inputs, [helper.make_tensor_value_info("style", F, ["batch", 2 * S])],
          [_const("half", 0.5), _const("quarter", 0.25), _const("axis0", [0], np.int64),
           _const("axis1", [1], np.int64)])


UNGUIDED_MARK = 1000.0  # added by the fake one-pass sampler, so a test can tell which sampler ran


def _fake_unguided_sampler(path):
    """fake_style at scale 1, plus UNGUIDED_MARK; no embedding_scale input (single speaker)."""
    n = helper.make_node
    _save(path, [
        n("Squeeze", ["noise", "axis1"], ["n0"]),
        n("ReduceSum", ["step_noises", "axis0"], ["ssum"], keepdims=0),
        n("Squeeze", ["ssum", "axis1"], ["s0"]), n("Mul", ["s0", "half"], ["s1"]),
        n("ReduceMean", ["bert"], ["bm"], axes=[1, 2], keepdims=0), n("Unsqueeze", ["bm", "axis1"], ["bm1"]),
        n("Add", ["n0", "s1"], ["a0"]), n("Add", ["a0", "bm1"], ["a1"]), n("Add", ["a1", "mark"], ["style"]),
    ], [helper.make_tensor_value_info("bert", F, ["batch", "tokens", E]),
        helper.make_tensor_value_info("noise", F, ["batch", 1, 2 * S]),
        helper.make_tensor_value_info("step_noises", F, [STEPS - 1, "batch", 1, 2 * S])],
        [helper.make_tensor_value_info("style", F, ["batch", 2 * S])],
        [_const("half", 0.5), _const("mark", UNGUIDED_MARK), _const("axis0", [0], np.int64),
         _const("axis1", [1], np.int64)])


def _fake_decoder(path):
    """durations = max(1, round(2 / speed)) per token; waveform [B, sum(durations) * 600] filled with
    the style's first (acoustic) value."""
    n = helper.make_node
    _save(path, [
        n("Slice", ["t_en", "zero_i", "one_i", "axis1"], ["t0"]),  # [B, 1, T]
        n("Squeeze", ["t0", "axis1"], ["t0s"]),
        n("Mul", ["t0s", "zero"], ["z"]),
        n("Add", ["z", "two"], ["twos"]), n("Div", ["twos", "speed"], ["dq"]),
        n("Round", ["dq"], ["dr"]), n("Max", ["dr", "one"], ["dm"]),
        n("Cast", ["dm"], ["durations"], to=I64),
        n("ReduceSum", ["durations"], ["total"], keepdims=0),
        n("Mul", ["total", "hop"], ["samples"]), n("Reshape", ["samples", "one_i"], ["samples1"]),
        n("Shape", ["t_en"], ["shape"]), n("Slice", ["shape", "zero_i", "one_i"], ["batch"]),
        n("Concat", ["batch", "samples1"], ["wave_shape"], axis=0),
        n("Slice", ["style", "zero_i", "one_i", "axis1"], ["s0"]),  # [B, 1]
        # inputs the fake does not need, used by zero so they stay graph inputs
        n("ReduceSum", ["d_en"], ["dsum"], keepdims=0), n("Cast", ["token_lengths"], ["lf"], to=F),
        n("ReduceSum", ["lf"], ["lsum"], keepdims=0), n("Cast", ["noise_seed"], ["nf"], to=F),
        n("Cast", ["tail_frames"], ["tf"], to=F), n("Add", ["dsum", "lsum"], ["u0"]), n("Add", ["u0", "nf"], ["ua"]),
        n("Add", ["ua", "tf"], ["u1"]), n("Mul", ["u1", "zero"], ["u2"]),
        n("Add", ["s0", "u2"], ["s1"]),
        n("Expand", ["s1", "wave_shape"], ["waveform"]),
    ], [helper.make_tensor_value_info("t_en", F, ["batch", C, "tokens"]),
        helper.make_tensor_value_info("d_en", F, ["batch", C, "tokens"]),
        helper.make_tensor_value_info("style", F, ["batch", 2 * S]),
        helper.make_tensor_value_info("speed", F, []),
        helper.make_tensor_value_info("token_lengths", I64, ["batch"]),
        helper.make_tensor_value_info("noise_seed", I64, []),
        helper.make_tensor_value_info("tail_frames", I64, [])],
        [helper.make_tensor_value_info("waveform", F, ["batch", "samples"]),
         helper.make_tensor_value_info("durations", I64, ["batch", "tokens"])],
        [_const("zero", 0.0), _const("one", 1.0), _const("two", float(FRAMES_PER_TOKEN)),
         _const("hop", HOP, np.int64), _const("zero_i", [0], np.int64), _const("one_i", [1], np.int64),
         _const("axis1", [1], np.int64)])


def fake_reference_style(mel):
    return mel.mean(axis=(1, 2))[:, None] + 0.01 * np.arange(2 * S, dtype=np.float32)


def _fake_style_encoder(path):
    n = helper.make_node
    _save(path, [n("ReduceMean", ["mel"], ["m"], axes=[1, 2], keepdims=0),
                 n("Unsqueeze", ["m", "axis1"], ["m1"]), n("Add", ["m1", "ramp"], ["reference_style"])],
          [helper.make_tensor_value_info("mel", F, ["batch", 80, "frames"])],
          [helper.make_tensor_value_info("reference_style", F, ["batch", 2 * S])],
          [_const("axis1", [1], np.int64), _const("ramp", 0.01 * np.arange(2 * S)[None])])


def make_fake_model_dir(path, multispeaker=False, with_style_encoder=True, espeak=None, unguided=False,
                        hashes=False):
    """hashes: record each graph's sha256 as exports do (without: an export from before they existed)."""
    path.mkdir(parents=True, exist_ok=True)
    _fake_text_encoder(path / "text_encoder.onnx")
    _fake_sampler(path / "diffusion_sampler.onnx", multispeaker)
    _fake_decoder(path / "decoder.onnx")
    graphs = {name: {"file": f"{name}.onnx"} for name in ("text_encoder", "diffusion_sampler", "decoder")}
    if unguided:
        _fake_unguided_sampler(path / "diffusion_sampler_unguided.onnx")
        graphs["diffusion_sampler_unguided"] = {"file": "diffusion_sampler_unguided.onnx"}
    if multispeaker or with_style_encoder:
        _fake_style_encoder(path / "style_encoder.onnx")
        graphs["style_encoder"] = {"file": "style_encoder.onnx"}
    if hashes:
        for entry in graphs.values():
            entry["sha256"] = hashlib.sha256((path / entry["file"]).read_bytes()).hexdigest()
    info = {
        "format_version": FORMAT_VERSION, "sample_rate": 24000, "hop_length": HOP, "symbols": list(SYMBOLS),
        "pad_id": 0, "apostrophe_id": 176,
        "phonemizer": {"backend": "espeak-ng", "language": "en-us", "espeak_version": espeak or espeak_version(),
                       "preserve_punctuation": True, "with_stress": True},
        "multispeaker": multispeaker, "style_dim": S, "decoder_type": "istftnet", "sigma_data": 0.2,
        "diffusion_steps": STEPS, "bert_max_positions": 512,
        "defaults": {"embedding_scale": 1.0, "alpha": 0.3, "beta": 0.7, "speed": 1.0, "blend": 0.7,
                     "tail_frames": 5},
        "mel": {"n_fft": 2048, "win_length": 1200, "hop_length": 300, "n_mels": 80,
                "filterbank_sample_rate": 16000, "f_min": 0, "f_max": 8000, "mean": -4.0, "std": 4.0,
                "htk": True, "log_offset": 1e-5},
        "decoder_noise": {"scheme": "fake"}, "graphs": graphs, "exported_with": {"styletts2": "test"},
    }
    (path / "model.json").write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


class Recorder(Executor):
    """Wraps an executor and keeps the inputs each graph was run with, per graph name (the sampler
    under "sampler", whichever of the two ran)."""

    def __init__(self, executor):
        self.executor, self.calls = executor, {}

    def has_graph(self, graph):
        return self.executor.has_graph(graph)

    def run(self, graph, feeds):
        outputs = self.executor.run(graph, feeds)
        name = "sampler" if graph.startswith("diffusion_sampler") else graph
        self.calls.setdefault(name, []).append({k: feeds[k] for k in self.executor.session(graph).input_names})
        return outputs


@pytest.fixture(scope="module")
def single_dir(tmp_path_factory):
    return make_fake_model_dir(tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory):
    return make_fake_model_dir(tmp_path_factory.mktemp("multi"), multispeaker=True)


@pytest.fixture(scope="module")
def synth(single_dir):
    return Synthesizer(single_dir, providers="cpu", threads=1)


@pytest.fixture(scope="module")
def multi(multi_dir):
    return Synthesizer(multi_dir, providers="cpu", threads=1)


# Mel -------------------------------------------------------------------------------------------------

def test_numpy_mel_matches_torch_front_end():
    import torch

    from styletts2.audio.mel import LogMelSpectrogram, mel_filterbank
    from styletts2.runtime.mel import mel_filterbank as np_filterbank

    assert np.abs(np_filterbank() - mel_filterbank().numpy()).max() < 2e-6  # torch's pow is 1 ulp off once
    rng = np.random.default_rng(1)
    waves = [voice_like(1.5), (0.1 * rng.standard_normal(20001)).astype(np.float32),
             (1e-4 * rng.standard_normal(30000)).astype(np.float32)]
    ours, theirs = LogMel(), LogMelSpectrogram()
    for wave in waves:
        want = theirs(torch.from_numpy(wave)).numpy()
        got = ours(wave)
        assert got.dtype == np.float32 and got.shape == want.shape == (80, len(wave) // 300 + 1)
        assert np.abs(got - want).max() < 1e-5
    batch = np.stack([waves[0][:20001], waves[1]])
    assert np.abs(ours(batch) - theirs(torch.from_numpy(batch)).numpy()).max() < 1e-5
    with pytest.raises(ValueError, match="too short"):
        ours(np.zeros(1024, np.float32))
    with pytest.raises(ValueError, match="HTK"):
        LogMel(htk=False)


# Plumbing --------------------------------------------------------------------------------------------

def test_tokens_noises_and_decoder_inputs(synth, monkeypatch):
    recorder = Recorder(synth.executor)
    monkeypatch.setattr(synth, "executor", recorder)
    pieces = list(synth.synthesize_pieces(TEXT, seed=11, speed=2.0, embedding_scale=1.5))
    token_pieces = synth.text_to_token_pieces(TEXT)
    assert len(pieces) == len(token_pieces) == 3  # one per sentence

    root = np.random.SeedSequence(11)
    rng = np.random.default_rng(11)  # an int seed and SeedSequence(seed) seed the same Generator
    previous = None
    calls = zip(recorder.calls["sampler"], recorder.calls["decoder"])
    for index, (piece, ids, (s_in, d_in)) in enumerate(zip(pieces, token_pieces, calls)):
        tokens = np.array([[0, *ids]])
        # noise, then the step noises, drawn piece after piece from the one seeded Generator
        noise = rng.standard_normal((1, 1, 2 * S), dtype=np.float32)
        step_noises = rng.standard_normal((STEPS - 1, 1, 1, 2 * S), dtype=np.float32)
        assert np.array_equal(s_in["noise"], noise) and np.array_equal(s_in["step_noises"], step_noises)
        assert s_in["embedding_scale"].dtype == np.float32 and s_in["embedding_scale"].shape == ()
        assert np.allclose(s_in["bert"][0, :, 0], 0.01 * tokens[0])  # the fake encodes token ids
        sampled = fake_style(s_in["bert"], noise, step_noises, 1.5)
        assert np.allclose(piece.sampled_style, sampled, atol=1e-6)
        expected = sampled if previous is None else 0.7 * previous + 0.3 * sampled
        assert np.allclose(piece.style, expected, atol=1e-6)
        assert np.array_equal(d_in["style"], piece.style)
        assert d_in["speed"].dtype == np.float32 and d_in["speed"] == 2.0
        assert np.array_equal(d_in["token_lengths"], [tokens.shape[1]])
        assert d_in["noise_seed"].dtype == np.int64 and d_in["noise_seed"] == decoder_noise_seed(root, index)
        assert piece.noise_seed == int(d_in["noise_seed"])
        assert d_in["tail_frames"].dtype == np.int64 and d_in["tail_frames"] == 5  # model.json's default
        assert np.array_equal(d_in["t_en"][0, 0], tokens[0])
        assert piece.durations.tolist() == [1] * tokens.shape[1]  # round(2 / speed 2)
        assert piece.wave.dtype == np.float32 and piece.wave.shape == (tokens.shape[1] * HOP,)
        assert np.allclose(piece.wave, piece.style[0, 0])
        previous = piece.style
    assert len({p.noise_seed for p in pieces}) == 3


def test_scale_1_runs_the_one_pass_sampler_where_exported(synth, tmp_path):
    """Exports have `diffusion_sampler_unguided` for embedding_scale 1; older ones (the `synth`
    fixture) only the guided sampler, which then runs at every scale."""
    with_unguided = Synthesizer(make_fake_model_dir(tmp_path / "m", unguided=True), providers="cpu", threads=1)
    assert "diffusion_sampler" not in with_unguided.executor.sessions  # opened when a call asks for guidance
    for runtime, scale, mark in ((with_unguided, 1.0, UNGUIDED_MARK), (with_unguided, 1.5, 0.0), (synth, 1.0, 0.0)):
        piece = next(runtime.synthesize_pieces("Hello there.", seed=2, embedding_scale=scale))
        rng = np.random.default_rng(2)
        noise = rng.standard_normal((1, 1, 2 * S), dtype=np.float32)
        step_noises = rng.standard_normal((STEPS - 1, 1, 1, 2 * S), dtype=np.float32)
        bert = 0.01 * np.array([[0, *runtime.text_to_token_pieces("Hello there.")[0]]], dtype=np.float32)[..., None]
        expected = fake_style(np.repeat(bert, E, axis=2), noise, step_noises, scale) + mark
        assert np.allclose(piece.sampled_style, expected, atol=1e-4), (scale, mark)


def test_seed_repeats_audio_and_stream_equals_synthesize(synth):
    a = synth.synthesize(TEXT, seed=3)
    assert a.dtype == np.float32 and a.ndim == 1
    assert np.array_equal(a, synth.synthesize(TEXT, seed=3))
    assert not np.array_equal(a, synth.synthesize(TEXT, seed=4))
    chunks = list(synth.stream(TEXT, seed=3))
    assert len(chunks) == 3 and np.array_equal(np.concatenate(chunks), a)
    slow = synth.synthesize("Slow down.", seed=0, speed=0.5)
    assert len(slow) == 2 * len(synth.synthesize("Slow down.", seed=0))  # durations 4 instead of 2


def test_long_sentence_is_split_into_bert_windows(synth):
    words = " ".join(["banana"] * 150)  # one sentence of ~1000 phoneme tokens
    pieces = synth.text_to_token_pieces(words)
    assert len(pieces) >= 2 and all(len(p) + 1 <= 512 for p in pieces)
    joined = [t for p in pieces for t in p + [16]][:-1]  # windows are cut at (dropped) spaces
    assert joined == synth.tokenizer.encode(synth.phonemizer(words), add_bos=False, add_eos=False)
    assert len(list(synth.stream(words, seed=0))) == len(pieces)
    with pytest.raises(ValueError, match="exceed"):
        synth.synthesize_tokens([40] * 600, synth.options, np.random.default_rng(0), 0)


def test_reference_mixing_multispeaker(multi, tmp_path):
    wave = voice_like(2.0)
    silence = np.zeros(12000, np.float32)
    padded = np.concatenate([silence, wave, silence])
    style = multi.reference_style(padded)
    import librosa

    trimmed, _ = librosa.effects.trim(padded, top_db=30)
    assert len(trimmed) < len(padded) - 20000  # the silence went
    assert np.allclose(style, fake_reference_style(LogMel()(trimmed)[None]), atol=1e-6)
    path = tmp_path / "ref.wav"
    sf.write(path, padded, 24000, subtype="FLOAT")
    assert np.allclose(multi.reference_style(path), style, atol=1e-6)
    upsampled = librosa.resample(padded, orig_sr=24000, target_sr=48000)  # samples at another rate
    back = resample(upsampled, 48000, 24000).astype(np.float32)
    assert np.array_equal(multi.reference_style(upsampled, sample_rate=48000), multi.reference_style(back))

    pieces = list(multi.synthesize_pieces("First one. Second one.", reference=path, seed=5, alpha=0.2, beta=0.6))
    options = SynthesisOptions(alpha=0.2, beta=0.6)
    previous = None
    for piece in pieces:
        blended = piece.sampled_style if previous is None else 0.7 * previous + 0.3 * piece.sampled_style
        acoustic = 0.2 * blended[:, :S] + 0.8 * style[:, :S]
        prosodic = 0.6 * blended[:, S:] + 0.4 * style[:, S:]
        assert np.allclose(piece.style, np.concatenate([acoustic, prosodic], 1), atol=1e-6)
        assert np.array_equal(piece.style, mix_styles(piece.sampled_style, previous, style, options, S))
        previous = piece.style
    # a precomputed [1, 2S] style stands for the clip
    assert np.array_equal(multi.synthesize("Hi there.", reference=style, seed=1),
                          multi.synthesize("Hi there.", reference=path, seed=1))


def test_single_speaker_model_mixes_a_reference_without_conditioning_on_it(synth):
    clip = voice_like(1.5)
    style = synth.reference_style(clip)
    [piece] = synth.synthesize_pieces("Hello there.", reference=clip, seed=0, alpha=0.5, beta=0.25)
    plain = next(synth.synthesize_pieces("Hello there.", seed=0))
    assert np.array_equal(piece.sampled_style, plain.sampled_style)  # the sampler takes no reference
    expected = np.concatenate([0.5 * plain.sampled_style[:, :S] + 0.5 * style[:, :S],
                               0.25 * plain.sampled_style[:, S:] + 0.75 * style[:, S:]], 1)
    assert np.allclose(piece.style, expected, atol=1e-6)


def test_bad_calls(synth, multi):
    with pytest.raises(ValueError, match="multispeaker"):
        multi.synthesize("Hello.")
    with pytest.raises(ValueError, match="after trimming"):
        multi.synthesize("Hello.", reference=voice_like(0.5))
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        multi.synthesize("Hello.", reference=np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("   ")
    for seed in (-1, True, 1.0):  # a bool is a slip, as for the options
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            synth.synthesize("Hello.", seed=seed)
    with pytest.raises(ValueError, match="speed"):
        synth.synthesize("Hello.", speed=0)
    with pytest.raises(TypeError):
        synth.synthesize("Hello.", temperature=2.0)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        multi.synthesize("Hello.", reference="nope.wav")


# Model directory and sessions ------------------------------------------------------------------------

def _edit_json(directory, **changes):
    path = directory / "model.json"
    info = json.loads(path.read_text(encoding="utf-8"))
    info.update(changes)
    path.write_text(json.dumps(info), encoding="utf-8")


def test_model_dir_errors_name_the_file(tmp_path):
    with pytest.raises(ModelDirError, match="not found"):
        Synthesizer(tmp_path / "missing")
    with pytest.raises(ModelDirError, match="model.json not found"):
        Synthesizer(tmp_path)

    def fresh(name, **kwargs):
        return make_fake_model_dir(tmp_path / name, **kwargs)

    d = fresh("json")
    (d / "model.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(ModelDirError, match="model.json is not valid JSON"):
        Synthesizer(d)
    d = fresh("version")
    _edit_json(d, format_version=FORMAT_VERSION - 1)
    with pytest.raises(ModelDirError, match=f"format_version {FORMAT_VERSION - 1}"):
        Synthesizer(d)
    d = fresh("field")
    info = json.loads((d / "model.json").read_text(encoding="utf-8"))
    del info["diffusion_steps"]
    (d / "model.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(ModelDirError, match="model.json: missing field 'diffusion_steps'"):
        Synthesizer(d)
    d = fresh("type")
    _edit_json(d, multispeaker="yes")
    with pytest.raises(ModelDirError, match="'multispeaker' must be bool"):
        Synthesizer(d)
    d = fresh("symbols")
    _edit_json(d, symbols=list(SYMBOLS[:100]))
    with pytest.raises(ModelDirError, match="symbols"):
        Synthesizer(d)
    d = fresh("mel")
    _edit_json(d, mel={"n_fft": 2048, "win_length": 1200, "hop_length": 300, "n_mels": 80,
                       "filterbank_sample_rate": 16000, "f_min": 0, "f_max": 8000, "mean": -4.0, "std": 4.0,
                       "htk": False, "log_offset": 1e-5})
    with pytest.raises(ModelDirError, match="model.json: field 'mel': only the HTK"):
        Synthesizer(d)
    d = fresh("graph_file")
    (d / "decoder.onnx").unlink()
    with pytest.raises(ModelDirError, match="decoder.onnx not found"):
        Synthesizer(d)
    d = fresh("corrupt")
    (d / "decoder.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="decoder.onnx: onnxruntime cannot load"):
        Synthesizer(d)
    d = fresh("wrong_graph")
    (d / "decoder.onnx").write_bytes((d / "text_encoder.onnx").read_bytes())
    with pytest.raises(ModelDirError, match="decoder.onnx: graph inputs"):
        Synthesizer(d)
    d = fresh("ms_flag")  # a single-speaker sampler in a directory that claims multispeaker
    _edit_json(d, multispeaker=True)
    with pytest.raises(ModelDirError, match="diffusion_sampler.onnx: graph inputs"):
        Synthesizer(d)
    d = fresh("no_style_encoder", with_style_encoder=False)
    synth = Synthesizer(d, providers="cpu")
    with pytest.raises(ModelDirError, match="no style_encoder"):
        synth.synthesize("Hello.", reference=voice_like(1.0))


def test_an_executor_without_a_graph_is_refused_at_start(single_dir):
    class NoDecoder(Recorder):
        def has_graph(self, graph):
            return graph != "decoder" and super().has_graph(graph)

    with pytest.raises(ValueError, match="executor has no decoder graph"):
        Synthesizer(single_dir, executor=NoDecoder(Synthesizer(single_dir, providers="cpu").executor))


def test_providers_threads_and_options(single_dir):
    synth = Synthesizer(single_dir, providers=["CPUExecutionProvider"], threads=2)
    assert synth.executor.session("decoder").providers == ["CPUExecutionProvider"]
    assert synth.executor.device == "CPUExecutionProvider"
    options = synth.executor.session_options
    assert options.intra_op_num_threads == 2
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    custom = ort.SessionOptions()
    custom.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    synth = Synthesizer(single_dir, providers="cpu", session_options=custom)
    assert synth.executor.session_options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderError, match="onnxruntime-gpu"):
            Synthesizer(single_dir, providers="cuda")
        assert Synthesizer(single_dir).executor.providers == ["CPUExecutionProvider"]  # auto
    with pytest.raises(ProviderError, match="not available"):
        Synthesizer(single_dir, providers="TensorrtExecutionProvider")


def test_espeak_version_mismatch_warns(tmp_path):
    d = make_fake_model_dir(tmp_path / "old", espeak="1.51.1")
    with pytest.warns(EspeakVersionWarning, match="1.51.1"):
        Synthesizer(d, providers="cpu")
    d = make_fake_model_dir(tmp_path / "same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Synthesizer(d, providers="cpu")


# CLI -------------------------------------------------------------------------------------------------

def test_cli_writes_wav_and_stream_gives_the_same(single_dir, synth, tmp_path, capsys):
    out, streamed = tmp_path / "hello.wav", tmp_path / "stream.wav"
    # the fake's samples are its style values, some beyond [-1, 1]: both paths clip them, and say so
    with pytest.warns(UserWarning, match="clipped"):
        assert runtime_main([TEXT, "-m", str(single_dir), "-o", str(out), "--seed", "2", "--provider", "cpu"]) == 0
    with pytest.warns(UserWarning, match="clipped"):
        assert runtime_main([TEXT, "-m", str(single_dir), "-o", str(streamed), "--seed", "2", "--stream"]) == 0
    a, sr = sf.read(out, dtype="float32")
    b, _ = sf.read(streamed, dtype="float32")
    assert sr == 24000 and np.array_equal(a, b)
    expected = np.clip(synth.synthesize(TEXT, seed=2), -1, 1)
    assert len(a) == len(expected) and np.abs(a - expected).max() < 1e-4  # PCM-16 rounding
    assert "RTF" in capsys.readouterr().out
    assert runtime_main(["Hi.", "-m", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    assert "model directory not found" in capsys.readouterr().err
    assert runtime_main(["Hi.", "-m", str(single_dir / "model.json"), "-o", str(out)]) == 2
    assert "model.json is a file: give the exported model's folder" in capsys.readouterr().err
    assert runtime_main(["Hi.", "-m", str(single_dir), "-o", str(out), "--threads", "0"]) == 2
    assert "threads must be an integer of at least 1, got 0" in capsys.readouterr().err


def test_cli_reads_the_text_from_a_file_or_stdin(single_dir, tmp_path, capsys, monkeypatch):
    import io

    argv = ["-m", str(single_dir), "--seed", "2"]
    assert runtime_main([TEXT, *argv, "-o", str(tmp_path / "arg.wav")]) == 0
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    assert runtime_main(["-f", str(tmp_path / "text.txt"), *argv, "-o", str(tmp_path / "file.wav")]) == 0
    (tmp_path / "bom.txt").write_text(TEXT, encoding="utf-8-sig")  # a byte-order mark is not text to drop
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert runtime_main(["-f", str(tmp_path / "bom.txt"), *argv, "-o", str(tmp_path / "bom.wav")]) == 0
    assert not [w for w in caught if "FEFF" in str(w.message)]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(TEXT.encode("utf-8-sig"))))
    assert runtime_main(["-f", "-", *argv, "-o", str(tmp_path / "stdin.wav")]) == 0
    expected = sf.read(tmp_path / "arg.wav")[0]
    for name in ("file.wav", "bom.wav", "stdin.wav"):
        assert np.array_equal(sf.read(tmp_path / name)[0], expected)
    capsys.readouterr()
    out = str(tmp_path / "x.wav")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    for args, message in [([*argv, "-o", out], "no text: give it"),
                          (["Hi.", "-f", str(tmp_path / "text.txt"), *argv, "-o", out], "not both"),
                          (["-f", str(tmp_path / "missing.txt"), *argv, "-o", out], "No such file"),
                          (["-f", str(tmp_path / "latin1.txt"), *argv, "-o", out], "is not UTF-8 text (byte 3")]:
        assert runtime_main(args) == 2
        assert message in capsys.readouterr().err


def test_cli_stream_writes_nothing_when_synthesis_fails(single_dir, tmp_path, capsys, monkeypatch):
    """A bad option, reference or text, or a failure after the first sentence, leaves an existing
    output file as it was and no temporary file beside it."""
    from styletts2.runtime import __main__ as cli

    out = tmp_path / "keep.wav"
    out.write_bytes(b"an earlier take")
    sf.write(tmp_path / "silent.wav", np.zeros(48000, np.float32), 24000)
    argv = ["-m", str(single_dir), "-o", str(out), "--stream", "--seed", "0"]
    for extra in (["Hello.", "--speed", "9"], ["Hello.", "--reference", str(tmp_path / "silent.wav")], ["?!"]):
        assert runtime_main([*extra, *argv]) == 2
        assert out.read_bytes() == b"an earlier take"

    class FailsAtTheSecondSentence(Synthesizer):
        def stream(self, *args, **kwargs):
            chunks = super().stream(*args, **kwargs)
            return (chunk if index == 0 else 1 / 0 for index, chunk in enumerate(chunks))

    monkeypatch.setattr(cli, "Synthesizer", FailsAtTheSecondSentence)
    with pytest.raises(ZeroDivisionError):
        runtime_main([TEXT, *argv])
    assert out.read_bytes() == b"an earlier take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav", "silent.wav"]
    capsys.readouterr()


def test_cli_stream_creates_the_output_folders_as_a_whole_write_does(single_dir, tmp_path):
    argv = [TEXT, "-m", str(single_dir), "--seed", "2"]
    with pytest.warns(UserWarning, match="clipped"):
        assert runtime_main([*argv, "-o", str(tmp_path / "whole" / "sub" / "x.wav")]) == 0
    with pytest.warns(UserWarning, match="clipped"):
        assert runtime_main([*argv, "-o", str(tmp_path / "streamed" / "sub" / "x.wav"), "--stream"]) == 0
    assert np.array_equal(sf.read(tmp_path / "streamed" / "sub" / "x.wav")[0],
                          sf.read(tmp_path / "whole" / "sub" / "x.wav")[0])


def test_more_threads_than_cpus_warn(single_dir, monkeypatch):
    from styletts2.runtime import ThreadCountWarning, model_dir

    monkeypatch.setattr(model_dir, "usable_cpus", lambda: 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ThreadCountWarning)
        Synthesizer(single_dir, threads=2)  # as many as there are: no warning
    # 3 against a patched 2: a real 1000 opened thousands of threads and took 40 s of both cores
    with pytest.warns(ThreadCountWarning, match="threads 3 is more than the 2 CPUs"):
        Synthesizer(single_dir, threads=3)


# No torch --------------------------------------------------------------------------------------------

def test_runtime_runs_with_torch_absent(multi_dir, tmp_path):
    """Import and synthesize (reference clip, CLI) with `import torch` made to fail."""
    wave = voice_like(1.5)
    sf.write(tmp_path / "ref.wav", wave, 24000)
    script = textwrap.dedent(f"""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import styletts2.runtime
        from styletts2.runtime.__main__ import main
        synth = styletts2.runtime.Synthesizer({str(multi_dir)!r}, providers="cpu")
        audio = synth.synthesize("Hello there. Bye now.", reference={str(tmp_path / 'ref.wav')!r}, seed=0)
        assert audio.size > 0
        code = main(["Hello.", "-m", {str(multi_dir)!r}, "-o", {str(tmp_path / 'out.wav')!r},
                     "--reference", {str(tmp_path / 'ref.wav')!r}, "--stream"])
        assert code == 0, code
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchaudio")))
        assert not loaded, loaded
        try:  # the blocker did block
            import torch
        except ImportError:
            pass
        else:
            raise AssertionError("torch imported despite the blocker")
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]
    assert (tmp_path / "out.wav").is_file()
