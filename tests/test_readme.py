"""The Python examples of the README and of the user guide's Python page run as written, and print what they
say they print."""

import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "docs" / "guide" / "python.md"]


def python_blocks(pages=PAGES):
    return [b for page in pages for b in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


def test_the_readme_example_prints_what_its_comments_say(capsys):
    """The README's one example: each print's trailing comment starts with what it prints."""
    (block,) = python_blocks([README])
    exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    said = [line.split("#", 1)[1].split(":")[0].strip() for line in block.splitlines() if line.startswith("print(")]
    assert printed == said


@pytest.mark.slow
def test_readme_examples_run(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md or docs/guide/python.md", "exec"), namespace)
    # the exact-solution example's claim (~1e-12) holds
    err = abs(namespace["flow"].end_to_end - namespace["exact"]).max()
    assert err < 1e-10
