"""Downloads against a hostile server on 127.0.0.1 (issue 16 items 8, 10): nothing bad is
cached, nothing hangs, and different URLs never share a cache entry.

Before: a short read (the server promised 574,352 bytes and sent 1,000) or an HTML page sent
with status 200 was cached and reused forever; ``http://host/x`` and ``https://host/x`` (and
``a_b`` vs ``a/b``) were one cache entry; a server trickling a byte every few seconds hung
``info`` indefinitely and an endless body ran until the disk was full.
"""

from __future__ import annotations

import contextlib
import http.server
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from local_http import local_server
from mlpmixer import create_model, save_model
from mlpmixer.cli import cli
from mlpmixer.download import download_url
from mlpmixer.errors import ConfigError, DownloadError

TRICKLE_S = 0.2  # a byte this often: far below any useful rate, yet never silent


def _npz_bytes(tmp_path: Path) -> bytes:
    model = create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                         channels_mlp_dim=8, num_classes=3)  # fmt: skip
    with warnings.catch_warnings():  # the sidecar notice: the test serves the .npz alone
        warnings.simplefilter("ignore")
        save_model(model, tmp_path / "m.npz")
    return (tmp_path / "m.npz").read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}  # path -> body of the good files; set per test
    hits: ClassVar[list[str]] = []  # every path asked for

    def log_message(self, *args):  # keep the test output clean
        pass

    def _head(self, length: int | None, kind: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self):
        self.hits.append(self.path)
        with contextlib.suppress(OSError):  # the client gave up (as it should)
            self._answer(self.path.split("/")[1])

    def _answer(self, kind: str) -> None:
        if kind == "short":  # promises 574,352 bytes, sends 1,000, closes
            self._head(574_352)
            self.wfile.write(b"PK" + b"\0" * 998)
        elif kind == "html":  # an error page with status 200
            body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            self._head(len(body), "text/html; charset=utf-8")
            self.wfile.write(body)
        elif kind == "html-as-binary":  # the same page, mislabelled
            body = b"\n  <html><head><title>404</title></head></html>"
            self._head(len(body))
            self.wfile.write(body)
        elif kind == "trickle":
            self._head(100_000)
            for _ in range(int(60 / TRICKLE_S)):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(TRICKLE_S)
        elif kind == "endless":  # no Content-Length, never ends
            self._head(None)
            while True:
                self.wfile.write(b"\0" * 65536)
        elif kind == "huge":  # declares more than any cap
            self._head(10**13)
        elif self.path in self.files:
            self._head(len(self.files[self.path]))
            self.wfile.write(self.files[self.path])
        else:
            self.send_error(404)


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path / "cache"))
    Handler.files, Handler.hits = {}, []
    with local_server(Handler) as url:
        yield url


def _cached(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "urls"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _info(url: str):
    return CliRunner().invoke(cli, ["info", url])


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("short", "closed after 1,000 of the 574,352 bytes"),
        ("html", "sent a web page (text/html)"),
        ("html-as-binary", "sent a web page"),
        ("huge", "declares 10,000,000,000,000 bytes, more than the limit"),
    ],
)
def test_a_bad_body_is_refused_and_never_cached(server, tmp_path, kind, message):
    url = f"{server}/{kind}/Mixer-B_16.npz"
    for _ in range(2):  # the second try asks the server again: nothing was kept
        result = _info(url)
        assert result.exit_code == 1, result.output
        assert message in result.stderr and "Traceback" not in result.stderr
        assert "looks like a bug" not in result.stderr
    assert Handler.hits.count(f"/{kind}/Mixer-B_16.npz") == 2
    assert _cached(tmp_path) == []


