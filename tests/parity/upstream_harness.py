"""The parity fixtures' and live tests' access to an upstream checkout (STYLETTS2_UPSTREAM): the code
lives in the package (`styletts2.bench.upstream_code`), which the speed benchmark's upstream backend
uses too; here the checkout is put on sys.path first, as the package leaves that to its caller."""
import sys

from styletts2.bench import upstream_code
from styletts2.bench.upstream_code import UPSTREAM_ENV, upstream_path  # noqa: F401


def _on_path(path: str | None) -> str:
    path = path or upstream_path()
    if path is None:
        raise RuntimeError(f"set {UPSTREAM_ENV} to a checkout of the upstream StyleTTS2 repository")
    if path not in sys.path:
        sys.path.insert(0, path)
    return path


def import_upstream(path: str | None = None):
    return upstream_code.import_upstream(_on_path(path))


def build_upstream_model(config_name: str = "config.yml", path: str | None = None, seed: int = 0):
    return upstream_code.build_upstream_model(config_name, _on_path(path), seed)
