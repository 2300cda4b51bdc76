"""Regenerate the committed notebooks from their sources and execute them (outputs are committed).

The sources are the jupytext percent-format files ``notebooks/NN_name.py`` (plain Python, linted like
the package). From the repository root::

    python notebooks/build.py            # every notebook
    python notebooks/build.py 02_solver_accuracy

writes ``notebooks/NN_name.ipynb`` with outputs. The test suite checks that the committed notebooks
match their sources, that every cell that draws shows an image, and that no output holds a path of
the machine that ran it; nbmake executes them again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def sources() -> dict[str, Path]:
    """Notebook name -> its percent-format source."""
    return {p.stem: p for p in sorted(HERE.glob("[0-9][0-9]_*.py"))}


def read_source(path: Path) -> nbformat.NotebookNode:
    """The notebook of a source file, without outputs."""
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = KERNELSPEC
    return nb


def build(names=None, execute: bool = True) -> None:
    for name, path in sources().items():
        if names and name not in names:
            continue
        nb = read_source(path)
        if execute:
            t0 = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
            print(f"{name}: executed in {time.perf_counter() - t0:.0f} s")
            # live widgets need a kernel: their saved state would make the docs page load the widget manager from a
            # CDN, so it is dropped (the outputs keep their text fallback; the figures drawn below them stay)
            nb.metadata.pop("widgets", None)
        nbformat.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    build(sys.argv[1:] or None)
