"""Official .npz and timm weights load with the architecture inferred and the reference's logits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import save_file as save_numpy_safetensors

import mlpmixer
from mixer_reference import mixer_logits, official_to_timm, random_official_params
from mixer_testing import randomised
from mlpmixer.cli import cli

ATOL = 1e-5


def _nchw(images_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()


@pytest.fixture
def official(tmp_path):
    """An official-layout .npz (random weights), sample NHWC images and the reference logits."""
    rng = np.random.default_rng(0)
    params = random_official_params(rng, patch=(4, 4), grid=(4, 4), hidden=32, blocks=3)
    path = tmp_path / "Mixer-T_4.npz"
    np.savez(path, **params)
    images = rng.normal(size=(3, 16, 16, 3)).astype(np.float32)
    return path, params, images


def test_official_npz_loads_with_inferred_architecture(official):
    path, params, images = official
    model = mlpmixer.load_model(path).eval()
    cfg = model.config
    assert (cfg.img_size, cfg.patch_size, cfg.hidden_dim, cfg.num_blocks) == (
        (16, 16),
        (4, 4),
        32,
        3,
    )
    assert (cfg.tokens_mlp_dim, cfg.channels_mlp_dim, cfg.num_classes, cfg.gelu) == (
        24,
        64,
        10,
        "tanh",
    )
    with torch.no_grad():
        logits = model(_nchw(images)).numpy()
    expected = mixer_logits(params, images, "tanh")
    assert np.abs(expected).max() > 0.5  # the comparison is not between near-zeros
    np.testing.assert_allclose(logits, expected, atol=ATOL, rtol=0)


def test_gelu_variant_matters_at_this_tolerance(official):
    """The tolerance above can detect the wrong GELU: exact erf misses the official logits."""
    path, params, images = official
    model = mlpmixer.load_model(path, gelu="none").eval()
    with torch.no_grad():
        logits = model(_nchw(images)).numpy()
    assert np.abs(logits - mixer_logits(params, images, "tanh")).max() > 10 * ATOL
    np.testing.assert_allclose(logits, mixer_logits(params, images, "none"), atol=ATOL, rtol=0)


def test_non_square_official_needs_img_size(tmp_path):
    rng = np.random.default_rng(1)
    params = random_official_params(rng, patch=(4, 8), grid=(2, 3), hidden=16, blocks=2)
    path = tmp_path / "wide.npz"
    np.savez(path, **params)
    with pytest.raises(mlpmixer.CheckpointError, match="not a square patch grid; pass img_size"):
        mlpmixer.load_model(path)
    model = mlpmixer.load_model(path, img_size=(8, 24)).eval()
    images = rng.normal(size=(2, 8, 24, 3)).astype(np.float32)
    with torch.no_grad():
        logits = model(_nchw(images)).numpy()
    np.testing.assert_allclose(logits, mixer_logits(params, images, "tanh"), atol=ATOL, rtol=0)


def test_official_without_head_gives_features(tmp_path):
    rng = np.random.default_rng(2)
    params = random_official_params(rng, classes=0)
    path = tmp_path / "features.npz"
    np.savez(path, **params)
    model = mlpmixer.load_model(path).eval()
    images = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    assert model.config.num_classes == 0
    with torch.no_grad():
        features = model(_nchw(images)).numpy()
    np.testing.assert_allclose(features, mixer_logits(params, images), atol=ATOL, rtol=0)


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_timm_state_dict_loads_with_identical_outputs(tmp_path, official, suffix):
    _, params, images = official
    timm_state = official_to_timm(params)
    path = tmp_path / f"mixer{suffix}"
    if suffix == ".safetensors":
        save_numpy_safetensors(timm_state, str(path))
    else:  # timm checkpoints from training scripts wrap the weights and keep DDP's prefix
        wrapped = {
            "state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in timm_state.items()}
        }
        torch.save(wrapped, path)
    assert mlpmixer.detect_format(path) == "timm"
    model = mlpmixer.load_model(path).eval()
    assert model.config.gelu == "none"  # timm's Mixer uses nn.GELU() (exact erf)
    with torch.no_grad():
        logits = model(_nchw(images)).numpy()
    np.testing.assert_allclose(logits, mixer_logits(params, images, "none"), atol=ATOL, rtol=0)


def test_timm_hub_folder_reads_preprocessing(tmp_path, official):
    _, params, _ = official
    folder = tmp_path / "timm-repo"
    folder.mkdir()
    save_numpy_safetensors(official_to_timm(params), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        '{"architecture": "mixer_custom", "num_classes": 10, "pretrained_cfg": '
        '{"input_size": [3, 16, 16], "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], '
        '"crop_pct": 0.9, "interpolation": "bilinear"}}'
    )
    model = mlpmixer.load_model(folder)
    assert model.config.mean == (0.1, 0.2, 0.3) and model.config.std == (0.4, 0.5, 0.6)
    assert (model.config.crop_pct, model.config.interpolation) == (0.9, "bilinear")


@pytest.mark.filterwarnings("ignore:timm's Mixer uses the exact")
@pytest.mark.parametrize(
    "chain",
    [
        ["native", "timm.pth", "official.npz", "again.safetensors"],
        ["state_dict.pt", "timm-dir", "native-dir"],
    ],
)
def test_round_trips_through_every_format_keep_outputs(tmp_path, official, chain):
    path, params, images = official
    current = path
    for name in chain:
        fmt = {"state_dict.pt": "state_dict", "timm-dir": "timm"}.get(name)
        nxt = tmp_path / name
        mlpmixer.convert(current, nxt, format=fmt, gelu="tanh")
        current = nxt
    model = mlpmixer.load_model(current, gelu="tanh").eval()
    with torch.no_grad():
        logits = model(_nchw(images)).numpy()
    np.testing.assert_allclose(logits, mixer_logits(params, images, "tanh"), atol=ATOL, rtol=0)


def test_exported_npz_is_the_official_layout(tmp_path, official):
    """Our .npz has exactly the official keys, shapes and values (HWIO, in x out)."""
    path, params, _ = official
    out = tmp_path / "exported.npz"
    mlpmixer.convert(path, out)
    with np.load(out, allow_pickle=False) as exported:
        assert sorted(exported.files) == sorted(params)
        for key, value in params.items():
            np.testing.assert_array_equal(exported[key], value, err_msg=key)


def test_cli_convert_and_info_round_trip(tmp_path, official):
    path, params, _ = official
    runner = CliRunner()
    timm_path = tmp_path / "from-cli.pth"
    result = runner.invoke(cli, ["convert", str(path), str(timm_path)])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "erf" in result.output  # official is tanh, timm erf
    assert "from-cli.pth.mlpmixer.json" in result.output  # where the tanh GELU is kept
    back = tmp_path / "back.npz"
    result = runner.invoke(cli, ["convert", str(timm_path), str(back), "--to", "official"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # the sidecar gave tanh back: nothing changes
    assert mlpmixer.load_model(back).config.gelu == "tanh"
    (tmp_path / "from-cli.pth.mlpmixer.json").unlink()  # a bare timm file: erf, as timm has it
    result = runner.invoke(cli, ["convert", str(timm_path), str(back), "--to", "official"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "tanh" in result.output
    with np.load(back, allow_pickle=False) as exported:
        for key, value in params.items():
            np.testing.assert_allclose(exported[key], value, atol=0, rtol=0, err_msg=key)
    result = runner.invoke(cli, ["info", str(back), "--json"])
    assert result.exit_code == 0, result.output
    assert '"format": "official"' in result.output and '"num_tokens": 16' in result.output


# Issue 9 item 5: conversions keep what the target format can hold, and say what it cannot.

TRAINED = dict(
    img_size=8, patch_size=4, in_chans=1, num_classes=3, hidden_dim=8, num_blocks=1,
    tokens_mlp_dim=4, channels_mlp_dim=8, mean=(0.2,), std=(0.3,), interpolation="bilinear",
    crop_pct=1.0, class_names=("circle", "square", "star"),
)  # fmt: skip


@pytest.mark.filterwarnings("ignore:timm's Mixer uses the exact")
@pytest.mark.parametrize("target", ["m.npz", "m.pth", "m.pt", "timm.safetensors", "timm-dir"])
@pytest.mark.parametrize("gelu", ["tanh", "none"])
def test_conversion_keeps_class_names_preprocessing_and_gelu(tmp_path, target, gelu):
    model = randomised(mlpmixer.MlpMixer(mlpmixer.MixerConfig(**TRAINED, gelu=gelu)))
    model.save(tmp_path / "native")
    fmt = {"m.pt": "state_dict", "timm.safetensors": "timm", "timm-dir": "timm"}.get(target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlpmixer.convert(tmp_path / "native", tmp_path / target, format=fmt)
    back = mlpmixer.load_model(tmp_path / target)
    assert back.config == model.config  # class names, mean/std, crop, interpolation, GELU
    if target in ("m.npz", "m.pth", "m.pt"):  # tensors-only files: kept beside, and said so
        messages = " ".join(str(w.message) for w in caught)
        assert f"{target}.mlpmixer.json" in messages and "class names" in messages
        (tmp_path / (target + ".mlpmixer.json")).unlink()
        assert mlpmixer.load_model(tmp_path / target).config.class_names is None


def test_info_names_the_gelu_erf_or_tanh(tmp_path):
    for gelu, shown in [("none", "erf"), ("tanh", "tanh")]:
        model = mlpmixer.MlpMixer(mlpmixer.MixerConfig(**TRAINED, gelu=gelu))
        model.save(tmp_path / gelu)
        result = CliRunner().invoke(cli, ["info", str(tmp_path / gelu)])
        assert result.exit_code == 0, result.output
        line = next(li for li in result.output.splitlines() if "GELU" in li)
        assert shown in line and "none" not in line, line
        result = CliRunner().invoke(cli, ["info", str(tmp_path / gelu), "--json"])
        assert f'"gelu": "{shown}"' in result.output


def test_timm_hub_folder_is_replaced_atomically(tmp_path, monkeypatch):
    """A kill while the weights are written leaves the previous timm folder whole: before,
    config.json was already replaced, so new preprocessing sat next to the old weights."""
    import json

    import safetensors.torch

    small = {"num_blocks": 1, "hidden_dim": 8, "tokens_mlp_dim": 4, "channels_mlp_dim": 8}
    old = randomised(mlpmixer.create_model("mixer_t2_8", gelu="none", mean=(0.25,), **small))
    mlpmixer.save_model(old, tmp_path / "timm", "timm")
    (tmp_path / "timm" / "notes.txt").write_text("mine")
    new = randomised(mlpmixer.create_model("mixer_t2_8", gelu="none", mean=(0.3,), **small))

    def killed_while_writing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        mlpmixer.save_model(new, tmp_path / "timm", "timm")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm"]  # no temporary folder left
    config = json.loads((tmp_path / "timm" / "config.json").read_text())
    assert config["pretrained_cfg"]["mean"] == [0.25]
    loaded = mlpmixer.load_model(tmp_path / "timm")
    for a, b in zip(loaded.state_dict().values(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    mlpmixer.save_model(new, tmp_path / "timm", "timm")
    loaded = mlpmixer.load_model(tmp_path / "timm")
    assert loaded.config.mean == (0.3,)
    for a, b in zip(loaded.state_dict().values(), new.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (tmp_path / "timm" / "notes.txt").read_text() == "mine"  # other files are kept
