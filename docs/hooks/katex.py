"""MkDocs hook: typeset mathematics offline with KaTeX, copied from the npm registry's package at build time.

The KaTeX release (:data:`VERSION`) is fetched once from the npm registry into a user cache, checked against the
registry's sha512 integrity, and its JavaScript, CSS and fonts are copied into the built site (``assets/katex``),
so that a page needs nothing from elsewhere when it is viewed. ``LINFLOW_KATEX_TGZ`` may name the tarball instead
(a machine without the registry). Notebook pages rendered by mkdocs-jupyter carry a MathJax script from a CDN:
it is removed (KaTeX renders their ``$...$`` instead).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "0.19.1"
URL = f"https://registry.npmjs.org/katex/-/katex-{VERSION}.tgz"
INTEGRITY = "sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=="
FILES = re.compile(r"^package/(dist/(katex\.min\.js|katex\.min\.css|contrib/auto-render\.min\.js|fonts/[^/]+)|LICENSE)$")
_MATHJAX = re.compile(r'<script src="https?://[^"]*mathjax[^"]*">\s*</script>|'
                      r'<script type="text/x-mathjax-config">.*?</script>', re.S | re.I)


def _integrity_ok(data: bytes) -> bool:
    algo, _, digest = INTEGRITY.partition("-")
    return base64.b64encode(hashlib.new(algo, data).digest()).decode() == digest


def tarball() -> Path:
    """The KaTeX tarball: ``LINFLOW_KATEX_TGZ``, else the cached copy, else downloaded (atomically) and checked."""
    if os.environ.get("LINFLOW_KATEX_TGZ"):
        path = Path(os.environ["LINFLOW_KATEX_TGZ"])
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linflow-docs"
        path = cache / f"katex-{VERSION}.tgz"
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            try:
                with urllib.request.urlopen(URL, timeout=60) as response:
                    data = response.read()
            except OSError as exc:
                raise RuntimeError(f"the docs need KaTeX {VERSION} from {URL} (or LINFLOW_KATEX_TGZ=path to it): "
                                   f"{exc}") from exc
            if not _integrity_ok(data):
                raise RuntimeError(f"{URL} does not match its npm integrity {INTEGRITY}")
            with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
    if not _integrity_ok(path.read_bytes()):
        raise RuntimeError(f"{path} does not match KaTeX {VERSION}'s npm integrity {INTEGRITY}")
    return path


def on_config(config):
    tarball()  # fail early, with the reason, before pages are built
    return config


_ROLE = re.compile(r":(?:class|func|mod|data|meth|attr|obj):(?=<code)")


def on_post_page(output: str, page, config) -> str:
    """Drop nbconvert's MathJax (KaTeX renders instead) and the Sphinx role prefixes (``:func:``) left in front of
    the docstrings' code names."""
    return _ROLE.sub("", _MATHJAX.sub("", output))


def on_post_build(config) -> None:
    dest = Path(config["site_dir"]) / "assets" / "katex"
    with tarfile.open(tarball(), "r:gz") as tar:
        for member in tar.getmembers():
            m = FILES.match(member.name)
            if m and member.isfile():
                target = dest / (m.group(1) or "LICENSE").removeprefix("dist/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
