"""Write tests/fixtures/parity_mel.pt: upstream's mel front-end output computed by torchaudio's own code.

Upstream computes mels with `torchaudio.transforms.MelSpectrogram(n_mels=80, n_fft=2048,
win_length=1200, hop_length=300)`. torchaudio cannot be imported beside this project's torch, but the
two functions that transform uses (`spectrogram`, `melscale_fbanks`) are plain torch code in
`torchaudio/functional/functional.py`; this script loads that one file on its own. Point
TORCHAUDIO_SRC at an unpacked torchaudio package (e.g. `pip download --no-deps torchaudio` and
unzip the wheel) and run:  TORCHAUDIO_SRC=/path/to/torchaudio python tests/parity/make_fixtures_mel.py
"""
import os
import re
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "parity_mel.pt"


def load_torchaudio_functional(package_dir: str) -> dict:
    source = (Path(package_dir) / "functional" / "functional.py").read_text()
    # Drop the package-relative imports; the functions used here need only torch and math.
    source = re.sub(r"^import torchaudio\n|^from \.[\w.]* import .*\n", "", source, flags=re.M)
    namespace = {"__name__": "torchaudio_functional"}
    exec(compile(source, "torchaudio/functional/functional.py", "exec"), namespace)
    version = (Path(package_dir) / "version.py").read_text()
    namespace["VERSION"] = re.search(r"__version__ = '([^']+)'", version).group(1)
    return namespace


def upstream_preprocess(ta: dict, wave: torch.Tensor) -> torch.Tensor:
    """Upstream's `preprocess` with torchaudio's MelSpectrogram defaults spelled out."""
    window = torch.hann_window(1200)
    spec = ta["spectrogram"](wave, 0, window, 2048, 300, 1200, 2.0, False, True, "reflect", True, None)
    fb = ta["melscale_fbanks"](1025, 0.0, float(16000 // 2), 80, 16000, None, "htk")
    mel = torch.matmul(spec.transpose(-1, -2), fb).transpose(-1, -2)
    return (torch.log(1e-5 + mel.unsqueeze(0)) - (-4)) / 4


def main() -> None:
    ta = load_torchaudio_functional(os.environ["TORCHAUDIO_SRC"])
    rng = np.random.default_rng(0)
    n = 24000 + 157
    t = np.arange(n) / 24000.0
    wave = 0.3 * np.sin(2 * np.pi * 180.0 * t) + 0.05 * rng.standard_normal(n)
    wave[: n // 4] *= 1e-3
    wave = torch.from_numpy(wave.astype(np.float32))
    batch = torch.stack([wave, 0.5 * wave.flip(0)])
    fixture = {
        "torchaudio_version": ta["VERSION"],
        "torch_version": str(torch.__version__),
        "wave": wave,
        "log_mel": upstream_preprocess(ta, wave),  # [1, 80, frames], as upstream returns it
        "batch": batch,
        "batch_log_mel": upstream_preprocess(ta, batch)[0],  # [2, 80, frames]
        "filterbank": ta["melscale_fbanks"](1025, 0.0, 8000.0, 80, 16000, None, "htk"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB) with torchaudio {ta['VERSION']}")


if __name__ == "__main__":
    main()
