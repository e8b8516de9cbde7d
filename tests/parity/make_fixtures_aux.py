"""Parity of the training helper networks with upstream, and the fixture that locks it.

Run by hand from the repository root (needs the upstream checkout, not needed by the tests):

    STYLETTS2_UPSTREAM=/work/upstream python tests/parity/make_fixtures_aux.py [--skip-full]

It prints the max abs error of every output at full (released) size, then writes
tests/fixtures/parity_aux.pt for tests/test_parity_aux.py:

* text_aligner (ASRCNN) and wd (WavLMDiscriminator): a reduced config, its upstream random-init
  state dict, inputs and upstream outputs.
* pitch_extractor (JDCNet), mpd, msd: fixed sizes too large to store (5M / 41M / 0.3M params), so
  the weights follow `seeded_state_dict` (a documented recipe the test re-runs) and were loaded
  into upstream before its outputs were recorded. Large outputs are stored as `fingerprint`s.

The helpers above the `# --- upstream side ---` line are imported by the test.
"""
import argparse
import copy
import functools
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "parity_aux.pt"

# Reduced configs stored with their weights.
SMALL_ALIGNER = dict(input_dim=80, hidden_dim=16, n_token=24, n_layers=2, token_embedding_dim=16)
SMALL_WD = dict(slm_hidden=16, slm_layers=3, initial_channel=8)
# Seeds for the weight recipe (modules whose weights are not stored).
RECIPE_SEEDS = {"pitch_extractor": 11, "mpd": 12, "msd": 13}

FINGERPRINT_FULL_MAX = 2048   # tensors up to this size are stored whole
FINGERPRINT_SAMPLES = 512     # else: this many evenly strided elements ...
FINGERPRINT_PROJECTIONS = 4   # ... and this many normalised random projections


def seeded_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for `module`'s state-dict layout, drawn from
    torch.Generator().manual_seed(seed) key by key in sorted key order:

      num_batches_tracked            -> 0 (no draw)
      *running_var, *weight_g        -> 0.5 + U[0, 1)            (positive scales)
      1-D *weight (norm gains)       -> 1 + 0.1 * N(0, 1)
      other 1-D (biases, means)      -> 0.1 * N(0, 1)
      >= 2-D                         -> N(0, 1) / sqrt(numel / shape[0])   (fan-in scaling)
    """
    gen = torch.Generator().manual_seed(seed)
    reference = module.state_dict()
    out = {}
    for key in sorted(reference):
        like = reference[key]
        shape = like.shape
        if key.endswith("num_batches_tracked"):
            value = torch.zeros_like(like)
        elif key.endswith(("running_var", "weight_g")):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif like.dim() == 1 and key.endswith("weight"):
            value = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif like.dim() == 1:
            value = 0.1 * torch.randn(shape, generator=gen)
        else:
            value = torch.randn(shape, generator=gen) / math.sqrt(like.numel() / shape[0])
        out[key] = value.to(like.dtype)
    return out


def state_checksums(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-key float64 sums: tell a changed random generator apart from a parity failure."""
    return {k: float(v.double().sum()) for k, v in state.items()}


