"""A gin binding does nothing when the code calls the configurable with that argument itself (gin
only fills the arguments a call leaves out). For each experiment file, every binding it applies is
checked against the calls of its configurable that the experiment's stage runs (the package's code,
read statically); a binding that every such call overrides, in every experiment that applies it,
fails the test. A configurable that no code calls (gin builds it from a reference) is never
overridden."""
import ast
from pathlib import Path

from test_gin_files import BUILDING_BLOCKS, REPO, bindings

PACKAGE = REPO / "styletts2"


def _parameters(node: ast.FunctionDef | ast.ClassDef) -> list[str]:
    """Parameter names in positional order (a class: its __init__'s, without self)."""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None:  # a dataclass: its fields, in order
            return [n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
        return [a.arg for a in init.args.posonlyargs + init.args.args][1:]
    return [a.arg for a in node.args.posonlyargs + node.args.args]


def configurables(trees: dict[Path, ast.Module]) -> dict[str, tuple[str, list[str]]]:
    """{gin name: (python name, parameters)} of every @gin.configurable in the package."""
    found = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                continue
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                if isinstance(target, ast.Attribute) and target.attr == "configurable":
                    name = node.name
                    if call and call.args and isinstance(call.args[0], ast.Constant):
                        name = call.args[0].value
                    found[name] = (node.name, _parameters(node))
    return found


def calls_by_name(trees: dict[Path, ast.Module], known: dict) -> dict[str, list[tuple[Path, int, set]]]:
    """{python name of a configurable: [(file, line, parameters the call passes itself)]}."""
    parameters = dict(known.values())
    found: dict[str, list] = {name: [] for name in parameters}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if called not in found or any(isinstance(a, ast.Starred) for a in node.args):
                continue  # (*args: cannot tell statically)
            passed = set(parameters[called][:len(node.args)]) | {k.arg for k in node.keywords if k.arg}
            found[called].append((path, node.lineno, passed))
    return found


# Each stage's own file: an experiment runs only its stage's calls. gpu_check builds stages with
# its own settings on purpose; no experiment file drives it.
STAGE_FILES = {"Stage0Aligner": "stage0_aligner.py", "Stage0Pitch": "stage0_pitch.py",
               "Stage0PLBert": "stage0_plbert.py", "Stage1": "stage1.py", "Stage2": "stage2.py",
               "FinetuneStage": "stage2.py"}
TOOLS = {"gpu_check.py"}


def dead_bindings(experiment: str, known: dict, calls: dict) -> set[tuple[str, str]]:
    """(gin file, key) of the experiment's bindings that every call it runs overrides."""
    bound = bindings(experiment)
    stage = next((value.lstrip("@") for key, value, _ in reversed(bound) if key == "Trainer.stage"), None)
    skipped = (set(STAGE_FILES.values()) - {STAGE_FILES.get(stage)}) | TOOLS
    dead = set()
    for key, _, source in bound:
        if "." not in key or key.startswith("%"):
            continue
        configurable, parameter = key.rsplit(".", 1)
        configurable = configurable.rsplit("/", 1)[-1]  # a scope ("scope/Name.param") binds the same call
        if configurable not in known:
            continue
        reached = [passed for path, _, passed in calls[known[configurable][0]]
                   if not (path.parent.name == "train" and path.name in skipped)]
        # no call in the code (gin builds it from a reference): the binding is what it gets
        if reached and all(parameter in passed for passed in reached):
            dead.add((source, key))
    return dead


def shadowed(experiments: list[str], trees: dict[Path, ast.Module]) -> list[str]:
    """Bindings that do nothing in every experiment that applies them."""
    known = configurables(trees)
    calls = calls_by_name(trees, known)
    applied: dict[tuple[str, str], list[bool]] = {}
    for experiment in experiments:
        dead = dead_bindings(experiment, known, calls)
        for key, _, source in bindings(experiment):
            applied.setdefault((source, key), []).append((source, key) in dead)
    return [f"{source}: {key} (every call passes {key.rsplit('.', 1)[1]} itself)"
            for (source, key), deads in sorted(applied.items()) if all(deads)]


def _trees(root: Path) -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))}


def test_the_check_finds_a_shadowed_binding(tmp_path, monkeypatch):
    import test_gin_files

    (tmp_path / "gin").mkdir()
    (tmp_path / "gin" / "a.gin").write_text("make.eps = 1e-6\nmake.lr = 2\nOther.width = 3\nmake.beta = 1\n")
    (tmp_path / "gin" / "b.gin").write_text("make.beta = 1\n")
    code = tmp_path / "pkg.py"
    code.write_text("import gin\n@gin.configurable\ndef make(lr, eps=1e-9, beta=0):\n    pass\n\n"
                    "@gin.configurable('Other')\nclass Thing:\n    def __init__(self, width=1):\n        pass\n\n"
                    "make(0.1, eps=1e-8, beta=2)\nmake(0.2, eps=0.0)\nThing(4)\n")
    monkeypatch.setattr(test_gin_files, "REPO", tmp_path)
    found = shadowed(["gin/a.gin", "gin/b.gin"], {code: ast.parse(code.read_text())})
    # beta is left out by the second call: live
    assert [f.split(" ")[1] for f in found] == ["Other.width", "make.eps", "make.lr"]


def test_no_gin_binding_is_shadowed_by_the_code():
    experiments = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "gin").rglob("*.gin")
                         if not p.relative_to(REPO).as_posix().startswith(BUILDING_BLOCKS))
    problems = shadowed(experiments, _trees(PACKAGE))
    assert not problems, "\n".join(problems)
