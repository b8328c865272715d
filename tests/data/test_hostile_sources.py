"""Hostile shard servers and indexes: every remote read stops with one line and exit 1 within
the stall window (1 s here), a bounded body, or a clear exit 2 naming the index key.

The server is a `shards.serve`-style handler on 127.0.0.1 that serves the real shard folder
except for the requests it is told to misbehave on: never answer, answer one byte at a time,
or send an endless body.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import time
import types

import pytest
from click.testing import CliRunner
from PIL import Image

from local_http import local_server
from mlpmixer.cli import cli
from mlpmixer.data import build_dataset
from mlpmixer.data.pack import pack_shards
from mlpmixer.errors import DataError, DownloadError
from shard_helpers import _Quiet, make_shards

STALL_S = 1.0
BOUND_S = 20.0  # generous for a loaded machine: the point is "not 300 s, not until OOM"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(autouse=True)
def _short_stall(monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_STALL_S", str(STALL_S))


class _Hostile(_Quiet):
    """Serves the folder; a GET of a path containing ``target`` gets ``mode`` instead."""

    target = ""
    mode = ""

    def do_HEAD(self) -> None:  # the size check before training asks each shard's size
        if self.target in self.path and self.mode == "silent-head":
            time.sleep(3600)
        return super().do_HEAD()

    def do_GET(self) -> None:
        if self.target not in self.path or self.mode == "silent-head":
            return super().do_GET()
        if self.mode == "silent":  # accepts the connection, never answers
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            if self.mode == "trickle":  # a byte every 0.3 s: alive, but far below 1 KiB/s
                for _ in range(10_000):
                    self.wfile.write(b"{")
                    self.wfile.flush()
                    time.sleep(0.3)
            elif self.mode == "slow-trickle":  # a byte every 2 s: each wait passes the window
                for _ in range(10_000):
                    self.wfile.write(b"{")
                    self.wfile.flush()
                    time.sleep(2.0)
            elif self.mode == "endless":  # fast and without end (no Content-Length)
                chunk = b" " * (1 << 20)
                while True:
                    self.wfile.write(chunk)
        except OSError:  # the client gave up: what the test wants
            pass


def _serving(folder, target: str, mode: str):
    handler = type("H", (_Hostile,), {"target": target, "mode": mode})
    return local_server(functools.partial(handler, directory=str(folder)))


def _train(url: str, tmp_path) -> tuple[object, float]:
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["train", "--dataset", url, "--steps", "1", "--batch-size", "8",
                                      "--model", "mixer_t2_8", "--set", "model.img_size=8",
                                      "--set", "run.progress=none", "--set", "run.plot=false",
                                      "--set", "data.num_workers=0", "--out", str(tmp_path / "run")])  # fmt: skip
    return result, time.monotonic() - start


def _one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("target", "mode", "says"),
    [
        ("index.json", "silent", "no answer within 1 s"),
        ("index.json", "trickle", "stalled"),
        ("index.json", "slow-trickle", "no answer within 1 s"),
        ("train-000000.tar", "silent", "no answer within 1 s"),
        ("train-000003.tar", "silent-head", "read shard (listed in the index) http"),
        ("train-000000.tar", "trickle", "stalled"),
        ("train-000000.tar", "endless", "bytes (the size the index records)"),
    ],
)
def test_a_hostile_server_ends_train_with_one_line_and_exit_1(shards, tmp_path, target, mode, says):
    with _serving(shards, target, mode) as url:
        result, seconds = _train(url, tmp_path)
    line = _one_line_error(result)
    assert result.exit_code == 1 and says in line and target in line, result.output
    assert seconds < BOUND_S


def test_an_endless_index_is_cut_at_its_cap(shards):
    start = time.monotonic()
    with _serving(shards, "index.json", "endless") as url, pytest.raises(DownloadError) as caught:
        build_dataset(url, "train")
    assert "more than 67,108,864 bytes (the limit for a shard index)" in str(caught.value)
    assert time.monotonic() - start < BOUND_S


def _index_with(shards, tmp_path, change) -> str:
    index = json.loads((shards / "index.json").read_text())
    change(index)
    folder = tmp_path / "copy"
    folder.mkdir()
    for shard in shards.glob("*.tar"):
        (folder / shard.name).symlink_to(shard)
    (folder / "index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    return str(folder)


def _set(key, value):
    def change(index):
        index["splits"]["train"][0][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_set("count", 10**15), r"splits\.train\[0\]\.count: 1000000000000000 samples cannot"),
        (_set("count", "5"), r"splits\.train\[0\]\.count: expected an integer, got '5'"),
        (_set("count", True), r"splits\.train\[0\]\.count: expected an integer"),
        (_set("bytes", -1), r"splits\.train\[0\]\.bytes: -1 is outside"),
        (_set("sha256", "x"), r"splits\.train\[0\]\.sha256: expected 64"),
        (_set("name", "../x.tar"), r"splits\.train\[0\]\.name: expected a file name"),
        (lambda i: i["splits"].update(train=[]), r"splits\.train: expected a non-empty list"),
        (lambda i: i.update(class_names=[1, 2]), r"class_names\[0\]: expected a string"),
        (lambda i: i["splits"]["train"].append([[[]]]), r"splits\.train\[8\]: expected a shard"),
    ],
)
def test_bad_index_values_are_refused_naming_the_key(shards, tmp_path, change, says):
    with pytest.raises(DataError, match=says):
        build_dataset(_index_with(shards, tmp_path, change), "train")


def test_a_deeply_nested_index_is_refused_without_a_traceback(shards, tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "index.json").write_text("[" * 200_000 + "]" * 200_000)
    result = CliRunner().invoke(cli, ["train", "--dataset", str(folder), "--steps", "1",
                                      "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and "nested too deeply" in _one_line_error(result)


def test_a_huge_count_stops_before_training(shards, tmp_path):
    """Was: "1000000000000056 train images", then a worker traceback allocating 8e15 bytes."""
    dataset = _index_with(shards, tmp_path, _set("count", 10**15))
    result = CliRunner().invoke(cli, ["train", "--dataset", dataset, "--steps", "1",
                                      "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2 and ".count: 1000000000000000" in _one_line_error(result)


# --- Hugging Face streaming: huggingface_hub's waits, the size cap, and a watched stream ----


class _Feature:
    def __init__(self, decode=True, names=None):
        self.decode, self.names = decode, names


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 99, 199)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Stream:
    """A streamed split (a stand-in for ``datasets``): ``rows``, each after ``delay_s``, then
    ``error`` raised instead of the next one, if given."""

    def __init__(self, module, rows, delay_s=0.0, error=None):
        self.features = {"img": module.Image(), "label": module.ClassLabel(["a", "b", "c"])}
        self.rows, self.delay_s, self.error = rows, delay_s, error

    def cast_column(self, column, feature):
        return self

    def shuffle(self, seed, buffer_size):
        return _Buffered(self, buffer_size)

    def __iter__(self):
        for row in self.rows:
            time.sleep(self.delay_s)
            yield row
        if self.error is not None:
            raise self.error


class _Buffered(_Stream):
    """``datasets``' shuffle as the consumer sees it: nothing until ``size`` rows (or all)
    are read, then rows in a burst."""

    def __init__(self, stream, size):
        self.__dict__.update(stream.__dict__)
        self.size = size

    def __iter__(self):
        held = []
        for row in super().__iter__():
            held.append(row)
            if len(held) >= self.size:
                yield from held
                held = []
        yield from held


def _fake_datasets(monkeypatch, **stream):
    """``datasets`` replaced by a stand-in whose splits are ``_Stream(**stream)``."""
    module = types.SimpleNamespace(ClassLabel=type("ClassLabel", (_Feature,), {}),
                                   Image=type("Image", (_Feature,), {}))  # fmt: skip
    module.ClassLabel.__init__ = lambda self, names: setattr(self, "names", names)
    module.load_dataset = lambda *a, **k: {"train": _Stream(module, **stream),
                                           "test": _Stream(module, **stream)}  # fmt: skip
    monkeypatch.setitem(sys.modules, "datasets", module)
    for name in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_DISABLE_XET"):
        monkeypatch.setenv(name, "unset")  # so that the test's end removes what _load sets
        monkeypatch.delenv(name)


def _records(count: int) -> list[dict]:
    return [{"img": {"bytes": _png(), "path": None}, "label": i % 3} for i in range(count)]


def test_hugging_face_reads_get_the_stall_window_and_the_size_cap(monkeypatch, tmp_path):
    _fake_datasets(monkeypatch, rows=[{"img": {"bytes": b"x" * 4096, "path": None}, "label": 0}])
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_MAX_BYTES", "1000")
    with pytest.raises(DataError, match=r"hf:x: split 'train' sample 0 has 4,096 bytes, more than"):
        pack_shards("hf:x", tmp_path / "out")
    assert os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] == os.environ["HF_HUB_ETAG_TIMEOUT"] == "1"


def test_a_trickling_hugging_face_stream_ends_data_pack_with_one_line_and_exit_1(
    monkeypatch, tmp_path
):
    """Was: a record every 2 s (what a byte every 2 s gives: no per-read timeout fires, the
    reader is inside ``datasets``) packed on, however long; a stuck reader hung without a word."""
    _fake_datasets(monkeypatch, rows=_records(3), delay_s=2.0)
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["data", "pack", "hf:org/set", str(tmp_path / "out")])
    seconds = time.monotonic() - start
    line = _one_line_error(result)
    assert result.exit_code == 1, result.output
    assert line == (
        "error: hf:org/set: split 'train': the download stalled (no record in the last 1 s, 0 in all); "
        "try again later ($MLPMIXER_DOWNLOAD_STALL_S sets the window)"
    )
    assert seconds < 2.0  # ended by the window, before the first record came


def test_a_slow_hugging_face_stream_within_the_window_packs_every_record(monkeypatch, tmp_path):
    """Records every 0.4 s: 1.6 s in all, more than the window. The training split is
    shuffled; were it shuffled by ``datasets``' buffer, under the window, its first record
    would come after all four were read (a false stall)."""
    _fake_datasets(monkeypatch, rows=_records(4), delay_s=0.4)
    index = pack_shards("hf:x", tmp_path / "out", samples_per_shard=3)
    assert [e["count"] for e in index["splits"]["train"]] == [3, 1]
    train, _ = build_dataset(tmp_path / "out", "train", img_size=4)
    test, _ = build_dataset(tmp_path / "out", "test", img_size=4)
    assert sorted(train[i][1] for i in range(4)) == [0, 0, 1, 2]
    assert [test[i][1] for i in range(4)] == [0, 1, 2, 0]  # not shuffled: the stream's order


def test_an_error_of_the_hugging_face_reader_comes_through_unchanged(monkeypatch, tmp_path):
    error = ConnectionResetError(104, "the hub reset the connection")
    _fake_datasets(monkeypatch, rows=_records(2), error=error)
    with pytest.raises(ConnectionResetError) as caught:
        pack_shards("hf:x", tmp_path / "out")
    assert caught.value is error
