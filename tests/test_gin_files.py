"""The gin tree: every experiment file parses, and no building block (gin/stage, gin/trainer,
gin/model, gin/data) re-binds a value that a file it comes after already bound to the same value
(two copies of one setting drift apart)."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILDING_BLOCKS = ("gin/stage/", "gin/trainer/", "gin/model/", "gin/data/")
EXPERIMENTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "gin").rglob("*.gin")
                     if not p.relative_to(REPO).as_posix().startswith(BUILDING_BLOCKS))


def bindings(path: str) -> list[tuple[str, str, str]]:
    """(key, value, file) in the order gin applies them, includes expanded."""
    out = []
    for line in (REPO / path).read_text().splitlines():
        code = line.split("#")[0].strip()
        include = re.match(r"include\s+'([^']+)'", code)
        if include:
            out += bindings(include.group(1))
            continue
        binding = re.match(r"([\w./%@]+)\s*=\s*(.+)", code)
        if binding:
            out.append((binding.group(1), binding.group(2).strip(), path))
    return out


def redundant(path: str) -> list[str]:
    seen, found = {}, []
    for key, value, source in bindings(path):
        if key in seen and seen[key][0] == value and source.startswith(BUILDING_BLOCKS):
            found.append(f"{source}: {key} = {value} (already in {seen[key][1]})")
        seen[key] = (value, source)
    return found


def test_the_redundancy_check_finds_a_copy(tmp_path, monkeypatch):
    (tmp_path / "gin" / "stage").mkdir(parents=True)
    (tmp_path / "gin" / "a.gin").write_text("Trainer.epochs = 3\ninclude 'gin/stage/b.gin'\n")
    (tmp_path / "gin" / "stage" / "b.gin").write_text("Trainer.epochs = 3  # same\nTrainer.seed = 1\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    assert redundant("gin/a.gin") == ["gin/stage/b.gin: Trainer.epochs = 3 (already in gin/a.gin)"]


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_building_blocks_do_not_repeat_a_binding(path):
    assert not redundant(path)


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_experiment_files_parse(path):
    import runner
    from styletts2.model import parse_gin

    runner._register_configurables()
    import gin
    gin.clear_config()
    try:
        parse_gin([path])
    finally:
        gin.clear_config()
