"""Command line: ``linflow run`` (the main job), ``compare``, ``accuracy``, ``saddles``, ``reproduce`` and ``sweep``.

``linflow run`` with no arguments runs the embedded default problem (:func:`linflow.problems.synthetic`)
with a depth-3 network: the layer flow, the end-to-end flow, and gradient descent and the
end-to-end update (Eq. 10) for a few learning rates. It prints a table and writes ``run.nc`` (all
data, netCDF), ``run.png`` (figure) and ``summary.json`` to the output folder, each atomically.
"""

from __future__ import annotations

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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # the command line only writes files; a library import never picks a backend
    compilation_cache()
    used = settle(args)
    if used:
        print("settings: " + ", ".join(used))
    try:
        return args.func(args)
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"linflow {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: no output file was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
