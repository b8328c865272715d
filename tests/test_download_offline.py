"""Offline, a hub id fails fast with one line (no network: the endpoint is a closed port)."""

from __future__ import annotations

import socket
import time

import pytest

import mlpmixer
from mlpmixer import DownloadError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket closes


def test_an_unreachable_hub_fails_in_under_3_s_with_one_line(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        mlpmixer.load_model("hf-hub:timm/gmlp_s16_224.ra3_in1k", cache_dir=tmp_path)
    assert time.monotonic() - start < 3.0
    message = str(err.value)
    assert "\n" not in message and "timm/gmlp_s16_224.ra3_in1k" in message
