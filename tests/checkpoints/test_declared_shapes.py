"""Issue 27 item 2: a native safetensors file whose header declares more than its config.

Before: a consistent header declaring ``head.weight`` as [32768, 32768] (4 GiB) beside a valid
``config.json`` was read whole (2 min 20 s, 8.6 GB peak) before the checksum refused it. Now
the header's shapes are compared with the config's model before any tensor data is read. The
files are sparse (``truncate``): fast, and no disk is used.
"""

from __future__ import annotations

import json
import os
import resource
import struct

import pytest
from click.testing import CliRunner
from safetensors import safe_open

from mlpmixer import create_model
from mlpmixer.checkpoints.native import read_native
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError


def _model():
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                        channels_mlp_dim=8, num_classes=4, in_chans=1)  # fmt: skip


def _forge(weights, head_rows: int, short_by: int = 0) -> int:
    """Rewrite ``weights`` (a safetensors file) with head.weight declared [head_rows, head_rows]
    and every offset consistent, as a sparse file; returns the declared data bytes."""
    with safe_open(weights, framework="pt") as f:
        metadata = f.metadata()
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    shapes["head.weight"] = [head_rows, head_rows]
    header, offset = {"__metadata__": metadata}, 0
    for name, shape in sorted(shapes.items()):
        size = 4
        for n in shape:
            size *= n
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(weights, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        out.truncate(8 + len(text) + offset - short_by)  # sparse: no data written
    return offset


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("rows", [4096, 32768])  # 64 MiB, 4 GiB declared
def test_a_folder_whose_header_declares_a_huge_head_is_refused_unread(tmp_path, rows):
    folder = tmp_path / "m"
    _model().save(folder)
    declared = _forge(folder / "model.safetensors", rows)
    assert os.stat(folder / "model.safetensors").st_blocks * 512 < 2**20  # sparse indeed
    before = _peak_rss_bytes()
    with pytest.raises(
        CheckpointError, match=rf"tensor head.weight is declared \[{rows}, {rows}\]"
    ):
        read_native(folder)
    assert _peak_rss_bytes() - before < declared // 2  # the data was never read
    result = CliRunner().invoke(cli, ["info", str(folder)])
    assert result.exit_code == 2 and "config's model has [4, 8]" in result.output, result.output


def test_a_single_file_whose_header_declares_a_huge_head_is_refused_unread(tmp_path):
    path = tmp_path / "m.safetensors"
    _model().save(path)
    _forge(path, 4096)
    with pytest.raises(CheckpointError, match=r"declared \[4096, 4096\] in the file's header"):
        read_native(path)


def test_header_offsets_beyond_the_file_are_refused_on_opening(tmp_path):
    folder = tmp_path / "m"
    _model().save(folder)
    _forge(folder / "model.safetensors", 8, short_by=1)  # shapes fit; one byte missing
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_native(folder)
