"""MNIST/digits loading, preprocessing, splits and the md5-checked download (labml.data)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from labml import data
from labml.errors import UserError


def _write_mnist(folder: Path, n_train: int, n_test: int = 20, subset: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    prefix = "train-5k" if subset else "train"
    folder.mkdir(parents=True, exist_ok=True)
    data.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    data.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    data.write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    data.write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)


def test_mnist_folder_loads_with_reference_preprocessing(tmp_path):
    _write_mnist(tmp_path, 50, subset=True)
    ds = data.load_dataset(tmp_path, val_fraction=0.2, seed=1)
    assert ds.name == "mnist" and ds.n_features == 196 and ds.image_shape == (14, 14)
    assert len(ds.y_train) == 40 and len(ds.y_val) == 10 and len(ds.y_test) == 20
    assert set(np.unique(ds.X_train)) <= {0.0, 1.0}


def test_reference_preprocessing_is_maxpool_then_threshold():
    img = np.zeros((1, 4, 4), np.float32)
    img[0, 0, 1] = 0.6  # block (0, 0): max 0.6 -> 1
    img[0, 3, 3] = 0.5  # block (1, 1): max 0.5 -> 0 (strictly above 0.5 is 1)
    img[0, 2, 0] = 0.9  # block (1, 0) -> 1
    x = data.preprocess(img, "pool-threshold")
    assert x.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    assert data.preprocess(img, "threshold").shape == (1, 16)  # the Boltzmann-machine setting: no pooling


def test_full_training_files_win_over_the_5k_subset(tmp_path):
    _write_mnist(tmp_path, 30, subset=True)
    _write_mnist(tmp_path, 70, subset=False)
    files = data.find_mnist_files(tmp_path)
    assert files[("train", "images")].name == "train-images-idx3-ubyte.gz"
    ds = data.load_dataset(tmp_path, val_fraction=0.0, preprocess_mode="threshold")
    assert len(ds.y_train) == 70 and ds.n_features == 784


def test_data_folder_from_environment(tmp_path, monkeypatch):
    _write_mnist(tmp_path, 20, subset=True)
    monkeypatch.setenv("LABML_DATA", str(tmp_path))
    assert data.load_dataset(None).name == "mnist"


def test_missing_file_is_named(tmp_path):
    _write_mnist(tmp_path, 20, subset=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte"):
        data.load_dataset(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        data.load_dataset(tmp_path / "nowhere")


def test_corrupt_files_are_named(tmp_path):
    _write_mnist(tmp_path, 20, subset=True)
    bad = tmp_path / "train-5k-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(raw[:-10]))  # truncated payload
    with pytest.raises(UserError, match="train-5k-images-idx3-ubyte.gz is corrupt"):
        data.load_dataset(tmp_path)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="train-5k-images-idx3-ubyte.gz is corrupt"):
        data.load_dataset(tmp_path)


def test_images_and_labels_must_agree(tmp_path):
    _write_mnist(tmp_path, 20, subset=True)
    data.write_idx(tmp_path / "train-5k-labels-idx1-ubyte.gz", np.arange(19) % 10)
    with pytest.raises(UserError, match="20 images .* 19 labels"):
        data.load_dataset(tmp_path)


def test_builtin_digits(monkeypatch):
    monkeypatch.setenv("LABML_DATA", "digits")
    ds = data.load_dataset(None, seed=0)
    assert ds.name == "digits" and ds.n_features == 64 and ds.image_shape == (8, 8)
    assert set(np.unique(ds.X_train)) <= {0.0, 1.0}
    assert len(ds.y_test) == 450  # fixed 25 % stratified test split
    assert abs(len(ds.y_val) - 0.2 * (len(ds.y_train) + len(ds.y_val))) <= 1


def test_seeded_shuffle_and_train_size(monkeypatch):
    monkeypatch.setenv("LABML_DATA", "digits")
    a = data.load_dataset(None, seed=3, train_size=100)
    b = data.load_dataset(None, seed=3, train_size=100)
    c = data.load_dataset(None, seed=4, train_size=100)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_train, c.y_train)
    assert len(a.y_train) + len(a.y_val) == 100
    np.testing.assert_array_equal(a.X_test, c.X_test)  # the test set does not depend on the seed
    with pytest.raises(UserError, match="--train-size 100000"):
        data.load_dataset(None, train_size=100000)


def test_stratified_subset_keeps_class_shares(monkeypatch):
    monkeypatch.setenv("LABML_DATA", "digits")
    ds = data.load_dataset(None)
    X, y = data.stratified_subset(ds.X_test, ds.y_test, 100)
    assert len(y) == 100 and np.bincount(y, minlength=10).min() >= 9


# -------------------------------------------------------------------------------- where the data comes from
@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """An empty user data folder (what platformdirs would give for a fresh HOME) and no $LABML_DATA."""
    folder = tmp_path / "home" / "labml" / "mnist"
    monkeypatch.setattr(data, "user_data_dir", lambda: folder)
    monkeypatch.delenv("LABML_DATA", raising=False)
    return folder


def test_user_data_dir_is_platformdirs_labml_mnist():
    import platformdirs

    assert data.user_data_dir() == Path(platformdirs.user_data_dir("labml", appauthor=False)) / "mnist"


def test_explicit_data_wins_over_the_environment_which_wins_over_the_user_folder(tmp_path, user_dir,
                                                                                monkeypatch):
    _write_mnist(user_dir, 10, subset=True)
    env, given = tmp_path / "env", tmp_path / "given"
    assert data.resolve_data_dir(None) == user_dir  # the user data folder, when it holds MNIST
    monkeypatch.setenv("LABML_DATA", str(env))
    assert data.resolve_data_dir(None) == env.resolve()
    assert data.resolve_data_dir("") == env.resolve()  # an empty parameter is "not given"
    assert data.resolve_data_dir(given) == given.resolve()
    assert data.resolve_data_dir("digits") == data.DIGITS
    monkeypatch.setenv("LABML_DATA", "digits")
    assert data.resolve_data_dir(None) == data.DIGITS and data.load_dataset(None).name == "digits"


def test_relative_and_home_folders_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert data.resolve_data("mnist") == str(tmp_path / "mnist")
    assert data.resolve_data("~/m") == str(tmp_path / "h" / "m")


def test_no_data_anywhere_is_one_line_naming_where_it_looked_and_the_command(user_dir):
    with pytest.raises(UserError) as err:
        data.resolve_data_dir(None)
    msg = str(err.value)
    assert "\n" not in msg and "--data" in msg and "$LABML_DATA" in msg and str(user_dir) in msg
    assert "labml data download" in msg
    with pytest.raises(UserError, match="labml data download"):
        data.load_dataset(None)
    _write_mnist(user_dir, 10, subset=True)  # after the download: found there
    assert data.load_dataset(None).name == "mnist"


def test_download_target_defaults_to_the_user_folder(user_dir, monkeypatch):
    from labml.cli import main

    calls = []
    monkeypatch.setattr(data, "download_mnist", lambda folder, **kw: calls.append(folder) or [])
    assert main(["data", "download"]) == 0
    assert calls == [user_dir]  # the same folder every command reads by default
    assert main(["data", "download", "--data", str(user_dir.parent / "x")]) == 0
    assert calls[-1] == (user_dir.parent / "x").resolve()
    with pytest.raises(UserError, match="nothing to download"):
        data.resolve_data_dir("digits", for_download=True)


def test_the_committed_fixture_is_balanced_real_mnist(mnist_dir):
    tr_im, y_tr, te_im, y_te, _ = data.load_mnist_arrays(mnist_dir)
    assert tr_im.shape == (800, 28, 28) and te_im.shape == (200, 28, 28)
    assert np.bincount(y_tr).tolist() == [80] * 10 and np.bincount(y_te).tolist() == [20] * 10
    assert sum(p.stat().st_size for p in Path(mnist_dir).iterdir()) < 300_000


def test_the_fixture_generator_rebuilds_the_committed_files(tmp_path, mnist_dir, full_mnist_dir):
    """tests/data/make_mnist_mini.py is deterministic: from the 5k MNIST subset it gives the same bytes."""
    import importlib.util

    script = Path(mnist_dir).parent / "make_mnist_mini.py"
    spec = importlib.util.spec_from_file_location("make_mnist_mini", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if data.find_mnist_files(full_mnist_dir)[("train", "images")].name.startswith("train-images"):
        pytest.skip("the fixture was drawn from the 5k subset (train-5k-*); this folder has the 60k set")
    built = mod.build(full_mnist_dir, tmp_path / "mini")
    for name, digest in built.items():
        assert hashlib.md5((Path(mnist_dir) / name).read_bytes()).hexdigest() == digest, name


# ---------------------------------------------------------------------------------------------- download
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """Two local mirrors on 127.0.0.1: good/ serves the right files, bad/ serves a wrong one."""
    root = tmp_path / "www"
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _serve_files(root: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    md5 = {}
    for name in data.MNIST_MD5:
        payload = gzip.compress(rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
        (root / "good" / name).write_bytes(payload)
        (root / "bad" / name).write_bytes(payload[:-1] + b"X")
        md5[name] = hashlib.md5(payload).hexdigest()
    return md5


def test_download_checks_md5_and_falls_back_to_the_next_mirror(http_root, tmp_path):
    root, url = http_root
    md5 = _serve_files(root)
    dest = tmp_path / "mnist"
    paths = data.download_mnist(dest, mirrors=[f"{url}/missing/", f"{url}/bad/", f"{url}/good/"], files=md5)
    assert sorted(p.name for p in paths) == sorted(md5)
    for p in paths:
        assert data.md5sum(p) == md5[p.name]
    assert not list(dest.glob(".*.part"))


def test_download_fails_clearly_when_no_mirror_has_a_good_file(http_root, tmp_path):
    root, url = http_root
    md5 = _serve_files(root)
    with pytest.raises(UserError, match=r"could not download t10k-images-idx3-ubyte.gz.*md5"):
        data.download_mnist(
            tmp_path / "m",
            mirrors=[f"{url}/bad/"],
            files={"t10k-images-idx3-ubyte.gz": md5["t10k-images-idx3-ubyte.gz"]},
        )
    assert not (tmp_path / "m" / "t10k-images-idx3-ubyte.gz").exists()


def test_download_command_with_a_mirror(http_root, tmp_path, monkeypatch, capsys):
    from labml.cli import main

    root, url = http_root
    md5 = _serve_files(root)
    monkeypatch.setattr(data, "MNIST_MD5", md5)
    dest = tmp_path / "d"
    assert main(["data", "download", "--data", str(dest), "--mirror", f"{url}/good/", "--json"]) == 0
    assert len(list(dest.glob("*.gz"))) == 4
    # Present files with the right md5 are kept; a bad mirror is then never asked.
    assert main(["data", "download", "--data", str(dest), "--mirror", f"{url}/bad/"]) == 0
