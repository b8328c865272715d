"""Training on ``hf:NAME`` (not packed): the download ``datasets.load_dataset`` makes gets the
stall window, size cap and one-line exit of our downloads (`mlpmixer.hub_reads`).

The server is on 127.0.0.1. ``datasets`` is replaced by a stand-in that does what the real
one does at the boundary that matters: it reads the hub's files through ``huggingface_hub``'s
shared HTTP client (``get_session``), then builds its table. With the real package installed,
a test in a subprocess points the real ``datasets`` (``HF_ENDPOINT``) at a trickling server.
Each call runs in a thread joined with a bound, so a hang (main's behaviour: the client has no
timeout and a trickle passes every per-read one) fails the test instead of the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import types

import pytest
from click.testing import CliRunner

from local_http import local_server
from mlpmixer.cli import cli
from mlpmixer.data.hf import _load
from mlpmixer.errors import DataError, DownloadError
from shard_helpers import _Quiet

pytest.importorskip("huggingface_hub")
STALL_S = 1.0
BOUND_S = 20.0  # generous for a loaded machine; main's code never returns at all
ENV = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_DISABLE_XET")


@pytest.fixture(autouse=True)
def _short_stall(monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_STALL_S", str(STALL_S))
    for name in ENV:  # so that the test's end removes what _load sets
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


class _Hub(_Quiet):
    """``mode``: ``ok`` (a 4 KB file at once), ``silent`` (never answers), ``trickle`` (the
    whole answer to any request, a long head and a body, a byte every 0.3 s), ``slow``
    (4 KB at 2 KB/s: slow, above the minimum rate), ``big`` (100 kB at once)."""

    mode = "ok"
    release = threading.Event()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.mode == "silent":
            self.release.wait(60)
            return
        if self.mode == "trickle":
            head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 1000 + b"\r\nContent-Length: 9\r\n"
            answer = head + b"\r\n" + b"x" * 9  # its head alone takes 5 minutes
            for byte in answer:
                if self.release.wait(0.3):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        size = {"ok": 4096, "slow": 4096, "big": 100_000}[self.mode]
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.mode == "slow":
            for _ in range(8):
                time.sleep(0.25)
                self.wfile.write(b"x" * 512)
                self.wfile.flush()
        else:
            self.wfile.write(b"x" * size)


def _hub(mode: str) -> type[_Hub]:
    return type("Hub", (_Hub,), {"mode": mode, "release": threading.Event()})


def _fake_datasets(monkeypatch, base: str, work_s: float = 0.0) -> list[int]:
    """``datasets`` replaced by a stand-in whose ``load_dataset`` downloads one file through
    huggingface_hub's client, then works ``work_s`` seconds (converting it, as the real one
    writes Arrow files); returns the sizes it read."""
    from huggingface_hub.utils import get_session

    read: list[int] = []

    def load_dataset(name, config=None, **options):
        with get_session().stream("GET", f"{base}/datasets/{name}/resolve/main/train.parquet") as r:
            read.append(len(b"".join(r.iter_bytes())))
        time.sleep(work_s)
        return {"train": "table"}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return read


def _within(seconds: float, call):
    """``call()``'s value or error, failing the test if it has not returned in ``seconds``."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds} s: it hangs"
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_a_stalling_hub_ends_the_load_within_the_window(monkeypatch, mode):
    """Was: hung forever (no timeout on the hub's client; a byte every 0.3 s passes any)."""
    handler = _hub(mode)
    with local_server(handler) as base:
        _fake_datasets(monkeypatch, base)
        outcome, seconds = _within(BOUND_S, lambda: _load("hf:org/set"))
        handler.release.set()
    error = outcome.get("error")
    assert isinstance(error, DownloadError), outcome
    assert str(error).startswith("hf:org/set: the download stalled (")
    assert "$MLPMIXER_DOWNLOAD_STALL_S" in str(error)
    assert seconds < 5 * STALL_S + 3


def test_a_response_over_the_size_cap_is_refused(monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_MAX_BYTES", "1000")
    with local_server(_hub("big")) as base:
        _fake_datasets(monkeypatch, base)
        outcome, _ = _within(BOUND_S, lambda: _load("hf:org/set"))
    error = outcome.get("error")
    assert isinstance(error, DataError), outcome
    assert "train.parquet: the response is larger than the limit of 1,000 bytes" in str(error)


@pytest.mark.parametrize(("mode", "work_s"), [("ok", 2.5), ("slow", 0.0)])
def test_slow_reads_and_long_work_are_no_stall(monkeypatch, mode, work_s):
    """Reads at 2 KB/s (above the minimum rate) for 2 s, or the library's own work for 2.5 s
    (more than the 1 s window, waiting for no server), load."""
    with local_server(_hub(mode)) as base:
        read = _fake_datasets(monkeypatch, base, work_s)
        outcome, _ = _within(BOUND_S, lambda: _load("hf:org/set"))
    assert outcome == {"value": {"train": "table"}} and read == [4096]


def test_train_on_a_stalling_hub_exits_1_with_one_line(monkeypatch, tmp_path):
    handler = _hub("trickle")
    with local_server(handler) as base:
        _fake_datasets(monkeypatch, base)
        args = ["train", "--dataset", "hf:org/set", "--out", str(tmp_path / "run")]
        outcome, _ = _within(BOUND_S, lambda: CliRunner().invoke(cli, args))
        handler.release.set()
    result = outcome["value"]
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error: hf:org/set: the download stalled ("), result.output


@pytest.mark.slow
def test_the_real_datasets_package_on_a_trickling_hub_exits_within_the_window(tmp_path):
    """The real ``datasets`` and ``huggingface_hub``, their endpoint a 127.0.0.1 server that
    answers every request a byte every 0.3 s: ``mlpmixer train`` ends with the stall line,
    exit 1 (main's code still read after 90 s)."""
    pytest.importorskip("datasets")
    handler = _hub("trickle")
    with local_server(handler) as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MLPMIXER_"))}
        env.update(HF_ENDPOINT=base, HF_HOME=str(tmp_path / "hf"), MLPMIXER_DOWNLOAD_STALL_S="1",
                   HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=os.pathsep.join(sys.path))  # fmt: skip
        try:
            args = ["train", "--dataset", "hf:org/set", "--out", str(tmp_path / "run")]
            done = subprocess.run([sys.executable, "-m", "mlpmixer", *args], env=env,
                                  capture_output=True, text=True, timeout=90)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("the real datasets package still reads after 90 s: it hangs")
        finally:
            handler.release.set()
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("error: hf:org/set: the download stalled ("), lines
