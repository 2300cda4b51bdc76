import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from linflow import datasets

SHARED = next((p / "shared" / "data" / "gas_sensor" for p in Path(__file__).resolve().parents
               if (p / "shared" / "data" / "gas_sensor").is_dir()), None)
needs_data = pytest.mark.skipif(SHARED is None, reason="../shared/data/gas_sensor is not present beside this checkout")


def dat_line(cls, conc, values):
    return f"{cls};{conc:.6f} " + " ".join(f"{i}:{v:.6f}" for i, v in enumerate(values, start=1)) + "\n"


@needs_data
def test_batch1_all_six_gases():
    data = datasets.read_dat(SHARED / "batch1.dat")
    assert len(data) == 445 and data.features.shape == (445, 128)
    counts = {g: int(np.sum(data.gas == c)) for g, c in datasets.GASES.items()}
    # independent count straight from the text: the class before ';' on every line
    text_counts = {}
    for line in (SHARED / "batch1.dat").read_text().splitlines():
        c = int(line.split(";")[0])
        text_counts[c] = text_counts.get(c, 0) + 1
    assert counts == {g: text_counts.get(c, 0) for g, c in datasets.GASES.items()}
    assert set(np.unique(data.gas)) == {1, 2, 3, 4, 5, 6}
    assert np.all(data.batch == 1)
    first = (SHARED / "batch1.dat").read_text().splitlines()[0].split()
    assert data.concentration[0] == float(first[0].split(";")[1])
    assert data.features[0, 0] == float(first[1].split(":")[1]) and data.features[0, 127] == float(first[128].split(":")[1])


@needs_data
def test_ethanol_csv():
    data = datasets.read_csv(SHARED / "ethanol.csv")
    assert data.features.shape == (2565, 128)
    per_batch = [int(np.sum(data.batch == b)) for b in range(1, 11)]
    assert per_batch == [90, 164, 365, 64, 28, 514, 649, 30, 61, 600]
    # batch 1 rows of the csv are the ethanol rows of batch1.dat
    b1 = datasets.load_gas_sensor(SHARED / "batch1.dat")
    np.testing.assert_array_equal(np.sort(data.concentration[data.batch == 1]), np.sort(b1.concentration))
    prob, desc = datasets.gas_sensor(SHARED, p=4)
    assert prob.m == 2565 and prob.p == 4.0 and "standardize" in desc
    X = np.asarray(prob.X)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(X.std(axis=0), 1, rtol=1e-10)


def test_malformed_dat_names_file_and_line(tmp_path):
    good = dat_line(1, 10.0, np.arange(128.0))
    f = tmp_path / "batch3.dat"
    f.write_text(good + good.replace("57:", "57;"))
    with pytest.raises(ValueError, match=r"batch3.dat, line 2: expected 'index:value'"):
        datasets.read_dat(f)
    f.write_text(good + "x;1.0 1:2\n")
    with pytest.raises(ValueError, match=r"line 2: expected 'class;concentration'"):
        datasets.read_dat(f)
    f.write_text(good + dat_line(1, 5.0, np.arange(127.0)))
    with pytest.raises(ValueError, match="line 2: feature 128 is missing"):
        datasets.read_dat(f)
    f.write_text(good)
    assert datasets.read_dat(f).batch[0] == 3


def test_malformed_csv(tmp_path):
    f = tmp_path / "ethanol.csv"
    header = "batch,concentration," + ",".join(f"f{i}" for i in range(1, 129)) + "\n"
    f.write_text(header + "1,10," + ",".join(["1.0"] * 128) + "\n" + "1,oops," + ",".join(["1.0"] * 128) + "\n")
    with pytest.raises(ValueError, match="ethanol.csv, line 3: a field is not a number"):
        datasets.read_csv(f)
    f.write_text("a,b\n")
    with pytest.raises(ValueError, match="line 1: expected the header"):
        datasets.read_csv(f)


