"""Import the upstream StyleTTS2 code (a checkout outside this repository) and build its model.

Used to (re)generate the parity fixtures under tests/fixtures/, by the optional live parity tests
(STYLETTS2_UPSTREAM points at the checkout) and by the speed benchmark's upstream backend
(`bench/rtf.py --upstream PATH`, `upstream_worker.py`); the regular test suite never needs upstream.
Upstream's model code needs `munch`, `einops` and `einops-exts` beside this project's requirements
(`pip install munch einops einops-exts`, about 0.2 MB). It imports torchaudio, which cannot load
beside our torch; the few functions its model code touches at import/construction time are provided
by a small stand-in module.
"""
import math
import os
import sys
import types

import torch

UPSTREAM_ENV = "STYLETTS2_UPSTREAM"


def upstream_path() -> str | None:
    path = os.environ.get(UPSTREAM_ENV)
    if path and os.path.isfile(os.path.join(path, "models.py")):
        return path
    return None


def _create_dct(n_mfcc: int, n_mels: int, norm: str | None) -> torch.Tensor:
    # DCT-II basis as an (n_mels, n_mfcc) matrix, the layout torchaudio returns.
    n = torch.arange(float(n_mels))
    k = torch.arange(float(n_mfcc)).unsqueeze(1)
    dct = torch.cos(math.pi / float(n_mels) * (n + 0.5) * k)
    if norm is None:
        dct *= 2.0
    else:
        dct[0] *= 1.0 / math.sqrt(2.0)
        dct *= math.sqrt(2.0 / float(n_mels))
    return dct.t()


class _MelSpectrogramStandin(torch.nn.Module):
    """Stand-in for torchaudio.transforms.MelSpectrogram, added for the losses parity: it is OUR
    implementation (styletts2.audio.mel.LogMelSpectrogram.power_mel, torch.stft + our HTK
    filterbank), not torchaudio's, so a parity run through it checks upstream's loss code around the
    mel, not the mel itself (that is checked against librosa in the audio and losses tests). Only the
    torchaudio defaults upstream relies on are accepted: Hann window, f_min 0, f_max sr/2, power 2,
    no norm."""

    def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, n_mels=128,
                 window_fn=torch.hann_window, **unsupported):
        super().__init__()
        if unsupported or window_fn is not torch.hann_window:
            raise RuntimeError(f"MelSpectrogram stand-in: unsupported options {sorted(unsupported)}")
        from styletts2.audio.mel import LogMelSpectrogram

        win_length = win_length or n_fft
        self.mel = LogMelSpectrogram(n_mels=n_mels, n_fft=n_fft, win_length=win_length,
                                     hop_length=hop_length or win_length // 2, filterbank_sample_rate=sample_rate)

    def forward(self, wave):
        mel = self.mel.power_mel(wave.reshape(-1, wave.shape[-1]))
        return mel.reshape(wave.shape[:-1] + mel.shape[-2:])


def _install_torchaudio_standin() -> None:
    if "torchaudio" in sys.modules:
        return
    ta = types.ModuleType("torchaudio")
    functional = types.ModuleType("torchaudio.functional")
    functional.create_dct = _create_dct
    transforms = types.ModuleType("torchaudio.transforms")

    class _Unavailable:
        def __init__(self, *a, **k):
            raise RuntimeError("torchaudio transforms are not available in the parity harness")

    transforms.MelSpectrogram = _MelSpectrogramStandin
    transforms.Resample = _Unavailable
    ta.functional = functional
    ta.transforms = transforms
    sys.modules.update({"torchaudio": ta, "torchaudio.functional": functional,
                        "torchaudio.transforms": transforms})


def import_upstream(path: str | None = None):
    """Put the upstream checkout on sys.path and return its `models` module."""
    path = path or upstream_path()
    if path is None:
        raise RuntimeError(f"set {UPSTREAM_ENV} to a checkout of the upstream StyleTTS2 repository")
    import transformers  # noqa: F401  (before the stand-in: transformers probes for torchaudio)
    from transformers import AlbertModel  # noqa: F401

    _install_torchaudio_standin()
    if os.path.abspath(path) not in {os.path.abspath(entry) for entry in sys.path}:
        raise RuntimeError(f"put the upstream checkout {path} on PYTHONPATH (its `models`, `Modules` and `Utils` "
                           "import each other as top-level packages)")
    import models  # noqa: E402  (upstream's module)
    return models


def build_upstream_model(config_name: str = "config.yml", path: str | None = None, seed: int = 0):
    """Upstream's `build_model` for one of its configs, with randomly initialised helpers
    (ASR aligner, JDC pitch extractor, PL-BERT) of their released shapes."""
    import yaml
    from munch import Munch

    path = path or upstream_path()
    models = import_upstream(path)
    from transformers import AlbertConfig, AlbertModel

    torch.manual_seed(seed)
    with open(os.path.join(path, "Configs", config_name)) as f:
        config = yaml.safe_load(f)
    with open(os.path.join(path, "Utils", "ASR", "config.yml")) as f:
        asr_config = yaml.safe_load(f)["model_params"]
    with open(os.path.join(path, "Utils", "PLBERT", "config.yml")) as f:
        bert_config = yaml.safe_load(f)["model_params"]
    aligner = models.ASRCNN(**asr_config)
    upstream_pitch_extractor = models.JDCNet  # upstream's class, not ours (which gin configures)
    pitch = upstream_pitch_extractor(num_class=1, seq_len=192)
    bert = AlbertModel(AlbertConfig(**bert_config))
    args = Munch.fromDict(config["model_params"])
    return models.build_model(args, aligner, pitch, bert), config