@functools.lru_cache(maxsize=4)  # real and fake feature maps share shapes
def _projections(numel: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(numel)
    return torch.randn(FINGERPRINT_PROJECTIONS, numel, generator=gen)


def fingerprint(t: torch.Tensor) -> dict:
    """A compact stand-in for a large tensor: strided samples plus projections onto fixed random
    directions (normalised by sqrt(numel), so an error of e per element moves them by ~e)."""
    t = t.detach().float()
    if t.numel() <= FINGERPRINT_FULL_MAX:
        return {"shape": tuple(t.shape), "full": t.clone()}
    flat = t.flatten()
    stride = math.ceil(flat.numel() / FINGERPRINT_SAMPLES)
    proj = _projections(flat.numel()) @ flat / math.sqrt(flat.numel())
    return {"shape": tuple(t.shape), "stride": stride, "samples": flat[::stride].clone(),
            "projections": proj}


def fingerprint_error(fp: dict, t: torch.Tensor) -> float:
    """Max abs difference between a stored fingerprint and the same fingerprint of `t`."""
    if tuple(t.shape) != tuple(fp["shape"]):
        raise AssertionError(f"shape {tuple(t.shape)} != expected {tuple(fp['shape'])}")
    mine = fingerprint(t)
    if "full" in fp:
        return float((mine["full"] - fp["full"]).abs().max())
    return max(float((mine["samples"] - fp["samples"]).abs().max()),
               float((mine["projections"] - fp["projections"]).abs().max()))


def named_tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten nested tuples/lists/dicts of tensors into {'0.2.1': tensor}."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    out = {}
    for i, item in items:
        out.update(named_tensors(item, f"{prefix}.{i}" if prefix else str(i)))
    return out


# --- upstream side --------------------------------------------------------------------------

def _max_errors(theirs, ours) -> dict[str, float]:
    a, b = named_tensors(theirs), named_tensors(ours)
    assert a.keys() == b.keys(), "output structure differs"
    for k in a:
        assert a[k].shape == b[k].shape, f"{k}: shape {tuple(a[k].shape)} vs {tuple(b[k].shape)}"
    return {k: float((a[k] - b[k]).abs().max()) for k in a}


def _report(name: str, theirs, ours, groups: dict[str, str] | None = None) -> None:
    """Print the max abs error (and the output's max magnitude) per output group."""
    errors = _max_errors(theirs, ours)
    scale = {k: float(v.abs().max()) for k, v in named_tensors(theirs).items()}
    groups = groups or {}
    summary: dict[str, list[float]] = {}
    for key, err in errors.items():
        group = groups.get(key.split(".")[0], key.split(".")[0])
        best = summary.setdefault(group, [0.0, 0.0])
        best[0] = max(best[0], err)
        best[1] = max(best[1], scale[key])
    for group, (err, mag) in summary.items():
        print(f"  {name:<28} {group:<18} max abs err {err:.3e}   (max |value| {mag:.3e})")


def _patch_upstream_unk_prob(aligner, prob: float) -> None:
    """Upstream re-sets its unk-mask probability (0.1) on every call and masks in eval too;
    override it on this instance (0 = no masking, as our eval mode)."""
    s2s = aligner.asr_s2s
    original = type(s2s).initialize_decoder_states

    def initialize(memory, mask):
        original(s2s, memory, mask)
        s2s.random_mask = prob

    s2s.initialize_decoder_states = initialize


class _WindowOnAnyDevice:
    """Upstream's spectrogram discriminator calls `window.to(y.get_device())`, which is -1 and
    fails on CPU; hand it the window unchanged."""

    def __init__(self, window: torch.Tensor):
        self.window = window

    def to(self, _device):
        return self.window


def _upstream_classes():
    from upstream_harness import import_upstream

    models = import_upstream()
    from Modules.discriminators import (MultiPeriodDiscriminator, MultiResSpecDiscriminator,
                                        WavLMDiscriminator)
    return models.ASRCNN, models.JDCNet, MultiPeriodDiscriminator, MultiResSpecDiscriminator, \
        WavLMDiscriminator


def _upstream_msd(cls):
    msd = cls()
    for d in msd.discriminators:
        d.window = _WindowOnAnyDevice(d.window)
    return msd


def _aligner_inputs(n_frames: int, n_tokens: int, n_token: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    mel = torch.randn(2, 80, n_frames, generator=gen)
    mel_lengths = torch.tensor([n_frames, n_frames * 3 // 4])
    mel[1, :, mel_lengths[1]:] = 0
    frames = (n_frames + 1) // 2
    mask = torch.arange(frames)[None] >= ((mel_lengths + 1) // 2)[:, None]
    text = torch.randint(4, n_token, (2, n_tokens), generator=gen)
    text[1, n_tokens * 2 // 3:] = 0
    return {"mel": mel, "mask": mask, "text": text}


def _run_aligner(model, inputs, mode: str, seed: int = 1234, ours: bool = True):
    """mode: 'eval' (no randomness), 'eval_unk' (eval with unk masking, seeded),
    'train' (dropout + unk masking, seeded)."""
    model.train(mode == "train")
    torch.manual_seed(seed)
    args = (inputs["mel"], inputs["mask"], inputs["text"])
    with torch.no_grad():
        if ours and mode == "eval_unk":
            out = model(*args, mask_unk=True)
        else:
            out = model(*args)
        feature = model.get_feature(inputs["mel"])
    return (*out, feature)


def _aligner_pair(ASRCNN, config, inputs):
    from styletts2.modules.aligner import ASRCNN as OurASRCNN

    torch.manual_seed(0)
    theirs = ASRCNN(**config)
    ours = OurASRCNN(**config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    results = {}
    for mode in ("eval", "eval_unk", "train"):
        _patch_upstream_unk_prob(theirs, 0.0 if mode == "eval" else 0.1)
        results[mode] = (_run_aligner(theirs, inputs, mode, ours=False),
                         _run_aligner(ours, inputs, mode))
    return theirs, results


def _pitch_pair(JDCNet, state, mel):
    """Upstream and ours on `mel`, eval then train mode (train updates BN running stats)."""
    from styletts2.modules.pitch import JDCNet as OurJDCNet

    theirs, ours = JDCNet(num_class=1, seq_len=192), OurJDCNet(num_class=1, seq_len=192)
    if state is not None:
        theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    results = {}
    for mode in ("eval", "train"):
        for m in (theirs, ours):
            m.train(mode == "train")
        with torch.no_grad():
            results[mode] = (theirs(mel), ours(mel))
    running = {k: v for k, v in theirs.state_dict().items() if "running" in k}
    ours_running = {k: v for k, v in ours.state_dict().items() if "running" in k}
    return results, running, ours_running


def _disc_pair(theirs, ours, state, inputs):
    if state is not None:
        theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        return theirs(*inputs), ours(*inputs)


DISC_GROUPS = {"0": "real outs", "1": "fake outs", "2": "real fmaps", "3": "fake fmaps"}
ALIGNER_GROUPS = {"0": "ctc_logits", "1": "s2s_logits", "2": "s2s_attn", "3": "get_feature"}
PITCH_GROUPS = {"0": "f0", "1": "gan_feature", "2": "pooled"}


def full_size_report(classes) -> None:
    from styletts2.modules.discriminators import (MultiPeriodDiscriminator,
                                                  MultiResSpecDiscriminator, WavLMDiscriminator)

    ASRCNN, JDCNet, MPD, MSD, WD = classes
    print("Full size (upstream random init loaded into ours):")
    inputs = _aligner_inputs(192, 40, 178, seed=1)
    _, results = _aligner_pair(ASRCNN, dict(input_dim=80, hidden_dim=256, n_token=178,
                                            token_embedding_dim=512), inputs)
    for mode, (theirs, ours) in results.items():
        _report(f"text_aligner [{mode}]", theirs, ours, ALIGNER_GROUPS)

    mel = torch.randn(2, 1, 80, 192, generator=torch.Generator().manual_seed(2))
    results, running, ours_running = _pitch_pair(JDCNet, None, mel)
    for mode, (theirs, ours) in results.items():
        _report(f"pitch_extractor [{mode}]", theirs, ours, PITCH_GROUPS)
    _report("pitch_extractor [train]", {"running stats": running},
            {"running stats": ours_running})

    gen = torch.Generator().manual_seed(3)
    wavs = tuple(0.1 * torch.randn(2, 1, 24000, generator=gen) for _ in range(2))
    torch.manual_seed(0)
    _report("mpd [1 s]", *_disc_pair(MPD(), MultiPeriodDiscriminator(), None, wavs), DISC_GROUPS)
    _report("msd [1 s]", *_disc_pair(_upstream_msd(MSD), MultiResSpecDiscriminator(), None, wavs),
            DISC_GROUPS)
    hidden = torch.randn(2, 13 * 768, 50, generator=gen)
    theirs_out, ours_out = _disc_pair(WD(768, 13, 64), WavLMDiscriminator(), None, (hidden,))
    _report("wd [50 frames]", [theirs_out], [ours_out], {"0": "scores"})


def make_fixture(classes) -> dict:
    from styletts2.modules.discriminators import (MultiPeriodDiscriminator,
                                                  MultiResSpecDiscriminator, WavLMDiscriminator)

    ASRCNN, JDCNet, MPD, MSD, WD = classes
    print("Fixture (small configs / recipe weights):")
    fixture = {"torch_version": torch.__version__}

    inputs = _aligner_inputs(40, 7, SMALL_ALIGNER["n_token"], seed=4)
    theirs_model, results = _aligner_pair(ASRCNN, SMALL_ALIGNER, inputs)
    for mode, (theirs, ours) in results.items():
        _report(f"text_aligner [{mode}]", theirs, ours, ALIGNER_GROUPS)
    fixture["text_aligner"] = {
        "config": SMALL_ALIGNER, "state_dict": copy.deepcopy(theirs_model.state_dict()),
        "inputs": inputs, "rng_seed": 1234,
        "outputs": {mode: [t.clone() for t in pair[0]] for mode, pair in results.items()}}

    seed = RECIPE_SEEDS["pitch_extractor"]
    state = seeded_state_dict(JDCNet(num_class=1, seq_len=192), seed)
    mel = torch.randn(2, 1, 80, 24, generator=torch.Generator().manual_seed(5))
    results, running, ours_running = _pitch_pair(JDCNet, state, mel)
    for mode, (theirs, ours) in results.items():
        _report(f"pitch_extractor [{mode}]", theirs, ours, PITCH_GROUPS)
    fixture["pitch_extractor"] = {
        "seed": seed, "checksums": state_checksums(state), "inputs": {"mel": mel},
        "outputs": {mode: [fingerprint(t) for t in pair[0]] for mode, pair in results.items()},
        "running_after_train": running}

    gen = torch.Generator().manual_seed(6)
    wavs = tuple(0.1 * torch.randn(2, 1, 2400, generator=gen) for _ in range(2))
    fixture["waveforms"] = wavs
    for name, upstream, ours in (("mpd", MPD(), MultiPeriodDiscriminator()),
                                 ("msd", _upstream_msd(MSD), MultiResSpecDiscriminator())):
        state = seeded_state_dict(ours, RECIPE_SEEDS[name])
        theirs_out, ours_out = _disc_pair(upstream, ours, state, wavs)
        _report(f"{name} [0.1 s]", theirs_out, ours_out, DISC_GROUPS)
        fixture[name] = {"seed": RECIPE_SEEDS[name], "checksums": state_checksums(state),
                         "outputs": {k: fingerprint(v)
                                     for k, v in named_tensors(theirs_out).items()}}

    torch.manual_seed(7)
    theirs = WD(**SMALL_WD)
    hidden = torch.randn(2, SMALL_WD["slm_hidden"] * SMALL_WD["slm_layers"], 30,
                         generator=torch.Generator().manual_seed(8))
    theirs_out, ours_out = _disc_pair(theirs, WavLMDiscriminator(**SMALL_WD), None, (hidden,))
    _report("wd [small]", [theirs_out], [ours_out], {"0": "scores"})
    fixture["wd"] = {"config": SMALL_WD, "state_dict": copy.deepcopy(theirs.state_dict()),
                     "inputs": {"hidden": hidden}, "outputs": theirs_out.clone()}
    return fixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-full", action="store_true", help="only write the fixture")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.set_num_threads(2)
    classes = _upstream_classes()
    if not args.skip_full:
        full_size_report(classes)
    fixture = make_fixture(classes)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, FIXTURE)
    print(f"wrote {FIXTURE.relative_to(REPO)} ({FIXTURE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