def test_gas_selection_and_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    lines = [dat_line(c, 10.0 * (i + 1), rng.standard_normal(128) * 100 + 5) for i, c in enumerate([1, 2, 1, 1, 3, 1])]
    (tmp_path / "batch2.dat").write_text("".join(lines))
    data = datasets.load_gas_sensor(tmp_path, "ethanol")
    assert len(data) == 4 and np.all(data.batch == 2)
    prob, desc = datasets.gas_sensor(tmp_path, preprocessing="none")
    np.testing.assert_allclose(np.asarray(prob.Y)[:, 0], [10.0, 30.0, 40.0, 60.0])
    assert "raw" in desc
    with pytest.raises(ValueError, match="gas must be one of"):
        datasets.load_gas_sensor(tmp_path, "helium")
    with pytest.raises(ValueError, match="no toluene samples"):
        datasets.load_gas_sensor(tmp_path, "toluene")
    with pytest.raises(ValueError, match="preprocessing must be one of"):
        datasets.gas_sensor(tmp_path, preprocessing="whiten")
    # scaled: unit variance, means kept (no bias term: the weights must fit them)
    prob, desc = datasets.gas_sensor(tmp_path, preprocessing="scaled")
    y = np.array([10.0, 30.0, 40.0, 60.0])
    np.testing.assert_allclose(np.asarray(prob.Y)[:, 0], y / y.std())
    X = np.asarray(prob.X)
    np.testing.assert_allclose(X.std(axis=0), 1.0)
    raw = np.asarray(datasets.gas_sensor(tmp_path, preprocessing="none")[0].X)
    np.testing.assert_allclose(X.mean(axis=0), raw.mean(axis=0) / raw.std(axis=0))
    assert "not centred" in desc


def _serve(payload: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/archive.zip"


def test_download_from_a_local_server(tmp_path):
    rng = np.random.default_rng(1)
    files = {f"batch{i}.dat": "".join(dat_line(1 + j % 6, 5.0 + j, rng.standard_normal(128)) for j in range(7)).encode()
             for i in range(1, 11)}
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:  # the UCI archive nests a zip with a Dataset/ folder
        for name, content in files.items():
            zf.writestr(f"Dataset/{name}", content)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("Dataset.zip", inner.getvalue())
    server, url = _serve(outer.getvalue())
    try:
        digest = {"batch1.dat": hashlib.sha256(files["batch1.dat"]).hexdigest()}
        folder = datasets.download(tmp_path / "cache", url=url, sha256=digest)
        assert sorted(p.name for p in folder.iterdir()) == sorted(files)
        assert (folder / "batch7.dat").read_bytes() == files["batch7.dat"]
        data = datasets.load_gas_sensor(folder, "ethylene")
        assert len(data) == 10 * sum(1 for j in range(7) if 1 + j % 6 == 2)
        with pytest.raises(ValueError, match="has sha256"):
            datasets.download(tmp_path / "other", url=url, sha256={"batch1.dat": "0" * 64})
        assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()
    finally:
        server.shutdown()
    # already verified: no network needed the second time
    assert datasets.download(tmp_path / "cache", url="http://127.0.0.1:9/none", sha256=digest) == folder


def test_download_offline_says_it_needs_the_network_and_how_to_pass_local_files(tmp_path):
    # port 9 (discard) on the loopback: nothing listens, the connection is refused at once
    with pytest.raises(ConnectionError, match="needs the network") as err:
        datasets.download(tmp_path / "cache", url="http://127.0.0.1:9/gas.zip", timeout=5)
    assert "--data PATH" in str(err.value) and "gas_sensor(PATH)" in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@needs_data
def test_whitened_preprocessing_on_the_real_data():
    """ICLR 2019 setting: centred inputs with X^T X / m = I and a standardized target, from the real data."""
    prob, desc = datasets.gas_sensor(SHARED, preprocessing="whitened")
    X, Y = np.asarray(prob.X), np.asarray(prob.Y)
    raw = datasets.load_gas_sensor(SHARED)
    assert X.shape[0] == len(raw) and "whitened" in desc
    np.testing.assert_allclose(X.T @ X / len(X), np.eye(X.shape[1]), atol=1e-12)
    assert abs(Y.mean()) < 1e-12 and abs((Y**2).mean() - 1.0) < 1e-12
    # the same column space as the standardized features: whitening is an invertible change of basis on it
    Z, *_ = np.linalg.lstsq(np.asarray(datasets.gas_sensor(SHARED)[0].X), X, rcond=None)
    np.testing.assert_allclose(np.asarray(datasets.gas_sensor(SHARED)[0].X) @ Z, X, atol=1e-6)


def test_whitened_drops_directions_without_variance(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 3))
    feats = np.concatenate([base @ rng.standard_normal((3, 127)), np.full((12, 1), 7.0)], axis=1)  # rank 3 + constant
    (tmp_path / "batch1.dat").write_text("".join(dat_line(1, 10.0 + i, f) for i, f in enumerate(feats)))
    prob, _ = datasets.gas_sensor(tmp_path, preprocessing="whitened")
    X = np.asarray(prob.X)
    assert X.shape == (12, 3)
    np.testing.assert_allclose(X.T @ X / 12, np.eye(3), atol=1e-12)
