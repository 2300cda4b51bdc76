"""Real data: the UCI gas-sensor array drift data (the Ethanol problem of ACH18) and MNIST (its Section 8).

UCI "Gas Sensor Array Drift Dataset at Different Concentrations" (id 270, DOI 10.24432/C5MK6M,
CC BY 4.0; Vergara et al. 2012, Rodriguez-Lujan et al. 2014). Ten files ``batch1.dat`` ...
``batch10.dat``, one sample a line: ``class;concentration 1:v1 2:v2 ... 128:v128`` (class 1 ethanol,
2 ethylene, 3 ammonia, 4 acetaldehyde, 5 acetone, 6 toluene). The assembled table
``ethanol.csv`` (header ``batch,concentration,f1,...,f128``) is read too.

Nothing here needs the network: :func:`download` is the only function that uses it, on request.

Preprocessing is an explicit, recorded choice (ACH18 do not publish theirs): ``"standardize"``
(default: every feature and the target centred and scaled to unit variance), ``"whitened"`` (centred
features rotated and scaled so that ``X^T X / m = I`` on the span of the data, the setting of Arora,
Cohen, Golowich & Hu, ICLR 2019; target standardized), ``"center"`` (centred only) or ``"none"`` (raw
values). :func:`gas_sensor` returns the Problem and a description.

MNIST (LeCun et al. 1998) in its official IDX files (``train-images-idx3-ubyte.gz`` ...,
``t10k-labels-idx1-ubyte.gz``, gzip-compressed or not): :func:`read_idx` parses one file, checking its
magic number, shape and length; :func:`mnist` reads a split, checks the official md5 of the files it
knows, and scales pixels to ``[-0.5, 0.5]`` as TensorFlow's MNIST tutorial does: ``(x - 127.5) / 255``.
"""

from __future__ import annotations

import csv
import math
import gzip
import hashlib
import io
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .problems import Problem

__all__ = ["GASES", "GasSensorData", "read_dat", "read_csv", "load_gas_sensor", "gas_sensor", "download",
           "UCI_URL", "BATCH1_SHA256", "PREPROCESSING", "MnistData", "read_idx", "mnist", "MNIST_MD5"]

GASES = {"ethanol": 1, "ethylene": 2, "ammonia": 3, "acetaldehyde": 4, "acetone": 5, "toluene": 6}
N_FEATURES = 128
UCI_URL = ("https://archive.ics.uci.edu/static/public/270/"
           "gas+sensor+array+drift+dataset+at+different+concentrations.zip")
BATCH1_SHA256 = "6b62f3e71b90f95dd9c2157fa91ffce32571faa7f474dd52f29a4ae769144625"


@dataclass(frozen=True)
class GasSensorData:
    """Raw samples: ``gas`` class (1-6), ``concentration`` (ppm), ``features`` (n, 128), ``batch`` (1-10)."""

    gas: np.ndarray
    concentration: np.ndarray
    features: np.ndarray
    batch: np.ndarray

    def __len__(self) -> int:
        return len(self.gas)

    def select(self, mask) -> "GasSensorData":
        return GasSensorData(self.gas[mask], self.concentration[mask], self.features[mask], self.batch[mask])


def _parse_dat_line(line: str, where: str) -> tuple[int, float, np.ndarray]:
    """``class;concentration 1:v1 2:v2 ... 128:v128``: every feature once, every number finite."""
    head, _, rest = line.strip().partition(" ")
    try:
        cls_text, conc_text = head.split(";")
        cls, conc = int(cls_text), float(conc_text)
    except ValueError:
        raise ValueError(f"{where}: expected 'class;concentration' at the start of the line, got {head[:40]!r}") from None
    if not math.isfinite(conc):
        raise ValueError(f"{where}: the concentration must be a finite number, got {conc_text[:40]!r}")
    values = np.full(N_FEATURES, np.nan)
    for item in rest.split():
        try:
            key, val = item.split(":")
            idx, value = int(key), float(val)
        except ValueError:
            idx, value = 0, math.nan
        if not (1 <= idx <= N_FEATURES and math.isfinite(value)):
            raise ValueError(f"{where}: expected 'index:value' with index 1..{N_FEATURES} and a finite value, "
                             f"got {item[:40]!r}")
        if not np.isnan(values[idx - 1]):
            raise ValueError(f"{where}: feature {idx} is given twice")
        values[idx - 1] = value
    if np.isnan(values).any():
        missing = int(np.flatnonzero(np.isnan(values))[0]) + 1
        raise ValueError(f"{where}: feature {missing} is missing (each line holds features 1..{N_FEATURES})")
    if cls not in GASES.values():
        raise ValueError(f"{where}: gas class must be 1..6, got {cls}")
    return cls, conc, values


