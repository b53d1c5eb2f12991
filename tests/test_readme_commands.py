"""The README's two commands are exactly what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        and not line.startswith(("set ", "cd ", "export ", "rm "))
    ]
    assert len(ci_lines) == 2, ci_lines
    for line in ci_lines:
        assert line in readme, f"CI command not in README: {line}"
