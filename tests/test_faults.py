"""Faults (issue 39, item 3): a process killed outright (SIGKILL) while it writes its outputs leaves, for every file,
the old complete one or none, never a partial one; the next run cleans what the killed one left, and writes the same
bytes as the killed run had written in full (the data and the figure: neither carries a time stamp; the summaries carry
the run's wall time, so only their numbers would repeat).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from linflow.core import files

# A command run in a child process whose writes are slowed: each output is written in full to its temporary file,
# cut to half its size, and the writer then sleeps (a disk stalled mid-write) until it is killed. WRITES_BEFORE writes
# finish normally first.
CHILD = textwrap.dedent("""
    import os, sys, time
    from linflow.core import files
    real = files.atomic_write
    done = [0]
    def stalled(path, write):
        if done[0] < int(os.environ["WRITES_BEFORE"]):
            done[0] += 1
            return real(path, write)
        def half(tmp):
            write(tmp)
            os.truncate(tmp, os.path.getsize(tmp) // 2)
            print("STALLED", path, flush=True)
            time.sleep(600)
        return real(path, half)
    files.atomic_write = stalled
    from linflow.cli import main
    sys.exit(main(sys.argv[1:]))
""")

ATLAS = ["atlas", "--points", "5", "--transient", "200", "--record", "128", "--central-points", "0"]
NEW, OLD = ["--ratios", "0.8,1.3"], ["--ratios", "0.7,1.2"]  # this run's grid, and the one a previous run wrote


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "LINFLOW_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}


def _run(argv, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linflow", *argv], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=600)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _numbers(name: str, raw: bytes):
    """A file's content for comparison: JSON without its wall times, other files as bytes."""
    if not name.endswith(".json"):
        return raw
    obj = json.loads(raw)
    obj.pop("wall_time_s", None)
    return obj


def test_atomic_write_under_sigkill_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "result.json"
    files.write_json({"old": 1}, target)
    code = textwrap.dedent(f"""
        import os, time
        from linflow.core import files
        def slow(tmp):
            with open(tmp, "w") as fh:
                fh.write('{{"new": ')
                fh.flush()
            print("WRITING", flush=True)
            time.sleep(600)
        files.atomic_write({str(target)!r}, slow)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "WRITING"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert json.loads(target.read_text()) == {"old": 1}
    stale = list(tmp_path.glob(".result.json.*.tmp"))
    assert len(stale) == 1 and f".{child.pid}." in stale[0].name  # the killed writer could not clean up
    files.write_json({"new": 2}, target)
    assert json.loads(target.read_text()) == {"new": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    mine = tmp_path / f".x.json.{os.getpid()}.abcdefgh.tmp"
    mine.write_text("in progress")
    assert files.remove_stale_temporaries(tmp_path) == [] and mine.exists()


@pytest.mark.slow
def test_atlas_killed_while_writing_leaves_old_complete_files_and_a_rerun_writes_the_same(tmp_path):
    """Three runs of ``linflow atlas`` into one folder: a previous one on another grid (complete), one killed while
    writing its third file (its first two written in full), and a rerun to completion."""
    out = tmp_path / "out"
    old = _run([*ATLAS, *OLD, "--out", str(out)], tmp_path)
    assert old.returncode == 0, old.stderr
    before = _snapshot(out)
    order = ["atlas.nc", "bifurcation.png", "atlas_summary.json"]  # the command's order of writing
    assert sorted(before) == sorted(order)
    child = subprocess.Popen([sys.executable, "-c", CHILD, *ATLAS, *NEW, "--out", str(out)],
                             env={**_env(tmp_path), "WRITES_BEFORE": "2"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    line = ""
    while not line.startswith("STALLED") and time.monotonic() < deadline:
        line = child.stdout.readline()
        assert line or child.poll() is None, child.stderr.read()
    assert "atlas_summary.json" in line  # stalled half-way through the summary
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    after = _snapshot(out)
    assert sorted(after) == sorted(order)  # every file there
    assert after["atlas_summary.json"] == before["atlas_summary.json"]  # the old summary, whole
    assert [p for p in out.iterdir() if p.name.startswith(".")]  # the killed writer's half file, hidden
    fresh = _run([*ATLAS, *NEW, "--out", str(out)], tmp_path)  # the rerun, to completion
    assert fresh.returncode == 0, fresh.stderr
    new = _snapshot(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # cleaned before the rerun computed
    assert all(new[name] != before[name] for name in order)  # the old and the new results are told apart
    for name in order[:2]:  # written in full before the kill: the rerun writes the same bytes
        assert after[name] == new[name], name
    assert _numbers("s.json", new["atlas_summary.json"]) != _numbers("s.json", before["atlas_summary.json"])
    json.loads(new["atlas_summary.json"])


def test_every_output_of_the_package_is_written_through_atomic_write():
    """What makes the test above hold for every command (reproduce, sgd, atlas, ...): no module but core/files.py
    writes a file itself (savefig, to_netcdf, json.dump, write_text/write_bytes, open for writing). The one
    exception, the data download, writes into a ``.partial`` folder that is renamed when complete."""
    import re

    root = Path(__file__).resolve().parents[1] / "src" / "linflow"
    writes = re.compile(r"\.savefig\(|\.to_netcdf\(|json\.dump\(|\.write_text\(|\.write_bytes\(|"
                        r"open\([^)]*[\"'][wax]b?\+?[\"']")
    found = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
        if hits and rel != "core/files.py":
            found[rel] = hits
    assert set(found) == {"core/datasets.py"}, found
    text = (root / "core" / "datasets.py").read_text()
    assert '.partial"' in text and "os.replace(tmp, dest)" in text.replace("os.rename", "os.replace")
