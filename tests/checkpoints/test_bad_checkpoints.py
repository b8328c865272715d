"""Checkpoints that do not fit, are corrupt or are hostile fail cleanly, naming what is wrong."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch

import mlpmixer
from mixer_reference import official_to_timm, random_official_params
from mlpmixer.errors import CheckpointError, CheckpointNotFoundError


@pytest.fixture
def params():
    return random_official_params(np.random.default_rng(0), classes=10)


def _save_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def test_missing_key_is_named(tmp_path, params):
    del params["MixerBlock_1/channel_mixing/Dense_1/bias"]
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(
        CheckpointError, match=r"missing keys: blocks\.1\.channel_mixing\.fc2\.bias"
    ):
        mlpmixer.load_model(path)


def test_unexpected_key_is_named(tmp_path, params):
    params["MixerBlock_0/extra_layer/kernel"] = np.zeros((2, 2), np.float32)
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(
        CheckpointError, match="not Mixer parameters: MixerBlock_0/extra_layer/kernel"
    ):
        mlpmixer.load_model(path)


def test_shape_mismatch_is_named(tmp_path, params):
    params["MixerBlock_1/token_mixing/Dense_0/kernel"] = np.zeros((16, 20), np.float32)
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(
        CheckpointError,
        match=r"blocks\.1\.token_mixing\.fc1\.weight: checkpoint \(20, 16\) vs model \(24, 16\)",
    ):
        mlpmixer.load_model(path)


def test_other_number_of_classes_needs_reset_head(tmp_path, params):
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(
        CheckpointError, match="has 10 classes but num_classes=3 was asked; pass reset_head=True"
    ):
        mlpmixer.load_model(path, num_classes=3)
    model = mlpmixer.load_model(path, num_classes=3, reset_head=True)
    assert model.head.weight.shape == (3, 32) and torch.count_nonzero(model.head.weight) == 0
    reference = mlpmixer.load_model(path)
    torch.testing.assert_close(
        model.blocks[1].channel_mixing.fc2.weight, reference.blocks[1].channel_mixing.fc2.weight
    )


def test_other_image_size_points_to_resize(tmp_path, params):
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(
        CheckpointError,
        match=r"gives 64 tokens, but the checkpoint's token mixing has 16; .* model\.resize",
    ):
        mlpmixer.load_model(path, img_size=32, num_classes=10)


def test_native_checkpoint_with_wrong_architecture_override(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    model.save(tmp_path / "m")
    with pytest.raises(
        CheckpointError, match=r"shape mismatches: blocks\.0\.channel_mixing\.fc1\.bias"
    ):
        mlpmixer.load_model(tmp_path / "m", channels_mlp_dim=256)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pth", ".bin"])
@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 10, os.urandom(300), b"PK\x03\x04 truncated zip"]
)
def test_garbage_files_raise_checkpoint_error(tmp_path, suffix, content):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage"):
        mlpmixer.load_model(path)


def test_truncated_native_file_is_reported(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    model.save(tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        mlpmixer.load_model(tmp_path / "m.safetensors")


def test_flipped_byte_fails_the_checksum(tmp_path):
    model = mlpmixer.create_model("mixer_t2_8")
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40  # a byte inside the last tensor's data
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        mlpmixer.load_model(tmp_path / "m")


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file if unpickled


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"stem.proj.weight": _Exploit(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded as plain weights"):
        mlpmixer.load_model(path)
    assert not marker.exists()
    raw = tmp_path / "evil.bin"
    raw.write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(CheckpointError):
        mlpmixer.load_model(raw)
    assert not marker.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path, params):
    params["stem/kernel"] = np.array([{"payload": 1}], dtype=object)
    path = tmp_path / "objects.npz"
    np.savez(path, **params)
    with pytest.raises(CheckpointError, match="not a readable .npz checkpoint"):
        mlpmixer.load_model(path)


def test_integer_weights_are_refused(tmp_path, params):
    params["stem/bias"] = params["stem/bias"].astype(np.int32)
    path = _save_npz(tmp_path / "m.npz", params)
    with pytest.raises(CheckpointError, match="stem/bias has dtype int32"):
        mlpmixer.load_model(path)


def test_absurd_shapes_are_refused(tmp_path, params):
    timm = {k: torch.from_numpy(v) for k, v in official_to_timm(params).items()}
    timm["stem.proj.weight"] = torch.zeros(32, 3, 4)  # rank 3
    torch.save(timm, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"stem\.proj\.weight has shape \(32, 3, 4\)"):
        mlpmixer.load_model(tmp_path / "m.pth")


def test_non_mixer_state_dict_and_unknown_suffix(tmp_path):
    torch.save({"conv1.weight": torch.zeros(2)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="not a Mixer state dict .*conv1.weight"):
        mlpmixer.load_model(tmp_path / "resnet.pth")
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.h5'"):
        mlpmixer.load_model(tmp_path / "weights.h5")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(CheckpointError, match="without model.safetensors"):
        mlpmixer.load_model(tmp_path / "empty-dir")


def test_missing_path_and_offline_hub(tmp_path, monkeypatch):
    with pytest.raises(CheckpointNotFoundError, match="no such checkpoint"):
        mlpmixer.load_model(tmp_path / "nope.npz")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(mlpmixer.DownloadError, match="offline and not in the local cache"):
        mlpmixer.load_model("hf-hub:someone/mixer-that-is-not-cached", cache_dir=str(tmp_path))
    with pytest.raises(mlpmixer.DownloadError, match="cannot download http://127.0.0.1:9/x.npz"):
        mlpmixer.load_model("http://127.0.0.1:9/x.npz")


# Issue 9 item 6: everything read from a file is bounded before it is allocated.


def _write_zip_bomb(path, megabytes):
    """An .npz whose one float32 array of zeros deflates ~1000x (built without allocating it)."""
    import zipfile

    count = megabytes * 2**20 // 4
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (count,)}
    )
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("stem/bias.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        chunk = bytes(2**20)
        for _ in range(megabytes):
            member.write(chunk)


def test_npz_zip_bomb_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.npz"
    _write_zip_bomb(path, 96)
    assert path.stat().st_size < 2**20  # < 1 MB that unpacks to 96 MB
    with pytest.raises(
        CheckpointError, match=r"bomb.npz: the archive unpacks to 100,663,\d+ bytes"
    ):
        mlpmixer.load_model(path)


def test_stride_zero_tensor_in_pth_is_refused(tmp_path, params):
    timm = {k: torch.from_numpy(v) for k, v in official_to_timm(params).items()}
    timm["head.weight"] = torch.zeros(1).expand(10**4, 10**4)  # 4 bytes viewed as 400 MB
    torch.save(timm, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"tensor head.weight of shape \(10000, 10000\)"):
        mlpmixer.load_model(tmp_path / "m.pth")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "fifo-in-folder"])
def test_only_regular_files_are_read_as_checkpoints(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "m.pth"
        os.mkfifo(path)  # reading would block forever
    elif kind == "dev-zero-link":
        path = tmp_path / "m.safetensors"
        path.symlink_to("/dev/zero")  # reading would never end
    else:
        path = tmp_path / "folder"
        path.mkdir()
        os.mkfifo(path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        mlpmixer.load_model(path)
    if kind == "dev-zero-link":
        with pytest.raises(CheckpointError, match="not a regular file"):
            mlpmixer.MlpMixer.from_pretrained(path)


@pytest.mark.parametrize("layout", ["native", "timm"])
def test_deeply_nested_or_huge_config_json_is_a_checkpoint_error(tmp_path, params, layout):
    folder = tmp_path / "m"
    if layout == "native":
        mlpmixer.MlpMixer(img_size=8, patch_size=4, hidden_dim=4, num_blocks=1).save(folder)
    else:
        folder.mkdir()
        timm = {k: torch.from_numpy(v) for k, v in official_to_timm(params).items()}
        from safetensors.torch import save_file

        save_file(timm, folder / "model.safetensors")
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="nested too deeply|unreadable timm config"):
        mlpmixer.load_model(folder)
    with open(folder / "config.json", "wb") as f:
        f.truncate(17 * 2**20)  # sparse: 17 MiB of zeros
    with pytest.raises(CheckpointError, match="larger than"):
        mlpmixer.load_model(folder)