def _lines(path: Path):
    """``(line number, text)`` of a UTF-8 text file; bytes that are not UTF-8 raise, naming the line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}, line {lineno}: not UTF-8 text") from None


def read_dat(path, batch: int | None = None) -> GasSensorData:
    """One ``batchN.dat`` file in the distributed format. A malformed line raises, naming file and line."""
    path = Path(path)
    if batch is None:
        digits = "".join(ch for ch in path.stem if ch.isdigit())
        batch = int(digits) if digits else 0
    gas, conc, feats = [], [], []
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        c, y, x = _parse_dat_line(line, f"{path}, line {lineno}")
        gas.append(c)
        conc.append(y)
        feats.append(x)
    if not gas:
        raise ValueError(f"{path}: no samples")
    n = len(gas)
    return GasSensorData(np.array(gas), np.array(conc), np.array(feats), np.full(n, batch))


def read_csv(path) -> GasSensorData:
    """The assembled ``ethanol.csv`` (header ``batch,concentration,f1..f128``; every row ethanol)."""
    path = Path(path)
    conc, feats, batch = [], [], []
    with open(path, newline="", encoding="utf-8", errors="strict") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            raise ValueError(f"{path}, line 1: not UTF-8 text") from None
        expected = ["batch", "concentration"] + [f"f{i}" for i in range(1, N_FEATURES + 1)]
        if header != expected:
            raise ValueError(f"{path}, line 1: expected the header batch,concentration,f1,...,f{N_FEATURES}")
        lineno = 1
        try:
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != N_FEATURES + 2:
                    raise ValueError(f"{path}, line {lineno}: expected {N_FEATURES + 2} fields, got {len(row)}")
                try:
                    b, y, x = int(row[0]), float(row[1]), [float(v) for v in row[2:]]
                except ValueError:
                    raise ValueError(f"{path}, line {lineno}: a field is not a number") from None
                if not (math.isfinite(y) and all(map(math.isfinite, x))):
                    raise ValueError(f"{path}, line {lineno}: a field is not a finite number")
                batch.append(b)
                conc.append(y)
                feats.append(x)
        except UnicodeDecodeError:
            raise ValueError(f"{path}, line {lineno + 1}: not UTF-8 text") from None
        except csv.Error as exc:
            raise ValueError(f"{path}, line {lineno + 1}: not CSV ({exc})") from None
    n = len(conc)
    return GasSensorData(np.full(n, GASES["ethanol"]), np.array(conc), np.array(feats), np.array(batch))


def load_gas_sensor(path, gas: str = "ethanol", batches=None) -> GasSensorData:
    """Samples of one gas from a ``.dat`` file, a folder of ``batch*.dat`` files, a folder with
    ``ethanol.csv``, or the csv itself; optionally only some batches."""
    if gas not in GASES:
        raise ValueError(f"gas must be one of {', '.join(GASES)}; got {gas!r}")
    path = Path(path)
    if path.is_dir():
        dats = sorted(path.glob("batch*.dat"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
        if dats and (gas != "ethanol" or len(dats) == 10 or not (path / "ethanol.csv").exists()):
            parts = [read_dat(p) for p in dats]
            data = GasSensorData(*(np.concatenate([getattr(p, f) for p in parts])
                                   for f in ("gas", "concentration", "features", "batch")))
        elif (path / "ethanol.csv").exists():
            data = read_csv(path / "ethanol.csv")
        else:
            raise FileNotFoundError(f"{path}: no batch*.dat files and no ethanol.csv")
    elif path.suffix == ".csv":
        data = read_csv(path)
    elif path.exists():
        data = read_dat(path)
    else:
        raise FileNotFoundError(f"{path} does not exist")
    data = data.select(data.gas == GASES[gas])
    if batches is not None:
        data = data.select(np.isin(data.batch, list(batches)))
    if len(data) == 0:
        raise ValueError(f"no {gas} samples in {path}" + (f" for batches {list(batches)}" if batches else ""))
    return data


PREPROCESSING = {
    "standardize": "features and target centred and scaled to unit variance (constant features dropped)",
    "whitened": "features centred, scaled to unit variance and whitened (X^T X / m = I; principal "
                "directions with variance below 1e-12 of the largest dropped), target centred and scaled to unit variance",
    "center": "features and target centred, not scaled",
    "scaled": "features and target scaled to unit variance, not centred (no bias: the model must fit the means "
              "through the weights)",
    "none": "raw features and target (ppm)",
}


def gas_sensor(path, gas: str = "ethanol", *, batches=None, preprocessing: str = "standardize", p: float = 2.0,
               weight_decay: float = 0.0) -> tuple[Problem, str]:
    """The regression problem "predict the concentration from the 128 features" as a Problem.

    Returns ``(problem, description)``; the description states the data, the number of samples and
    the preprocessing (see :data:`PREPROCESSING`).

    Examples:
        >>> from linflow import datasets
        >>> prob, description = datasets.gas_sensor("path/to/gas_sensor", p=4)  # doctest: +SKIP
        >>> prob.m, prob.d  # doctest: +SKIP
        (2565, 128)
    """
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}; got {preprocessing!r}")
    data = load_gas_sensor(path, gas, batches)
    X, y = data.features.astype(float), data.concentration.astype(float)
    if preprocessing in ("standardize", "center", "whitened"):
        X, y = X - X.mean(axis=0), y - y.mean()
    if preprocessing == "standardize":
        std = X.std(axis=0)
        X = X[:, std > 0] / std[std > 0]
        y = y / y.std()
    elif preprocessing == "whitened":
        X, y = _whiten(X), y / y.std()
    elif preprocessing == "scaled":
        std = X.std(axis=0)
        X, y = X[:, std > 0] / std[std > 0], y / y.std()
    desc = (f"UCI gas sensor drift data, {gas}: {len(y)} samples, {X.shape[1]} features, batches "
            f"{sorted(set(data.batch.tolist()))}; preprocessing: {preprocessing} ({PREPROCESSING[preprocessing]})")
    return Problem(X, y, p=p, weight_decay=weight_decay), desc


def _whiten(X: np.ndarray, rcond: float = 1e-12) -> np.ndarray:
    """Centred ``X`` (m, d) -> ``sqrt(m) U_r`` from the SVD ``X = U S V^T``, keeping the directions whose
    variance ``s^2 / m`` exceeds ``rcond`` times the largest (PCA whitening computed without forming
    ``X^T X``, so ``X^T X / m = I`` holds to rounding). Features are first scaled to unit variance."""
    std = X.std(axis=0)
    X = X[:, std > 0] / std[std > 0]
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s**2 > rcond * s[0] ** 2
    return np.sqrt(len(X)) * U[:, keep]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache() -> Path:
    """``$LINFLOW_CACHE`` or ``$XDG_CACHE_HOME/linflow`` or ``~/.cache/linflow``."""
    if os.environ.get("LINFLOW_CACHE"):
        return Path(os.environ["LINFLOW_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "linflow"


def download(dest=None, *, url: str = UCI_URL, sha256: dict | None = None, timeout: float = 60.0) -> Path:
    """Fetch the official UCI archive into a cache folder, verify it and unpack the ten batch files.

    The archive (a zip, possibly holding an inner zip) must contain ``batch1.dat`` ... ``batch10.dat``;
    ``sha256`` maps file names to expected digests (default: the published digest of ``batch1.dat``).
    Files are unpacked under a temporary name and renamed into place only when all checks pass.
    Returns the folder, e.g. for :func:`gas_sensor`. Already-verified data is not fetched again.

    Examples:
        >>> from linflow import datasets
        >>> folder = datasets.download()  # needs internet; cached afterwards  # doctest: +SKIP
        >>> prob, description = datasets.gas_sensor(folder)  # doctest: +SKIP
    """
    dest = Path(dest) if dest is not None else default_cache() / "gas_sensor"
    sha256 = {"batch1.dat": BATCH1_SHA256} if sha256 is None else dict(sha256)
    names = [f"batch{i}.dat" for i in range(1, 11)]
    if all((dest / n).exists() for n in names) and all(_sha256(dest / n) == h for n, h in sha256.items()):
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (user-requested download)
            blob = resp.read()
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
        raise ConnectionError(
            f"download() needs the network to fetch {url} and could not ({exc}). Without network access, "
            f"get the archive elsewhere and pass local files instead: gas_sensor(PATH) or "
            f"`linflow reproduce NAME --data PATH` with PATH a folder of batch1.dat ... batch10.dat, one such "
            f"file, or an ethanol.csv"
        ) from exc
    found = {}

    def scan(data: bytes) -> None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                base = Path(info.filename).name
                if base in names:
                    found[base] = zf.read(info)
                elif base.endswith(".zip"):
                    scan(zf.read(info))

    try:
        scan(blob)
    except zipfile.BadZipFile:
        raise ValueError(f"{url}: the download is not a zip archive") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{url}: the archive lacks {', '.join(missing)}")
    for name, digest in sha256.items():
        got = hashlib.sha256(found[name]).hexdigest()
        if got != digest:
            raise ValueError(f"{url}: {name} has sha256 {got}, expected {digest}")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in names:
        (tmp / name).write_bytes(found[name])
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


# ---------------------------------------------------------------------------------------------- MNIST

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_MD5 = {  # of the official gzip files (yann.lecun.com; identical on the usual mirrors)
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """One IDX file (gzip-compressed when its name ends in ``.gz``) as an array of its stored type and shape.

    Layout (LeCun's format): two zero bytes, a type byte (0x08 = unsigned byte, ...), the number of
    dimensions, then each dimension as a big-endian uint32, then the values in C order. A wrong magic
    number, a truncated file or trailing bytes raise ValueError naming the file.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; a cut gzip stream an EOFError
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable gzip file ({exc}); a truncated or corrupted download?") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected "
                         f"0000 then a type byte 08-0e and the number of dimensions, e.g. 00000803 for images)")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {header} needed for {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != size:
        state = "truncated" if len(raw) - header < size else "longer than its header says"
        raise ValueError(f"{path}: {state}: {len(raw) - header} data bytes, the header's shape {shape} needs {size}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


@dataclass(frozen=True)
class MnistData:
    """MNIST images ``(n, 28, 28)`` scaled to ``[-0.5, 0.5]``, labels ``(n,)`` in 0..9, the ``split`` read
    and a ``description`` of the files (to be quoted in every output that uses them)."""

    images: np.ndarray
    labels: np.ndarray
    split: str
    description: str

    def __len__(self) -> int:
        return len(self.labels)


def _mnist_file(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no {stem}.gz (nor {stem})")


def mnist(path, split: str = "auto", *, check_md5: bool = True, dtype=np.float64) -> MnistData:
    """Read the MNIST ``split`` (``"train"``, ``"test"``, or ``"auto"``: train when its files are in
    ``path``, else test) from a folder of the official IDX files.

    Pixels are scaled as in TensorFlow's MNIST tutorial, ``(x - 127.5) / 255`` in ``[-0.5, 0.5]``.
    With ``check_md5`` a ``.gz`` file with an official name must have the official md5 (:data:`MNIST_MD5`).

    Examples:
        >>> from linflow import datasets
        >>> data = datasets.mnist("path/to/mnist")  # doctest: +SKIP
        >>> data.images.shape, data.split  # doctest: +SKIP
        ((10000, 28, 28), 'test')
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path must be a folder holding the MNIST IDX files; {folder} is not a folder")
    if split == "auto":
        split = "train" if any((folder / (MNIST_FILES["train"][0] + s)).exists() for s in (".gz", "")) else "test"
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train', 'test' or 'auto'; got {split!r}")
    files = [_mnist_file(folder, stem) for stem in MNIST_FILES[split]]
    for f in files:
        expected = MNIST_MD5.get(f.name)
        if check_md5 and expected is not None:
            got = hashlib.md5(f.read_bytes()).hexdigest()
            if got != expected:
                raise ValueError(f"{f}: md5 {got} is not the official {expected} (a corrupted or different file; "
                                 f"pass check_md5=False to read it anyway)")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{files[0]}: expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or labels.dtype != np.uint8:
        raise ValueError(f"{files[1]}: expected {len(images)} uint8 labels (one per image), got {labels.dtype} "
                         f"{labels.shape}")
    if labels.max(initial=0) > 9:
        raise ValueError(f"{files[1]}: labels must be 0..9, found {int(labels.max())}")
    desc = (f"MNIST {split} split ({len(labels)} images, official IDX files"
            + (", md5 checked" if check_md5 and all(f.name in MNIST_MD5 for f in files) else "") + ")"
            + ("; the test split used as the training set (the training split was not available)"
               if split == "test" else ""))
    scaled = (images.astype(dtype) - 127.5) / 255.0
    return MnistData(scaled, labels.astype(np.int32), split, desc)
