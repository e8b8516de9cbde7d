"""Shape of the code outside tests: no function longer than 60 lines (a longer one does several
things: split it), and no script that edits sys.path (the package is installed; the scripts in
export/ and bench/ only call into it)."""
import ast

from conftest import REPO

MAX_FUNCTION_LINES = 60
SOURCES = ["styletts2", "export", "bench", "runner.py"]


def _python_files():
    for name in SOURCES:
        path = REPO / name
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_script_edits_sys_path():
    edits = [str(path.relative_to(REPO)) for path in _python_files()
             if any(edit in path.read_text(encoding="utf-8") for edit in ("sys.path.insert", "sys.path.append"))]
    assert not edits, f"these files edit sys.path: {edits}"
