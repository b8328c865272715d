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


def test_gs_urls_name_public_cloud_storage_objects(monkeypatch, tmp_path):
    """``gs://bucket/file`` (how the official READMEs name the .npz files, e.g. the gsam
    bucket) is fetched from the bucket's public https address; offline it is one clear line."""
    from mlpmixer.checkpoints import load
    from mlpmixer.download import public_url

    assert public_url("gs://mixer_models/gsam/Mixer-B_32.npz") == (
        "https://storage.googleapis.com/mixer_models/gsam/Mixer-B_32.npz"
    )
    assert public_url("https://x.org/a.npz") == "https://x.org/a.npz"
    assert public_url("gs://") is None and public_url("runs/a/model") is None
    asked = []

    def offline(url, timeout=60.0):
        asked.append(url)
        raise DownloadError(f"cannot download {url} (offline)")

    monkeypatch.setattr(load, "download_url", offline)
    with pytest.raises(DownloadError):
        mlpmixer.load_model("gs://mixer_models/gsam/Mixer-B_32.npz")
    assert asked == ["https://storage.googleapis.com/mixer_models/gsam/Mixer-B_32.npz"]
