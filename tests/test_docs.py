"""The documentation site builds without a warning (mkdocs --strict): docstrings, pages and notebooks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs is not installed (pip install -e .[dev])")
def test_mkdocs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    cmd = [str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()
    assert (tmp_path / "site" / "notebooks" / "03_from_descent_to_flow" / "index.html").exists()


def _cited_sections(text: str) -> set[int]:
    """The section numbers of every "docs/math.md section(s) N[, M][ and K][-L]" in ``text``."""
    import re

    out = set()
    for m in re.finditer(r"docs/math\.md (?:section|sections|s\.) ([0-9][0-9 ,\-and]*)", text):
        for a, b in re.findall(r"(\d+)(?:-(\d+))?", m.group(1)):
            out.update(range(int(a), int(b or a) + 1))
    return out


def test_everything_cited_is_in_the_repository():
    """No output, docstring, notebook or page cites a file outside the repository (the developers' notes); every
    "docs/math.md section N" names a section that docs/math.md has."""
    import re

    files = [p for pattern in ("src/linflow/**/*.py", "docs/*.md", "docs/guide/*.md", "notebooks/*.py",
                               "notebooks/*.ipynb", "README.md", "examples/*", "benchmarks/**/*.py")
             for p in ROOT.glob(pattern)]
    assert len(files) > 30
    headings = {int(n) for n in re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "math.md").read_text(), re.MULTILINE)}
    assert headings == set(range(1, max(headings) + 1))  # numbered 1, 2, ... without gaps
    cited = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        # the developers' notes (REFERENCE.md) are not in the repository; data found beside it (shared/data) is input
        assert not re.search(r"REFERENCE(\.md)?\b", text), f"{path.relative_to(ROOT)} cites a file outside"
        cited |= _cited_sections(text)
    assert cited and cited <= headings, sorted(cited - headings)
