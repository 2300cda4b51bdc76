"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest


README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_examples_run(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # the exact-solution example's claim (~1e-12) holds
    err = abs(namespace["flow"].end_to_end - namespace["exact"]).max()
    assert err < 1e-10
