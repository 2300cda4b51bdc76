"""Command line: ``linflow run`` (the main job) and the other commands of :func:`build_parser` (``linflow --help``).

``linflow run`` with no arguments runs the embedded default problem (:func:`linflow.problems.synthetic`)
with a depth-3 network: the layer flow, the end-to-end flow, and gradient descent and the
end-to-end update (Eq. 10) for a few learning rates. It prints a table and writes ``run.nc`` (all
data, netCDF), ``run.png`` (figure) and ``summary.json`` to the output folder, each atomically.
"""

from __future__ import annotations

import re
import sys

from .options import build_parser, settle

__all__ = ["main", "compilation_cache", "build_parser"]


def compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for this process; returns its folder (None when off).

    The command line compiles the same computations on every run; with the cache a second run loads
    them from disk instead of compiling them again. The folder is ``<linflow cache>/jax`` (see
    :func:`linflow.datasets.default_cache`); a cache folder already configured for JAX
    (``JAX_COMPILATION_CACHE_DIR``) is kept, and ``LINFLOW_COMPILATION_CACHE=0`` turns it off. The
    library never does this by itself (no global state beyond float64).
    """
    import os

    if os.environ.get("LINFLOW_COMPILATION_CACHE", "1").strip().lower() in ("0", "", "false", "no", "off"):
        return None
    import jax

    from ..core.datasets import default_cache

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(default_cache() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return jax.config.jax_compilation_cache_dir


_NEGATIVE = re.compile(r"^-\.?\d")  # a negative number or list ("-1e-3", "-.5", "-1,2"): never an option's name


def joined(argv: list[str]) -> list[str]:
    """``--option -1e-3`` as ``--option=-1e-3``: argparse takes a value that starts with '-' for an option unless it
    reads as a plain negative number, so a negative value in exponent form reached the wrong error."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def check_paths(args) -> None:
    """The output folder (``--out``) and the data (``--data``), checked before anything is computed; an existing
    output folder loses the temporary files of a run that was killed while writing (``kill -9``)."""
    from pathlib import Path

    from ..core.files import check_output_folder, remove_stale_temporaries

    if getattr(args, "out", None) is not None:
        if check_output_folder(args.out, "--out").is_dir():
            remove_stale_temporaries(args.out)  # what a killed earlier run left half-written
    if getattr(args, "data", None) is not None and not Path(args.data).exists():
        raise ValueError(f"--data {args.data!r} does not exist (a folder of the data files, or one such file)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(joined(list(sys.argv[1:] if argv is None else argv)))
    used = settle(args)
    try:
        check_paths(args)
    except ValueError as exc:
        parser.exit(2, f"linflow {args.command}: error: {exc}\n")
    import matplotlib

    matplotlib.use("Agg")  # the command line only writes files; a library import never picks a backend
    compilation_cache()
    if getattr(args, "data", None):  # the data set's own m and d replace the synthetic problem's
        used = [u for u in used if u.split("=")[0] not in ("m", "d")]
    if used:
        print("settings: " + ", ".join(used))
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:  # bad input found late (a data file's line, a full disk)
        parser.exit(2, f"linflow {args.command}: error: {exc}\n")
    except (MemoryError, RuntimeError) as exc:  # NumPy's or XLA's allocation failure (an XlaRuntimeError)
        if not isinstance(exc, MemoryError) and "RESOURCE_EXHAUSTED" not in str(exc):
            raise
        parser.exit(2, f"linflow {args.command}: error: out of memory: the problem is too large for this machine "
                       f"(lower --m, --d, --points or the number of runs)\n")
    except KeyboardInterrupt:
        print("\ninterrupted: no output file was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
