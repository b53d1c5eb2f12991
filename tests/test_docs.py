"""The README stays short, and every link and every docs/ path in the repository leads somewhere."""

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "node_modules", "build", "dist", "__pycache__", ".pytest_cache"}

# [text](target) and ![alt](target); the target ends at whitespace or ")" (an optional "title" follows)
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# a docs/<...>.md path named in text or code; a path under another folder (../shared/docs/X.md,
# benchmarks/docs/...) is not this repository's docs/ folder
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*?\w\.md\b")


def _markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def _strip_code(text):
    """Markdown without fenced code blocks and inline code spans (a link inside code is not a link)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _repo_files(suffixes):
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and path.suffix in suffixes:
            yield path


def test_readme_is_at_most_250_lines_and_32_kib():
    data = (ROOT / "README.md").read_bytes()
    lines = data.decode("utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines (at most 250; move detail to docs/)"
    assert len(data) <= 32 * 1024, f"README.md has {len(data)} bytes (at most 32 KiB)"


def test_every_relative_link_in_readme_and_docs_resolves():
    broken = []
    for md in _markdown_files():
        for target in MD_LINK.findall(_strip_code(md.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # http:, https:, mailto: ... and anchors within the page
            path = unquote(target.split("#", 1)[0].split("?", 1)[0])
            if not path:
                continue
            resolved = (ROOT / path.lstrip("/")) if path.startswith("/") else (md.parent / path)
            if not resolved.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_the_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {Path(t.split("#", 1)[0]).as_posix() for t in MD_LINK.findall(readme)}
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "docs").glob("*.md"))
        if p.relative_to(ROOT).as_posix() not in linked
    ]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_every_docs_path_named_in_the_repository_exists():
    missing = []
    for path in _repo_files({".py", ".md", ".toml"}):
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in sorted(set(DOCS_PATH.findall(text))):
            if not (ROOT / name).exists():
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "docs/ paths that do not exist:\n" + "\n".join(missing)