def test_a_trickle_is_given_up_on_within_the_stall_window(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_STALL_S", "1")
    start = time.monotonic()
    result = _info(f"{server}/trickle/m.npz")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1 and "the download stalled" in result.stderr, result.output
    assert _cached(tmp_path) == []


def test_an_endless_body_stops_at_the_cap(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_MAX_BYTES", "2000000")
    with pytest.raises(DownloadError, match="sent more than 2,000,000 bytes"):
        download_url(f"{server}/endless/m.npz")
    assert _cached(tmp_path) == []


def test_a_good_file_is_cached_once_and_loads(server, tmp_path):
    Handler.files["/models/m.npz"] = _npz_bytes(tmp_path)
    for _ in range(2):
        result = _info(f"{server}/models/m.npz")
        assert result.exit_code == 0, result.output
    assert Handler.hits == ["/models/m.npz"]
    assert len(_cached(tmp_path)) == 1


def test_urls_that_differ_anywhere_are_different_cache_entries(server, tmp_path):
    from mlpmixer.download import url_cache_path

    Handler.files["/x/a.npz"] = b"slash"
    Handler.files["/x_a.npz"] = b"underscore"
    Handler.files["/x/a.npz?v=2"] = b"query"
    assert download_url(f"{server}/x/a.npz").read_bytes() == b"slash"
    assert download_url(f"{server}/x_a.npz").read_bytes() == b"underscore"
    assert download_url(f"{server}/x/a.npz?v=2").read_bytes() == b"query"
    # https:// of the same host and path is another URL: never served from the http:// entry
    https = server.replace("http://", "https://") + "/x/a.npz"
    assert url_cache_path(https) != url_cache_path(f"{server}/x/a.npz")
    with pytest.raises(DownloadError):  # the test server speaks no TLS
        download_url(https)
    assert len(_cached(tmp_path)) == 3


def test_bad_settings_of_the_limits_are_one_line(server, monkeypatch):
    monkeypatch.setenv("MLPMIXER_DOWNLOAD_STALL_S", "soon")
    with pytest.raises(
        ConfigError, match=r"MLPMIXER_DOWNLOAD_STALL_S must be a positive number, got 'soon'"
    ):
        download_url(f"{server}/x.npz")


def test_a_download_reports_its_progress(server, tmp_path, monkeypatch, caplog):
    import logging

    import mlpmixer.download as download

    monkeypatch.setattr(download, "PROGRESS_EVERY_S", 0.0)
    Handler.files["/big.npz"] = b"\0" * 3_000_000
    with caplog.at_level(logging.INFO, logger="mlpmixer.download"):
        download_url(f"{server}/big.npz")
    lines = [r.getMessage() for r in caplog.records if r.name == "mlpmixer.download"]
    assert lines and lines[-1].endswith("3.0 of 3.0 MB"), lines


def _middle_of_largest_member(npz: bytes) -> int:
    """The offset of a byte in the middle of the largest array's data in an (uncompressed) .npz."""
    import io
    import zipfile

    member = max(zipfile.ZipFile(io.BytesIO(npz)).infolist(), key=lambda m: m.file_size)
    name_len = int.from_bytes(npz[member.header_offset + 26 : member.header_offset + 28], "little")
    extra_len = int.from_bytes(npz[member.header_offset + 28 : member.header_offset + 30], "little")
    return member.header_offset + 30 + name_len + extra_len + member.compress_size // 2


def test_a_download_that_does_not_load_is_removed_from_the_cache(server, tmp_path):
    """Issue 27 item 3: a server that flips one byte of an .npz (same size) gave
    ``Bad CRC-32`` (exit 2) and the file stayed cached: every later run failed the same way
    without asking the server again."""
    body = bytearray(_npz_bytes(tmp_path))
    body[_middle_of_largest_member(bytes(body))] ^= 0xFF  # the zip's CRC no longer matches
    Handler.files["/models/m.npz"] = bytes(body)
    for attempt in (1, 2):
        result = _info(f"{server}/models/m.npz")
        assert result.exit_code == 2, result.output
        assert "Bad CRC-32" in result.output and "downloads it again" in result.output
        assert _cached(tmp_path) == []
        assert Handler.hits == ["/models/m.npz"] * attempt  # the second run asked again
    Handler.files["/models/m.npz"] = _npz_bytes(tmp_path)  # the server is fixed: it loads
    assert _info(f"{server}/models/m.npz").exit_code == 0
