"""ONNX / TorchScript export (export/): graphs, model.json, parity with torch eager, dynamic lengths,
and the onnxruntime runtime (styletts2.runtime) on those exports against the torch synthesizer.

Two tiny models are exported once per session through the command line: a single-speaker iSTFTNet
model from one of our checkpoints, and a multispeaker HiFi-GAN model from an upstream-layout checkpoint
(no gin config, `module.` prefixes) with --config. Their F0 projection is shifted up so the harmonic
source is voiced (random F0 sits below the voicing threshold and would leave that path untested).
"""
import argparse
import hashlib
import json
import math
from pathlib import Path

import gin
import librosa
import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from conftest import voice_like
from styletts2.export import to_onnx, to_torchscript
from styletts2.export.common import build_random_model, graphs_for, io_spec, load_for_export
from styletts2.export.parity_report import SAMPLED_STYLE, batch_tokens, chain, chain_feeds, fidelity_reference, \
    graph_outputs, item_waves, snr_db, step_noises_from
from styletts2.export.shared_weights import MIN_BYTES
from styletts2.graphs import ExportableSineGen, ExportableSTFT, MaskedBiLSTM, alignment_matrix, atan2, noise_direction, \
    seeded_normal, source_noise
from styletts2.audio.io import load_wav
from styletts2.audio.mel import log_mel_spectrogram
from styletts2.checkpoint import atomic_save, make_checkpoint
from styletts2.graph_contract import FORMAT_VERSION, GRAPH_METADATA
from styletts2.inference import TorchSynthesizer
from styletts2.modules.masks import packed_lstm
from styletts2.modules.nsf import SineGen
from styletts2.modules.stft import STFT
from styletts2.runtime import OnnxExecutor, Synthesizer, read_model_json
from styletts2.torch_executor import TorchExecutor

REPO = Path(__file__).resolve().parents[1]
STEPS = 4
F0_BIAS = 150.0  # Hz


def _voiced_random_model(gin_file: str):
    model = build_random_model(str(REPO / gin_file), seed=0)
    with torch.no_grad():
        model.predictor.F0_proj.bias += F0_BIAS
    return model


def _export(tmp: Path, checkpoint: Path, config: list[str]) -> dict:
    args = ["--checkpoint", str(checkpoint), "--steps", str(STEPS), "--no-verify"]
    for gin_file in config:
        args += ["--config", gin_file]
    assert to_onnx.main(args + ["--out", str(tmp / "onnx")]) == 0
    assert to_torchscript.main(args + ["--out", str(tmp / "ts")]) == 0
    gin.clear_config()
    namespace = argparse.Namespace(checkpoint=str(checkpoint), random_init=None, config=config, gin_param=[],
                                   steps=STEPS, seed=0)
    loaded = load_for_export(namespace)
    gin.clear_config()
    graphs = graphs_for(loaded.model, STEPS)
    spec = io_spec(loaded.model, STEPS)
    return {"dir": tmp, "model": loaded.model, "graphs": graphs, "spec": spec, "checkpoint": checkpoint,
            "config": config, "eager": TorchExecutor(graphs, loaded.model.multispeaker),
            "onnx": OnnxExecutor(read_model_json(tmp / "onnx"), "cpu", threads=1),
            "ts": TorchExecutor.torchscript(read_model_json(tmp / "ts"))}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """Our checkpoint format (operative gin config inside), tiny iSTFTNet model."""
    tmp = tmp_path_factory.mktemp("single")
    gin.clear_config()
    model = _voiced_random_model("gin/model/tiny.gin")
    checkpoint = atomic_save(make_checkpoint(model.nets, gin_config=gin.config_str()), tmp / "tiny.pth")
    return _export(tmp, checkpoint, [])


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """Upstream's checkpoint layout (no config, `module.` prefixes), tiny multispeaker HiFi-GAN model."""
    tmp = tmp_path_factory.mktemp("multi")
    gin.clear_config()
    model = _voiced_random_model("gin/model/tiny_multispeaker.gin")
    net = {name: {f"module.{k}": v for k, v in m.state_dict().items()} for name, m in model.nets.items()}
    checkpoint = atomic_save({"net": net, "optimizer": None, "epoch": 1, "iters": 1}, tmp / "upstream.pth")
    return _export(tmp, checkpoint, [str(REPO / "gin/model/tiny_multispeaker.gin")])


