"""Property-based and fuzz tests: random configurations and random bytes never crash badly.

A random configuration either builds a model whose output has the documented shape, or fails
with `ConfigError`. Random or damaged bytes given as a checkpoint raise `CheckpointError`
(never another exception, never a hang).
"""

from __future__ import annotations

import contextlib
import warnings
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlpmixer
from mlpmixer import ConfigError, MixerConfig, MlpMixer
from mlpmixer.errors import CheckpointError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.one_of(st.integers(-2, 24), st.tuples(st.integers(-2, 24), st.integers(-2, 24)))


@FAST
@given(
    img_size=sizes,
    patch_size=sizes,
    in_chans=st.integers(-1, 4),
    num_classes=st.integers(-1, 5),
    hidden_dim=st.integers(-1, 12),
    tokens_mlp_dim=st.integers(0, 8),
    gelu=st.sampled_from(["tanh", "none", "relu"]),
    batch=st.integers(1, 3),
)
def test_random_configs_build_and_run_or_fail_documented(
    img_size, patch_size, in_chans, num_classes, hidden_dim, tokens_mlp_dim, gelu, batch
):
    try:
        config = MixerConfig(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
            hidden_dim=hidden_dim, num_blocks=2, tokens_mlp_dim=tokens_mlp_dim,
            channels_mlp_dim=8, gelu=gelu,
        )  # fmt: skip
    except ConfigError as err:
        assert str(err)  # a message, naming the field
        return
    model = MlpMixer(config).eval()
    h, w = config.img_size
    with torch.no_grad():
        out = model(torch.randn(batch, config.in_chans, h, w))
        tokens = model.forward_features(torch.randn(batch, config.in_chans, h, w))
    assert out.shape == (batch, num_classes or hidden_dim)
    assert tokens.shape == (batch, config.num_tokens, hidden_dim)
    assert torch.isfinite(out).all()
    with pytest.raises(mlpmixer.InputShapeError):
        model(torch.randn(batch, config.in_chans, h + config.patch_size[0], w))


@FAST
@given(
    data=st.binary(max_size=2048), suffix=st.sampled_from([".npz", ".safetensors", ".pth", ".bin"])
)
def test_random_bytes_are_never_loaded(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"random{suffix}"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        mlpmixer.load_model(path)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    """A small model saved in every format, as bytes."""
    folder = tmp_path_factory.mktemp("valid")
    model = mlpmixer.create_model("mixer_t2_8", num_classes=3)
    files = {}
    for name in ("m.safetensors", "m.npz", "m.pth"):
        with warnings.catch_warnings():  # .pth is timm's format: a GELU warning is expected
            warnings.simplefilter("ignore")
            mlpmixer.save_model(model, folder / name)
        files[name] = (folder / name).read_bytes()
    return files


@FAST
@given(
    name=st.sampled_from(["m.safetensors", "m.npz", "m.pth"]),
    cut=st.floats(0.0, 0.999),
)
def test_truncated_checkpoints_fail_cleanly(tmp_path_factory, valid_files, name, cut):
    data = valid_files[name]
    path = tmp_path_factory.mktemp("cut") / name
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError):
        mlpmixer.load_model(path)


@FAST
@given(position=st.floats(0.0, 0.999), bit=st.integers(0, 7))
def test_any_flipped_bit_in_a_native_checkpoint_is_caught(
    tmp_path_factory, valid_files, position, bit
):
    data = bytearray(valid_files["m.safetensors"])
    data[int(len(data) * position)] ^= 1 << bit
    path = tmp_path_factory.mktemp("flip") / "m.safetensors"
    path.write_bytes(bytes(data))
    try:
        model = mlpmixer.load_model(path)
    except (CheckpointError, ConfigError):
        return
    # Only bytes that carry no information may go unnoticed (JSON whitespace in the header).
    reference = mlpmixer.load_model(_write(tmp_path_factory, valid_files["m.safetensors"]))
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model.config == reference.config


def _write(factory, data: bytes):
    path = factory.mktemp("ok") / "m.safetensors"
    path.write_bytes(data)
    return path


def test_zip_bomb_like_npz_member_is_refused(tmp_path):
    """An .npz whose member claims a huge array but has no data is refused, not allocated."""
    header = b"\x93NUMPY\x01\x00" + b"v\x00"
    dictionary = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    dictionary = dictionary + b" " * (118 - len(dictionary)) + b"\n"
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("stem/kernel.npy", header + dictionary)
    with pytest.raises(CheckpointError, match=r"claims an array of shape \(100000, 100000\)"):
        mlpmixer.load_model(tmp_path / "bomb.npz")
    assert np.load(tmp_path / "bomb.npz", allow_pickle=False).files == ["stem/kernel"]


# Issue 9 item 6: sizes read from a config.json and YAML text are bounded before any work.

size_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            ["hidden_dim", "num_blocks", "tokens_mlp_dim", "channels_mlp_dim", "in_chans",
             "num_classes", "img_size", "patch_size"]
        ),
        size_values,
    )
)  # fmt: skip
def test_config_json_sizes_are_refused_or_bounded(fields):
    import time

    from mlpmixer.models.config import MAX_PARAMS
    from mlpmixer.models.flops import param_count

    start = time.perf_counter()
    try:
        config = MixerConfig.from_dict(fields)
    except ConfigError as err:
        assert str(err)  # a message, and fast
    else:
        assert param_count(config) <= MAX_PARAMS and config.num_blocks <= 1024
    assert time.perf_counter() - start < 1.0


@FAST
@given(st.text(alphabet="&*ab1:-[]{}, \n'\"!", max_size=300))
def test_random_yaml_is_parsed_or_refused_cleanly(text):
    import yaml

    from mlpmixer.safeyaml import load_yaml

    with contextlib.suppress(ConfigError, yaml.YAMLError):  # anything else fails the test
        load_yaml(text)
