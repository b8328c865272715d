"""MNIST idx files, CIFAR archives (restricted unpickling, safe extraction), downloads."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from mlpmixer.data import build_dataset
from mlpmixer.data import cifar as cifar_module
from mlpmixer.data.fetch import fetch, md5_of, safe_extract
from mlpmixer.data.idx import read_idx
from mlpmixer.errors import DataError, DownloadError

RNG = np.random.default_rng(0)


def write_idx(path, array: np.ndarray) -> None:
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def make_idx_dir(root, n_train=12, n_test=6):
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n, suffix in (("train", n_train, ".gz"), ("t10k", n_test, "")):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        arrays[prefix] = (images, labels)
    return arrays


def test_idx_directory_round_trip(tmp_path):
    arrays = make_idx_dir(tmp_path / "fashion")
    test, info = build_dataset(tmp_path / "fashion", "test")
    images, labels = arrays["t10k"]
    assert len(test) == 6 and info.class_names[0] == "T-shirt/top"  # "fashion" in the path
    for i in range(6):
        x, y = test[i]
        np.testing.assert_allclose(x[0].numpy(), images[i] / 255.0, atol=1e-7)
        assert y == labels[i]
    train_images = arrays["train"][0] / 255.0
    np.testing.assert_allclose(info.mean, [train_images.mean()], atol=1e-6)
    np.testing.assert_allclose(info.std, [train_images.std()], atol=1e-6)


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01\x02")
    with pytest.raises(DataError, match="10 bytes"):
        read_idx(bad)
    (tmp_path / "magic").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic")
    empty = tmp_path / "data"
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
        build_dataset("mnist", root=empty, download=False)


def test_offline_download_says_which_file_to_put_where(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DownloadError) as caught:
        build_dataset("cifar10", root=tmp_path)
    message = str(caught.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "cifar10") in message
    assert not list(tmp_path.rglob("*.tmp"))


def test_fetch_checks_the_md5(tmp_path, monkeypatch):
    payload = b"some bytes"
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(payload))
    target = tmp_path / "file.bin"
    with pytest.raises(DataError, match="MD5"):
        fetch("https://example.invalid/file.bin", target, "0" * 32)
    assert not target.exists()
    import hashlib

    good = hashlib.md5(payload).hexdigest()
    assert fetch("https://example.invalid/file.bin", target, good).read_bytes() == payload
    assert md5_of(target) == good


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def make_cifar_archive(directory, n_per_batch=4):
    """A CIFAR-10-shaped archive: five train batches, a test batch and the meta file."""
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = list(RNG.integers(0, 10, size=n_per_batch).tolist())
        batches[name] = (data, labels)
    meta = {
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
    }
    archive = directory / "cifar-10-python.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        files = {n: {"data": d, "labels": y} for n, (d, y) in batches.items()} | {
            "batches.meta": meta
        }
        for name, content in files.items():
            blob = _pickle_bytes(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return archive, batches


def test_cifar_archive_is_checked_extracted_and_read(tmp_path, monkeypatch):
    archive, batches = make_cifar_archive(tmp_path / "cifar10")
    monkeypatch.setitem(cifar_module.VARIANTS["cifar10"], "md5", md5_of(archive))
    test, info = build_dataset("cifar10", "test", root=tmp_path)
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()
    assert info.class_names[1] == "automobile" and info.in_chans == 3 and info.img_size == (32, 32)
    data, labels = batches["test_batch"]
    x, y = test[2]
    np.testing.assert_allclose(x.numpy(), data[2].reshape(3, 32, 32) / 255.0, atol=1e-7)
    assert y == labels[2]
    train, _ = build_dataset(tmp_path / "cifar10" / "cifar-10-batches-py", "train")  # the folder
    assert len(train) == 20


def test_cifar_archive_with_a_wrong_checksum_is_refused(tmp_path):
    make_cifar_archive(tmp_path / "cifar10")
    with pytest.raises(DataError, match="MD5"):
        build_dataset("cifar10", root=tmp_path)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickles_cannot_run_code(tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(_pickle_bytes({"label_names": [_Exploit()]}))
    with pytest.raises(DataError, match="refusing"):
        build_dataset(folder)
    assert "pwned" not in capsys.readouterr().out


def _tar_with(path, member: tarfile.TarInfo, payload: bytes = b"x"):
    with tarfile.open(path, "w") as tar:
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)


@pytest.mark.parametrize(
    "name", ["../escaped.txt", "/tmp/absolute-mlpmixer-test.txt", "a/../../up.txt"]
)
def test_safe_extract_refuses_paths_outside_the_target(tmp_path, name):
    archive = tmp_path / "evil.tar"
    _tar_with(archive, tarfile.TarInfo(name))
    target = tmp_path / "out" / "inner"
    with pytest.raises(DataError, match="unsafe path"):
        safe_extract(archive, target)
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "up.txt").exists()
    assert list(target.iterdir()) == []


def test_safe_extract_refuses_links(tmp_path):
    link = tarfile.TarInfo("data/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = tmp_path / "links.tar"
    _tar_with(archive, link)
    with pytest.raises(DataError, match="link"):
        safe_extract(archive, tmp_path / "out")
    good = tmp_path / "good.tar"
    _tar_with(good, tarfile.TarInfo("folder/file.txt"), b"hello")
    safe_extract(good, tmp_path / "ok")
    assert (tmp_path / "ok" / "folder" / "file.txt").read_bytes() == b"hello"


def _tar_of(path, *members: tuple[tarfile.TarInfo, bytes]):
    with tarfile.open(path, "w") as tar:
        for member, payload in members:
            member.size = len(payload) if member.isfile() else 0
            tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


@pytest.mark.parametrize(
    "member",
    [
        _link("data/inside", tarfile.SYMTYPE, "file.txt"),  # tarfile's data filter allows it
        _link("data/hard", tarfile.LNKTYPE, "data/file.txt"),  # and this
        _link("data/up", tarfile.SYMTYPE, "../.."),
        _link("data/dev", tarfile.CHRTYPE, ""),
        _link("data/disk", tarfile.BLKTYPE, ""),
        _link("data/fifo", tarfile.FIFOTYPE, ""),
    ],
    ids=["symlink-inside", "hardlink-inside", "symlink-up", "char-device", "block-device", "fifo"],
)
def test_safe_extract_refuses_links_and_special_files_and_writes_nothing(tmp_path, member):
    """Refused even after good members (they went to a temporary folder, now gone)."""
    good = tarfile.TarInfo("data/file.txt")
    archive = tmp_path / "a.tar"
    folder = tarfile.TarInfo("data")
    folder.type = tarfile.DIRTYPE
    _tar_of(archive, (folder, b""), (good, b"ok"), (member, b""))
    target = tmp_path / "out"
    with pytest.raises(DataError, match=f"{member.name!r} is a link or special file"):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []


def test_safe_extract_drops_setuid_and_group_write_bits(tmp_path):
    """The archive's mode bits are tamed (tarfile's data filter does it now; before, every file
    was written with the default mode)."""
    member = tarfile.TarInfo("data/tool")
    member.mode = 0o6777  # setuid, setgid, writable by everyone
    archive = tmp_path / "modes.tar"
    _tar_of(archive, (member, b"#!/bin/sh\n"))
    safe_extract(archive, tmp_path / "out")
    mode = (tmp_path / "out" / "data" / "tool").stat().st_mode
    assert mode & 0o7022 == 0 and mode & 0o600 == 0o600, oct(mode)


def test_loader_workers_decode(tmp_path):
    make_idx_dir(tmp_path / "mnist")
    dataset, _ = build_dataset(tmp_path / "mnist", "train")
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)
    images = torch.cat([x for x, _ in loader])
    assert images.shape == (12, 1, 28, 28)


def test_without_tarfiles_filters_extraction_is_refused_with_what_to_do(tmp_path, monkeypatch):
    """Python < 3.10.12 / 3.11.4 has no extraction filters: say so, extract nothing."""
    archive = tmp_path / "a.tar"
    _tar_of(archive, (tarfile.TarInfo("file.txt"), b"x"))
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(DataError, match=r"needs tarfile's extraction filters \(Python >= 3\.10"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "file.txt").exists()
