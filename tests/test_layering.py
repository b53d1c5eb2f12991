"""The package's layering: labml (the library, its run engine and CLI) never imports the protocols or
the GUI (it finds the protocols through the run-kind registry); the only arrow back up is the lazy
import of the dashboard inside `labml gui`. protocols.base and protocols.runner do not import each
other in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("protocols", "gui")
#: lazy imports of an upper package allowed inside a function: (module file, package)
LAZY_ALLOWED = {
    ("labml/commands/gui.py", "gui"),  # `labml gui` starts the dashboard
    ("labml/commands/demo.py", "protocols"),  # the demo runs protocols (to go through the registry)
}


def _imports(tree: ast.AST, *, in_functions: bool) -> list[tuple[int, str]]:
    """(line, module) of every import at module level (class bodies and `if` blocks included), or of
    every import inside a function."""
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import) and inside == in_functions:
                out.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and inside == in_functions and child.level == 0:
                out.append((child.lineno, child.module or ""))
            visit(child, inside)

    visit(tree, False)
    return out


def _upper(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in UPPER else None


def test_no_module_of_labml_imports_protocols_or_gui():
    module_level, lazy = [], []
    for path in sorted((ROOT / "labml").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), rel)
        module_level += [f"{rel}:{line} {m}" for line, m in _imports(tree, in_functions=False) if _upper(m)]
        lazy += [f"{rel}:{line} {m}" for line, m in _imports(tree, in_functions=True)
                 if _upper(m) and (rel, _upper(m)) not in LAZY_ALLOWED]
    assert module_level == [], "labml imports an upper package at module level"
    assert lazy == [], "labml imports an upper package outside `labml gui`"


def test_importing_the_engine_registry_and_cli_loads_no_protocol_and_no_gui():
    code = ("import sys, labml.runs.engine, labml.runs.kinds, labml.runs.plan, labml.cli; "
            "labml.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('protocols', 'gui')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_protocols_base_and_runner_are_no_cycle():
    base = ast.parse((ROOT / "protocols/base.py").read_text())
    names = [m for _, m in _imports(base, in_functions=False) + _imports(base, in_functions=True)]
    assert "protocols.runner" not in names
    code = "import sys, protocols.base; print('protocols.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_function_stays_readable_mccabe_at_most_15():
    """pyproject.toml's ruff settings hold McCabe complexity <= 15 (C901) for every function of the
    project; this runs that check, so the suite fails when a function grows past it."""
    import pytest

    pytest.importorskip("ruff")
    cmd = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "C901", "--output-format",
           "concise", str(ROOT)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "max-complexity = 15" in (ROOT / "pyproject.toml").read_text()