def _case(exp, lengths, seed=0, tail_frames=0):
    """Feeds of one synthesis (`chain_feeds`): a batch of random token sequences (lengths exclude the
    leading pad), the sampler's noises and, multispeaker, a reference mel."""
    rng = np.random.default_rng(seed)
    ids = [rng.integers(1, 178, n).tolist() for n in lengths]
    S2, B = 2 * exp["model"].style_dim, len(lengths)
    noise = rng.standard_normal((B, 1, S2), dtype=np.float32)
    step_noises = rng.standard_normal((STEPS - 1, B, 1, S2), dtype=np.float32)
    mel = rng.standard_normal((B, 80, 71 + 37 * seed), dtype=np.float32) - 4 if exp["model"].multispeaker else None
    # speed 4: the random duration head gives ~10 frames per token, keep the audio short
    return chain_feeds(*batch_tokens(ids), noise, step_noises, 1.0, 4.0, seed, mel, tail_frames)


def _max_abs(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


# model.json and the files ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["single", "multi"])
def test_model_json_follows_the_contract(which, request):
    exp = request.getfixturevalue(which)
    multispeaker = which == "multi"
    for sub, ext in (("onnx", "onnx"), ("ts", "pt")):
        info = json.loads((exp["dir"] / sub / "model.json").read_text(encoding="utf-8"))
        assert info["format_version"] == FORMAT_VERSION and info["sample_rate"] == 24000 and info["hop_length"] == 600
        assert len(info["symbols"]) == 178 and info["pad_id"] == 0 and info["apostrophe_id"] == 176
        assert info["symbols"][176] == "'"
        assert info["phonemizer"]["backend"] == "espeak-ng" and info["phonemizer"]["with_stress"] is True
        assert info["multispeaker"] is multispeaker and info["style_dim"] == 32
        assert info["decoder_type"] == ("hifigan" if multispeaker else "istftnet")
        assert info["diffusion_steps"] == STEPS and info["bert_max_positions"] == 512
        assert info["defaults"] == {"embedding_scale": 1.0, "alpha": 0.3, "beta": 0.7, "speed": 1.0, "blend": 0.7,
                                    "tail_frames": 0 if multispeaker else 5}  # upstream's notebooks
        assert info["mel"]["n_fft"] == 2048 and info["mel"]["hop_length"] == 300
        assert info["decoder_noise"]["scheme"] == "feistel16-box-muller-v2-merged"
        # single-speaker models ship a style encoder too, for reference clips
        expected = {"text_encoder", "diffusion_sampler", "diffusion_sampler_unguided", "decoder", "style_encoder"}
        assert set(info["graphs"]) == expected
        assert info["exported_with"]["checkpoint"] == exp["checkpoint"].name
        assert len(info["exported_with"]["gin_config_sha256"]) == 64
        assert (exp["dir"] / sub / "README.md").read_text(encoding="utf-8").startswith("# StyleTTS2 export")
        for name, graph in info["graphs"].items():
            assert graph["file"] == f"{name}.{ext}" and (exp["dir"] / sub / graph["file"]).is_file()
            assert graph["sha256"] == hashlib.sha256((exp["dir"] / sub / graph["file"]).read_bytes()).hexdigest()
        assert sorted(p.name for p in exp["dir"].iterdir() if p.name.startswith(".")) == []  # no staging left
    reference = ["reference_style"] if multispeaker else []
    sampler_inputs = [t["name"] for t in info["graphs"]["diffusion_sampler"]["inputs"]]
    assert sampler_inputs == ["bert", "noise", "step_noises", "embedding_scale"] + reference
    unguided_inputs = [t["name"] for t in info["graphs"]["diffusion_sampler_unguided"]["inputs"]]
    assert unguided_inputs == ["bert", "noise", "step_noises"] + reference


@pytest.mark.parametrize("which", ["single", "multi"])
def test_onnx_files_have_the_declared_io(which, request):
    exp = request.getfixturevalue(which)
    info = json.loads((exp["dir"] / "onnx" / "model.json").read_text(encoding="utf-8"))
    assert info["exported_with"]["opset"] >= 17
    for name, graph in info["graphs"].items():
        proto = onnx.load(str(exp["dir"] / "onnx" / graph["file"]), load_external_data=False)
        assert [i.name for i in proto.graph.input] == [t["name"] for t in graph["inputs"]]
        assert [o.name for o in proto.graph.output] == [t["name"] for t in graph["outputs"]]
        for declared, actual in zip(graph["inputs"] + graph["outputs"], list(proto.graph.input) + list(proto.graph.output)):
            dims = actual.type.tensor_type.shape.dim
            shape = [d.dim_param if d.dim_param else d.dim_value for d in dims]
            assert shape == declared["shape"], (name, declared["name"])
        # the model.json fields the graph fixes, recorded in it for the runtime to compare
        recorded = {entry.key: entry.value for entry in proto.metadata_props}
        assert recorded == {key: str(info[key]) for key in GRAPH_METADATA.get(name, ())}, name


def test_no_weight_is_stored_twice(single, tmp_path):
    """The samplers' shared transformer is stored once (`shared_weights.bin`, ONNX external data): no
    initializer of MIN_BYTES or more is in two files. (The parity tests here run on these files.)
    A folder without the file, or with another one, is refused at load."""
    import shutil

    from styletts2.runtime.model_dir import ModelDirError

    folder = single["dir"] / "onnx"
    info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert {name for name, graph in info["graphs"].items() if "weights" in graph} == \
        {"diffusion_sampler", "diffusion_sampler_unguided"}
    weights = folder / info["graphs"]["diffusion_sampler"]["weights"]["file"]
    assert info["graphs"]["diffusion_sampler"]["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    seen, external = {}, 0
    for name, graph in info["graphs"].items():
        for tensor in onnx.load(str(folder / graph["file"]), load_external_data=False).graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                external += 1
            elif len(tensor.raw_data) >= MIN_BYTES:
                digest = hashlib.sha256(tensor.raw_data).hexdigest()
                assert digest not in seen, f"{name}: {tensor.name} is also in {seen[digest]}"
                seen[digest] = name
    assert external > 10
    copy = shutil.copytree(folder, tmp_path / "copy")
    (copy / weights.name).write_bytes(weights.read_bytes()[:-1] + b"x")
    config = read_model_json(copy)  # the weights file is hashed when a sampler opens
    with pytest.raises(ModelDirError, match="weights.sha256"):
        OnnxExecutor(config, "cpu").session("diffusion_sampler")
    (copy / weights.name).unlink()
    with pytest.raises(ModelDirError, match="copy the whole exported folder"):
        read_model_json(copy)


# Parity, lengths other than the traced ones ---------------------------------------------------------

# Per-output tolerances of onnxruntime against eager (float32 op-by-op differences).
ONNX_TOL = {"t_en": 1e-5, "bert": 1e-5, "d_en": 1e-5, "style": 1e-4, "reference_style": 1e-4}


@pytest.mark.parametrize("which", ["single", "multi"])
@pytest.mark.parametrize("lengths", [(7,), (40,), (29, 5, 16)], ids=["7", "40", "batch3"])
def test_exported_graphs_match_eager(which, lengths, request):
    exp = request.getfixturevalue(which)
    hop, trim = 600, (50 if which == "multi" else 0)
    feeds = _case(exp, lengths, seed=len(lengths), tail_frames=5)
    ref = chain(exp["eager"], feeds)
    ref_waves = item_waves(ref, hop, trim)
    graphs = ["text_encoder", "diffusion_sampler", *(["style_encoder"] if "mel" in feeds else [])]
    for backend, exact in ((exp["ts"], True), (exp["onnx"], False)):
        out = chain(backend, feeds)
        for graph in graphs:
            for name, want in graph_outputs(graph, ref).items():
                got = graph_outputs(graph, out)[name]
                assert _max_abs(want, got) <= (1e-6 if exact else ONNX_TOL[name]), (backend.name, name)
        assert np.array_equal(out["durations"], ref["durations"]), backend.name
        for want, got in zip(ref_waves, item_waves(out, hop, trim)):
            if exact:
                assert _max_abs(want, got) <= 1e-6
            else:
                _assert_close_waveforms(want, got, istftnet=which == "single")


def _assert_close_waveforms(want: np.ndarray, got: np.ndarray, istftnet: bool) -> None:
    """onnxruntime's waveform against eager.

    The predicted F0 differs by float32 rounding (~1e-6 relative) and the NSF source integrates it
    over time into a slowly growing phase difference (HiFi-GAN: measured 65-110 dB SNR here). The
    iSTFTNet also reads the raw STFT phase of that source: a low-magnitude bin whose phase sits near
    +-pi can flip by 2 pi, a burst a few frames long. So there: most frames equal to ~1e-3, a few
    frames (about one burst per 10 frames at most) may be off.
    """
    if not istftnet:
        assert snr_db(want, got) > 40
        return
    frames = np.abs(want - got)[: want.size // 600 * 600].reshape(-1, 600).max(axis=1)
    off = int((frames > 1e-2).sum())
    assert np.median(frames) < 2e-3 and off <= 4 + len(frames) // 10, (snr_db(want, got), frames)


def test_padding_gives_no_frames_and_audio_length_follows_durations(single):
    feeds = _case(single, (29, 5, 16), seed=3)
    out = chain(single["onnx"], feeds)
    wave, durations = out["waveform"], out["durations"]
    for i, n in enumerate(feeds["token_lengths"].tolist()):
        assert (durations[i, :n] >= 1).all() and (durations[i, n:] == 0).all()
    assert wave.shape[1] == int(durations.sum(axis=1).max()) * 600


@pytest.mark.parametrize("backend", ["ts", "onnx"])
def test_tail_frames_lengthen_each_items_last_token(single, backend):
    """The notebook's `pred_dur[-1] += 5`, per item of a padded batch: only token lengths - 1 changes."""
    plain = chain(single[backend], _case(single, (29, 5, 16), seed=3))["durations"]
    tailed = chain(single[backend], _case(single, (29, 5, 16), seed=3, tail_frames=4))["durations"]
    last = np.zeros_like(plain)
    last[np.arange(3), np.array([29, 5, 16])] = 4  # token lengths - 1, with the leading pad
    assert np.array_equal(tailed, plain + last)


@pytest.mark.parametrize("which", ["single", "multi"])
def test_unguided_sampler_is_the_guided_one_at_scale_1(which, request):
    """At embedding_scale 1 the guidance pass is weighted by zero: the one-pass graph gives the same
    style (to rounding: uncond + (cond - uncond) * 1 is not cond bit for bit), in every backend."""
    exp = request.getfixturevalue(which)
    ref = chain(exp["eager"], _case(exp, (23,), seed=7))
    for backend in (exp["eager"], exp["ts"], exp["onnx"]):
        style = backend.run("diffusion_sampler_unguided", ref)["style"]
        assert _max_abs(style, ref[SAMPLED_STYLE]) < 1e-5, backend.name


# The wrappers compute what upstream's exact path computes ---------------------------------------------

@pytest.mark.parametrize("which", ["single", "multi"])
def test_wrappers_match_the_fidelity_graphs(which, request):
    exp = request.getfixturevalue(which)
    model, S2 = exp["model"], 2 * exp["model"].style_dim
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 178, 23).tolist()
    noise = rng.standard_normal((1, 1, S2), dtype=np.float32)
    step_noises = step_noises_from(11, STEPS, (1, 1, S2))
    mel = rng.standard_normal((1, 80, 90), dtype=np.float32) - 4 if model.multispeaker else None
    feeds = chain_feeds(*batch_tokens([ids]), noise, step_noises, 2.0, 1.3, 77, mel, tail_frames=3)
    out = chain(exp["eager"], feeds)
    # The prepared model in the fidelity graphs: the same modules, so the same numbers, bit for bit.
    want = fidelity_reference(model, feeds, STEPS, 77)
    trim = 50 if model.multispeaker else 0
    assert np.array_equal(item_waves(out, 600, trim)[0], want)


# The onnxruntime runtime against the torch synthesizer -------------------------------------------------

RUNTIME_TEXT = "Hello there, my friend. How are you?"  # two pieces: the second blends with the first


@pytest.mark.parametrize("which", ["single", "multi"])
def test_runtime_matches_the_torch_synthesizer(which, request, tmp_path):
    """`styletts2.runtime` on the exported directory against `styletts2.inference` on the same
    (export-prepared) model: one synthesizer, two executors (onnxruntime and the fidelity graphs),
    the same seed, piece by piece. The decoder's in-graph source noise (`source_noise` of the
    piece's noise_seed, which the fidelity decoder seeds torch's generator with) is patched into
    the torch decoder. Multispeaker: a reference wav, non-default alpha/beta, and the guided sampler
    (embedding_scale 2) conditioned on that reference; single speaker: the defaults (embedding_scale
    1: the one-pass sampler, and in torch the sampler's own one pass)."""
    exp = request.getfixturevalue(which)
    model = exp["model"]
    runtime = Synthesizer(exp["dir"] / "onnx", providers="cpu", threads=1)
    torch_synth = TorchSynthesizer(model, steps=STEPS, device="cpu")
    knobs = {"speed": 2.0}  # shorter audio: the random duration head gives ~10 frames per token
    reference_path = None
    if model.multispeaker:
        knobs |= {"embedding_scale": 2.0, "alpha": 0.2, "beta": 0.6}
        reference_path = tmp_path / "reference.wav"
        sf.write(reference_path, voice_like(2.0), 24000)
        runtime_reference = runtime.reference_style(reference_path)
        # The numpy mel of the trimmed clip against torch's, then the torch encoders on that very mel:
        # the front-end and the style_encoder graph apart (measured 2.7e-6 and 1.5e-8), then end to end.
        clip, _ = librosa.effects.trim(load_wav(reference_path, target_sr=24000)[0], top_db=30)
        mel = runtime.mel(clip)
        assert np.abs(mel - log_mel_spectrogram(torch.from_numpy(clip)).numpy()).max() < 1e-5
        with torch.no_grad():
            mel_in = torch.from_numpy(mel)[None, None]
            encoded = torch.cat([model.style_encoder(mel_in), model.predictor_encoder(mel_in)], dim=1)
        assert np.abs(runtime_reference - encoded.numpy()).max() < 1e-5
        assert np.abs(runtime_reference - torch_synth.reference_style(reference_path)).max() < 1e-5
    pieces = list(runtime.synthesize_pieces(RUNTIME_TEXT, reference=reference_path, seed=3, **knobs))

    decoder_forward = model.decoder.forward

    def seeded_forward(asr, F0, N, s):
        batch, samples, _ = model.decoder.noise_shape(F0)
        seed = torch.initial_seed()  # the piece's noise_seed: the fidelity decoder seeded torch with it
        noise = source_noise(torch.tensor(seed), batch, samples, noise_direction(model.decoder))
        return decoder_forward(asr, F0, N, s, noise=noise)

    model.decoder.forward = seeded_forward
    try:
        wanted = list(torch_synth.synthesize_pieces(RUNTIME_TEXT, reference=reference_path, seed=3, **knobs))
    finally:
        del model.decoder.forward  # the class's forward again
    assert len(wanted) == len(pieces) == 2
    for want, piece in zip(wanted, pieces):
        assert want.noise_seed == piece.noise_seed
        assert np.abs(want.style - piece.style).max() < 1e-5  # blended and mixed (measured 3e-7)
        assert np.array_equal(want.durations, piece.durations)
        got, want_wave = piece.wave, want.wave
        assert got.shape == want_wave.shape  # the HiFi-GAN tail trim included
        if model.multispeaker:
            # The source phase integrates F0, which differs by float32 rounding. Measured here
            # 70 and 72 dB (max abs 1.2e-3 at a peak of 1.0); over 32 pieces of other seeds and
            # texts 59-79 dB, max abs <= 4.7e-3.
            assert snr_db(want_wave, got) > 50 and _max_abs(want_wave, got) < 1e-2
        else:
            # Voiced iSTFTNet: here 83 and 91 dB (max abs 4.7e-4), but other seeds flip a
            # source-phase bin by 2 pi in a few frames (up to 11 of 275), as against eager above.
            _assert_close_waveforms(want_wave, got, istftnet=True)


@pytest.mark.parametrize("which", ["single", "multi"])
def test_one_synthesizer_over_every_executor(which, request, tmp_path):
    """The runtime's synthesizer runs the same steps whatever executes the graphs: torch eager (the
    export wrappers), TorchScript and onnxruntime get the same inputs, so they give the same durations,
    TorchScript eager's waveform to the last bit, onnxruntime to float32 rounding (as in
    test_exported_graphs_match_eager). Multispeaker: a reference clip, read through each executor."""
    exp = request.getfixturevalue(which)
    reference = None
    if exp["model"].multispeaker:
        reference = tmp_path / "reference.wav"
        sf.write(reference, voice_like(2.0), 24000)
    runs = {}
    for name, folder in (("eager", "onnx"), ("ts", "ts"), ("onnx", "onnx")):
        synth = Synthesizer(exp["dir"] / folder, executor=exp[name])
        runs[name] = list(synth.synthesize_pieces(RUNTIME_TEXT, reference=reference, seed=4, speed=2.0))
    assert len(runs["eager"]) == 2
    for eager, ts, ort_piece in zip(runs["eager"], runs["ts"], runs["onnx"]):
        assert np.array_equal(eager.durations, ts.durations) and np.array_equal(eager.durations, ort_piece.durations)
        assert _max_abs(eager.style, ts.style) <= 1e-6 and _max_abs(eager.style, ort_piece.style) < 1e-4
        assert _max_abs(eager.wave, ts.wave) <= 1e-6
        _assert_close_waveforms(eager.wave, ort_piece.wave, istftnet=not exp["model"].multispeaker)
    with pytest.raises(ValueError, match="give them to the executor"):
        Synthesizer(exp["dir"] / "onnx", threads=1, executor=exp["eager"])


# Export-specific pieces ------------------------------------------------------------------------------

def test_masked_bilstm_equals_packed_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(12, 8, batch_first=True, bidirectional=True).eval()
    x = torch.randn(3, 10, 12)
    lengths = torch.tensor([10, 4, 7])
    pad = torch.arange(10).unsqueeze(0) >= lengths.unsqueeze(1)
    with torch.no_grad():
        got, want = MaskedBiLSTM(lstm)(x, lengths, pad), packed_lstm(lstm, x, lengths)
        # A packed batch shrinks as sequences end, so its matmuls round differently.
        assert _max_abs(got, want) < 1e-6 and (got[1, 4:] == 0).all() and (got[2, 7:] == 0).all()
        assert torch.equal(MaskedBiLSTM(lstm)(x[:1], lengths[:1], pad[:1]), packed_lstm(lstm, x[:1], lengths[:1]))


def test_alignment_matrix_repeats_tokens():
    durations = torch.tensor([[2, 1, 3, 0], [1, 1, 0, 0]])
    x = torch.randn(2, 5, 4)
    expanded = x @ alignment_matrix(durations)
    assert expanded.shape == (2, 5, 6)
    assert torch.equal(expanded[0], x[0].repeat_interleave(durations[0], dim=-1))
    assert torch.equal(expanded[1, :, :2], x[1].repeat_interleave(durations[1], dim=-1))
    assert torch.equal(expanded[1, :, 2:], torch.zeros(5, 4))


def test_exportable_sine_gen_matches_precise_phase():
    torch.manual_seed(0)
    sine_gen = SineGen(24000, 300, 8, voiced_threshold=10, precise_phase=True, deterministic=True)
    f0 = (torch.rand(2, 60) * 300 + 50) * (torch.rand(2, 60) > 0.2)
    f0 = torch.nn.functional.interpolate(f0.unsqueeze(1), scale_factor=300.0, mode="nearest").transpose(1, 2)
    want, uv = sine_gen(f0)
    got, uv2 = ExportableSineGen(sine_gen)(f0)
    assert torch.equal(uv, uv2) and _max_abs(want, got) < 1e-7  # float32 rounding of 0.1 * sin


def test_atan2_matches_torch_except_the_sign_of_zero():
    y = torch.cat([torch.randn(1000), torch.tensor([0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 0.0])])
    x = torch.cat([torch.randn(1000), torch.tensor([-1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0])])
    got = atan2(y, x)
    assert _max_abs(got[:1004], torch.atan2(y, x)[:1004].where(~((y[:1004] == 0) & (x[:1004] < 0)),
                                                              torch.tensor(math.pi))) < 1e-6
    assert got[1000] == got[1001] == math.pi  # +-0 on the negative axis: +pi, like torch.stft's angle
    assert got[1004] == math.pi / 2 and got[1005] == -math.pi / 2 and got[1006] == 0


def test_exportable_stft_matches_torch_stft():
    torch.manual_seed(0)
    x = torch.randn(2, 3000)
    reference = STFT(20, 5, backend="torch")
    magnitude, phase = ExportableSTFT(reference).transform(x)
    want_magnitude, want_phase = reference.transform(x)
    assert _max_abs(magnitude, want_magnitude) < 1e-5
    wrapped = torch.remainder(phase - want_phase + math.pi, 2 * math.pi) - math.pi
    assert wrapped[..., 1:].abs().max() < 1e-4  # frame 0 is made exactly real (see ExportableSTFT)
    assert set(phase[..., 0].abs().unique().tolist()) <= {0.0, float(torch.tensor(math.pi))}


def test_seeded_normal_is_a_seeded_standard_normal():
    a = seeded_normal(torch.tensor(5), 2, 200000)
    assert torch.equal(a, seeded_normal(torch.tensor(5), 2, 200000))
    assert torch.equal(a[1], seeded_normal(torch.tensor(6), 1, 200000)[0])  # item b draws seed + b
    assert not torch.equal(a[0], a[1])
    flat = a.flatten().double()
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.01
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1]) < 0.01


