"""The committed notebooks: generated from their jupytext sources, every figure shown, no machine paths.

(nbmake executes each notebook again as part of the suite.)
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402  (notebooks/build.py: the one command that regenerates them)

SOURCES = build.sources()
# a cell draws when it makes a figure: pyplot, linflow.plot, or a reproduce run (which returns figures)
DRAWS = re.compile(r"plt\.subplots|plt\.figure|\bplot\.\w+\(|reproduce\.run\(|\breport\(|\bdraw_\w+\(")


def draws(source: str) -> bool:
    """Whether a cell's top-level statements make a figure (a drawing call inside a ``def`` draws nothing yet)."""
    top = [line for line in source.splitlines() if line and not line[0].isspace() and not line.startswith("def ")]
    return bool(DRAWS.search("\n".join(top)))


def committed(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert len(SOURCES) >= 4
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_committed_notebook_matches_its_source(name):
    source = build.read_source(SOURCES[name])
    nb = committed(name)
    got = [(c.cell_type, c.source.strip()) for c in nb.cells]
    want = [(c.cell_type, c.source.strip()) for c in source.cells]
    assert got == want, f"{name}.ipynb is out of date: run python notebooks/build.py {name}"
    # issue 38: every notebook page opened with an empty input cell (a blank line too many after the header)
    assert all(c.source.strip() for c in nb.cells), f"{name}: an empty cell"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), f"{name}: no title first"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_cell_that_draws_shows_an_image(name):
    nb = committed(name)
    drawing = [c for c in nb.cells if c.cell_type == "code" and draws(c.source)]
    assert drawing, f"{name}: no drawing cell found (the pattern is out of date?)"
    for cell in drawing:
        assert any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])), \
            f"{name}: a cell that draws shows no image:\n{cell.source[:200]}"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_output_holds_a_path_of_the_machine_that_ran_it(name):
    nb = committed(name)
    forbidden = {str(ROOT), str(ROOT.parent), str(Path.home()), "/tmp/", "/home/", "/root/", "/work/", "/Users/"}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for path in forbidden:
                    assert path not in text, f"{name}: an output holds {path!r}: {text[:200]}"


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e .[dev] installs it)")
def test_notebook_sources_pass_the_linter():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "--output-format", "concise", *map(str, SOURCES.values()),
                          str(NOTEBOOKS / "build.py")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_suite_executes_each_notebook_once():
    """The suite runs the notebooks as ``.ipynb`` (nbmake). With ``--doctest-modules`` a test path that holds
    their ``.py`` sources would import them at collection, i.e. execute every notebook a second time."""
    import tomllib

    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    collected = {p.resolve() for pattern in options["testpaths"] for p in ROOT.glob(pattern)}
    imported = [s for s in NOTEBOOKS.glob("*.py") if any(c == s or c in s.parents for c in collected)]
    assert "--doctest-modules" not in options["addopts"] or not imported, f"collected as modules: {imported}"
    assert {NOTEBOOKS / f"{name}.ipynb" for name in SOURCES} <= collected
    # the test files are listed longest first, then by a pattern: none is left out, none listed that does not exist
    assert {p.resolve() for p in (ROOT / "tests").glob("test_*.py")} <= collected
    assert all(any(ROOT.glob(pattern)) for pattern in options["testpaths"])
