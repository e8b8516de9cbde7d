"""pyproject.toml: the runtime installs without torch, and every package it imports is declared."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]

# Imports the runtime makes to synthesize (phonemizer and the resampler load lazily), with torch
# made unimportable; prints the third-party top-level modules that got loaded.
PROBE = """
import json, sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked here")

sys.meta_path.insert(0, BlockTorch())
import styletts2.runtime, styletts2.runtime.__main__
from styletts2.text.espeak import espeak_backend
from styletts2.audio.io import resample
import numpy as np
espeak_backend()
resample(np.zeros(160, dtype=np.float32), 16000, 24000)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")} - set(sys.stdlib_module_names))))
"""


# Imported only because they happen to be installed (each inside a try/except).
OPTIONAL = {"yaml": "numba's config file reader", "tqdm": "pooch's progress bars"}


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_runtime_dependencies_leave_torch_out():
    project = _project()
    runtime = _names(project["dependencies"]) | _names(project["optional-dependencies"]["runtime"])
    assert "torch" not in runtime and "onnxruntime" in runtime
    assert "onnxruntime" not in _names(project["optional-dependencies"]["gpu"])
    assert "torch" in _names(project["optional-dependencies"]["train"])
    assert not _names(project["dependencies"] + project["optional-dependencies"]["runtime"]) & {"librosa", "scipy"}


def _requirements(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines if line}


def test_requirements_files_agree_with_pyproject():
    """requirements.txt holds every declared package with the same version range (and the
    development extras beside them); requirements-gpu.txt the same with onnxruntime-gpu instead."""
    project = _project()
    extras = project["optional-dependencies"]
    cpu, gpu = _requirements(REPO / "requirements.txt"), _requirements(REPO / "requirements-gpu.txt")
    for group, wanted in (("cpu", project["dependencies"] + extras["runtime"] + extras["train"] + extras["export"]),
                          ("gpu", project["dependencies"] + extras["gpu"] + extras["train"] + extras["export"])):
        have = cpu if group == "cpu" else gpu
        for requirement in map(Requirement, wanted):
            name = requirement.name.lower()
            assert have.get(name) == str(requirement.specifier), (group, name, have.get(name))
    assert "onnxruntime-gpu" not in cpu and "onnxruntime" not in gpu


def test_every_package_the_runtime_imports_is_declared():
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    loaded = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout.strip().splitlines()[-1])
    project = _project()
    declared = _names(project["dependencies"]) | _names(project["optional-dependencies"]["runtime"])
    # with what the declared packages pull in themselves, transitively
    pulled, todo = set(), list(declared)
    while todo:
        name = todo.pop()
        if name in pulled:
            continue
        pulled.add(name)
        try:
            needs = [Requirement(r) for r in requires(name) or []]
        except PackageNotFoundError:  # a dependency for other platforms or Pythons
            continue
        todo += [r.name.lower().replace("_", "-") for r in needs if r.marker is None or r.marker.evaluate({"extra": ""})]
    owners = packages_distributions()
    missing = {m: owners[m] for m in loaded if m in owners and m != "styletts2" and m not in OPTIONAL
               and not {d.lower().replace("_", "-") for d in owners[m]} & pulled}
    assert not missing, f"imported by the runtime but not declared in pyproject.toml: {missing}"
    assert "torch" not in loaded