def test_source_noise_reaches_the_merged_source_as_independent_draws_would(single):
    """The source reads its 9 noise channels only through w . noise (its merging layer): noise along
    w / |w| gives w . noise = |w| z, distributed as w . n for 9 independent normals n."""
    decoder = single["model"].decoder
    weight = decoder.generator.m_source.l_linear.weight.detach().reshape(-1)
    direction = noise_direction(decoder)
    assert torch.allclose(direction.norm(), torch.tensor(1.0)) and torch.allclose(direction * weight.norm(), weight)
    noise = source_noise(torch.tensor(3), 1, 200000, direction)
    assert noise.shape == (1, 200000, weight.numel())
    merged = noise @ weight
    independent = torch.randn(200000, weight.numel(), generator=torch.Generator().manual_seed(0)) @ weight
    assert abs(float(merged.std() / independent.std()) - 1) < 0.01 and abs(float(merged.mean())) < 0.01 * weight.norm()


# Command-line errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("exporter", [to_onnx, to_torchscript])
@pytest.mark.parametrize("steps", ["101", "1"])
def test_steps_the_runtime_refuses_leave_an_earlier_export_alone(tmp_path, capsys, exporter, steps):
    earlier = tmp_path / "exported"
    earlier.mkdir()
    (earlier / "model.json").write_text('{"earlier": true}')
    assert exporter.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--steps", steps, "--no-verify",
                          "--out", str(earlier)]) == 2
    err = capsys.readouterr().err
    assert "error: --steps: diffusion_steps must be an integer in [2, 100]" in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["exported"]
    assert (earlier / "model.json").read_text() == '{"earlier": true}'


def test_cli_reports_bad_arguments(tmp_path, capsys, multi):
    assert to_onnx.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--steps", "1",
                         "--out", str(tmp_path)]) == 2
    assert "--steps: diffusion_steps must be an integer in [2, 100]" in capsys.readouterr().err
    assert to_onnx.main(["--random-init", "no/such.gin", "--out", str(tmp_path)]) == 2
    assert "gin config not found: no/such.gin" in capsys.readouterr().err
    assert to_onnx.main(["--checkpoint", str(multi["checkpoint"]), "--out", str(tmp_path)]) == 2
    assert "gin/model/libritts.gin" in capsys.readouterr().err  # an upstream checkpoint needs --config
    assert to_onnx.main(["--random-init", str(REPO / "gin/model/tiny.gin"), "--opset", "16",
                         "--out", str(tmp_path)]) == 2
    assert "--opset must be >= 17" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        to_onnx.main(["--out", str(tmp_path)])  # neither --checkpoint nor --random-init
