"""Atomic file output (private): a crash or Ctrl-C never leaves a half-written result."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The rename is atomic on POSIX: readers see the old file or the complete new one. On any error,
    KeyboardInterrupt included, the temporary file is removed and ``path`` is untouched. A process killed outright
    (SIGKILL, power loss) cannot clean up: its temporary file carries its process id, and the next write of the same
    ``path`` removes the temporary files of writers no longer alive.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left beside ``path`` (or, for a folder, in it) in
    processes that were killed (named ``.NAME.PID.XXXXXXXX.tmp``, PID no longer running); returns what it removed."""
    path = Path(path)
    folder, pattern = (path, ".*.tmp") if path.is_dir() else (path.parent, f".{path.name}.*.tmp")
    removed = []
    for tmp in folder.glob(pattern):
        parts = tmp.name.split(".")
        pid = parts[-3] if len(parts) >= 5 else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp)
    return removed


def check_output_folder(path: str | os.PathLike, option: str = "out") -> Path:
    """``path`` as an output folder, checked before any computation: an existing folder in which a file can be
    written, or one that can be created (its nearest existing ancestor a writable folder). Creates nothing.

    Raises ``ValueError`` in one line naming ``option`` (the parameter the user typed) otherwise, e.g. when ``path``
    is a file: the check runs before a run starts, so a bad folder never costs a computation.
    """
    path = Path(path)
    shown = f"{option} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise ValueError(f"{shown} is a file, not a folder: give a folder to write into (created if missing)")
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{shown} cannot be created: {str(probe)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ValueError(f"{shown} is not writable: cannot create a file in {str(probe)!r} ({exc.strerror})") from None
    return path


def write_netcdf(ds, path) -> Path:
    """An ``xarray.Dataset`` to netCDF (SciPy's netCDF3 writer, no extra dependency), atomically."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="scipy"))


def write_figure(fig, path, dpi: int = 120, close: bool = True) -> Path:
    """A matplotlib Figure to PNG, atomically; then closed (pyplot keeps every open figure alive)."""
    written = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return written


def jsonable(obj):
    """``obj`` with NumPy scalars and arrays as Python values and NaN/inf as ``None`` (standard JSON).

    JSON has no NaN or Infinity (``json.dumps`` writes them as bare tokens that strict readers reject);
    summaries say why a value is missing in a ``status`` field beside it.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # NumPy/JAX arrays and scalars
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(obj, path) -> Path:
    """``obj`` as standard JSON (NaN and inf as null, see :func:`jsonable`), atomically."""
    text = json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    return atomic_write(path, write)
