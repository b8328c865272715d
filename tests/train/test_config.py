"""Configs: strict typed loading, errors that name the key, overrides, shipped files."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from mlpmixer.cli.train import flag_overrides
from mlpmixer.errors import ConfigError
from mlpmixer.train import TrainConfig, finetune_config, load_config, preset
from mlpmixer.train.config import parse_assignment
from mlpmixer.train.presets import FINETUNE, PRESETS, recipe_names, resolve_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_round_trip_through_yaml(tmp_path):
    config = TrainConfig()
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"optim": {"lrr": 1}}, "optim.lrr"),
        ({"optimizer": {}}, "optimizer"),
        ({"optim": {"lr": "fast"}}, r"optim\.lr must be float"),
        ({"optim": {"lr": -1.0}}, r"optim\.lr must be > 0"),
        ({"optim": {"name": "lamb"}}, r"optim\.name must be 'adamw' \| 'adam' \| 'sgd'"),
        ({"train": {"epochs": 2.5}}, r"train\.epochs must be int"),
        ({"train": {"compile": "yes"}}, r"train\.compile must be bool"),
        ({"train": {"batch_size": 10, "grad_accum": 3}}, "divisible"),
        ({"optim": {"betas": [0.9]}}, r"optim\.betas must be \[float, float\]"),
        ({"augment": {"randaugment_m": 40}}, r"augment\.randaugment_m"),
        ({"schedule": {"warmup_steps": 5, "warmup_epochs": 1}}, "only one|give one"),
        ({"model": {"overrides": {"hidden": 3}}}, r"model\.overrides\.hidden"),
        ({"model": {"overrides": {"img_size": 32}}}, r"set model\.img_size instead"),
        ({"model": {"name": "mixer_zz"}}, "unknown model 'mixer_zz'"),
        ({"train": {"precision": "fp16", "device": "cpu"}}, "fp16 needs a GPU"),
        ({"data": "digits"}, "data must be a mapping"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(data)


def test_overrides_parse_values_as_yaml():
    config = TrainConfig().override(
        ["optim.lr=1e-3", "optim.betas=[0.8, 0.99]", "train.steps=10_000", "model.overrides.drop_rate=0.1",
         "run.out=null", "train.compile=true", "model.img_size=[16, 32]"]
    )  # fmt: skip
    assert config.optim.lr == 1e-3 and config.optim.betas == (0.8, 0.99)
    assert config.train.steps == 10000 and config.model.overrides == {"drop_rate": 0.1}
    assert config.train.compile is True and config.model.img_size == (16, 32)
    assert parse_assignment("data.dataset=hf:cifar10") == ("data.dataset", "hf:cifar10")
    for bad, message in [("optim.lr", "section.key=value"), ("lr=1", "needs a section"),
                         ("nope.lr=1", "'nope' is not a config section"),
                         ("optim.lr.x=1", "'optim.lr' is not a config section")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            TrainConfig().override([bad])


def test_cli_assembly_order_file_then_flags_then_set():
    flags = flag_overrides(epochs=3, lr=0.1, out="runs/x")
    config = resolve_config(dataset="cifar10", overrides=[*flags, "optim.lr=0.5"])
    assert config.data.dataset == "cifar10" and config.model.name == "mixer_s4_32"
    assert config.train.epochs == 3 and config.optim.lr == 0.5 and config.run.out == "runs/x"
    assert resolve_config().data.dataset == "digits"
    # another model at the recipe's sizes (16 px, 4x4 patches), without its widths
    plain = resolve_config(model="mixer_t4_28")
    assert plain.model.name == "mixer_t4_28" and plain.model.overrides == {"patch_size": 4}
    assert plain.model.img_size == 16
    generic = resolve_config(dataset="/some/folder")
    assert generic.model.name == "auto" and generic.data.dataset == "/some/folder"


def test_finetune_recipe_is_the_papers():
    config = finetune_config("ckpt", "cifar10", 448)
    o, s = config.optim, config.schedule
    assert (o.name, o.momentum, o.weight_decay, o.clip_grad_norm) == ("sgd", 0.9, 0.0, 1.0)
    assert s.name == "cosine" and s.warmup_steps > 0 and config.train.batch_size == 512
    assert config.model.pretrained == "ckpt" and config.model.img_size == 448


def _shipped():
    return sorted(CONFIGS.glob("*.yaml"))


def test_configs_are_shipped():
    names = {p.stem for p in _shipped()}
    expected = {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet1k_b16",
                "finetune_cifar10_224", "finetune_cifar10_448"}  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    config = load_config(path)
    assert yaml.safe_load(path.read_text())  # not empty
    key = path.stem.replace("_", "-")
    if key in PRESETS:  # the YAML file and the built-in preset are the same recipe
        assert config == preset(key)


def test_the_package_ships_every_recipe_file_of_configs():
    assert recipe_names() == [p.stem for p in _shipped()]
    for path in _shipped():
        assert (files("mlpmixer") / "configs" / path.name).read_bytes() == path.read_bytes()
    assert set(PRESETS.values()) | {FINETUNE} <= set(recipe_names())


def test_presets_and_the_finetune_recipe_are_the_files():
    assert preset("fashion_mnist") == load_config(CONFIGS / "fashion_mnist.yaml")
    assert preset("mnist5k") == load_config(CONFIGS / "mnist5k.yaml")
    tuned = finetune_config("ckpt", "cifar10", 448)
    base = load_config(CONFIGS / "finetune.yaml")
    assert (tuned.optim, tuned.schedule, tuned.augment) == (base.optim, base.schedule, base.augment)
    assert (tuned.train.steps, tuned.train.batch_size) == (10_000, 512)
    assert (tuned.model.pretrained, tuned.model.img_size) == ("ckpt", 448)


def test_no_recipe_is_written_in_python():
    """configs/*.yaml is the only place a recipe is written: presets.py holds no numbers."""
    source = (files("mlpmixer") / "train" / "presets.py").read_text()
    for key in ("lr", "weight_decay", "epochs", "batch_size", "warmup"):
        assert f'"{key}"' not in source and f"{key}=" not in source


def test_paper_numbers_in_the_imagenet_config():
    c = load_config(CONFIGS / "imagenet1k_b16.yaml")
    assert c.model.name == "mixer_b16_224" and c.model.overrides["drop_path_rate"] == 0.1
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.betas) == (
        "adamw",
        1e-3,
        0.1,
        (0.9, 0.999),
    )
    assert (
        c.optim.clip_grad_norm == 1.0
        and c.schedule.warmup_steps == 10_000
        and c.schedule.name == "linear"
    )
    assert (c.train.batch_size, c.train.epochs) == (4096, 300)
    assert (c.augment.randaugment_n, c.augment.randaugment_m, c.augment.mixup_alpha) == (2, 15, 0.5)
    # big_vision's pixels: decode_and_crop_jpeg + bilinear; resize_small(256) is TF's area
    assert (c.data.train_decode, c.data.interpolation, c.data.eval_resize) == (
        "full", "bilinear", "area",
    )  # fmt: skip
    high = load_config(CONFIGS / "finetune_cifar10_448.yaml")
    assert high.model.img_size == 448 and high.optim.name == "sgd" and high.train.batch_size == 512


def test_keys_of_older_runs_are_read_under_their_new_names():
    old = {
        "model": {"overrides": {"grad_checkpointing": True, "drop_rate": 0.1}},
        "train": {"max_nonfinite_checks": 5},
    }
    config = TrainConfig.from_dict(old)
    assert config.train.grad_checkpointing is True
    assert config.train.nonfinite_check_every == 5
    assert config.model.overrides == {"drop_rate": 0.1}
    assert old["model"]["overrides"]["grad_checkpointing"] is True  # the input is not changed


# Issue 9 item 6: YAML is read with bounds (no alias expansion, no deep nesting).

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    assert len(BILLION_LAUGHS) < 600
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match=r"bomb.yaml: YAML aliases are not allowed \(found \*a"):
        load_config(path)
    with pytest.raises(ConfigError, match="train.epochs: YAML aliases are not allowed"):
        parse_assignment("train.epochs=[&x 1, *x]")


def test_deeply_nested_yaml_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("train: " + "[" * 100_000)
    with pytest.raises(ConfigError, match="deep.yaml: YAML nested more than 32 levels"):
        load_config(path)
    with pytest.raises(ConfigError, match="nested more than 32 levels"):
        parse_assignment("optim.betas=" + "[" * 5000 + "]" * 5000)


def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path):
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(fifo)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.threads=100000", r"train\.threads must be at most \d+ \(4 x \d+ CPUs\) or null, got 100000"),
        ("data.num_workers=100000", r"data\.num_workers must be at most \d+"),
        ("optim.lr=.inf", r"optim\.lr must be a finite number, got inf"),
        ("optim.weight_decay=.nan", r"optim\.weight_decay must be a finite number"),
        ("optim.betas=[0.9, .inf]", r"optim\.betas must be a finite number"),
        ("train.epochs=1_000_000_000_000_000_000_000", r"train\.epochs must be smaller than 2\*\*62"),
        ("augment.pad_crop=1000000", r"augment\.pad_crop must be <= 1024"),
    ],
)  # fmt: skip
def test_runtime_numbers_are_bounded(assignment, message):
    """Issue 9 item 6: `--set train.threads=100000` segfaulted torch; now a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        TrainConfig().override([assignment])


def _numeric(tp) -> bool:
    """Whether a field type holds numbers (int/float, optional, or tuples of them)."""
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    for a in args:
        inner = typing.get_args(a) if typing.get_origin(a) is tuple else (a,)
        if any(x in (int, float) for x in inner):
            return True
    return False


def test_every_numeric_field_declares_a_bound():
    import dataclasses
    import typing

    from mlpmixer.train.bounds import BOUND

    missing, checked = [], 0
    for section in dataclasses.fields(TrainConfig):
        cls = typing.get_type_hints(TrainConfig)[section.name]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _numeric(hints[f.name]):
                checked += 1
                if BOUND not in f.metadata:
                    missing.append(f"{section.name}.{f.name}")
    assert checked >= 40 and not missing, missing


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.epochs=0", r"^train\.epochs must be >= 1, got 0$"),
        ("train.steps=0", r"^train\.steps must be >= 1 or null, got 0$"),
        ("train.seed=-1", r"^train\.seed must be in \[0, 2\*\*32 - 1\], got -1$"),
        ("train.dist_timeout_s=0", r"^train\.dist_timeout_s must be > 0 or null, got 0\.0$"),
        ("train.label_smoothing=1.0", r"train\.label_smoothing must be in \[0, 1\), got 1\.0"),
        ("train.layer_decay=0", r"train\.layer_decay must be in \(0, 1\] or null, got 0\.0"),
        ("data.in_chans=2", r"^data\.in_chans must be 1, 3 or null, got 2$"),
        ("data.eval_crop_pct=1.5", r"data\.eval_crop_pct must be in \(0, 1\] or null, got 1\.5"),
        ("optim.betas=[0.9, 1.0]", r"optim\.betas must be two numbers, each in \[0, 1\), got \[0\.9, 1\.0\]"),
        ("augment.crop_scale=[0.5, 0.1]", r"augment\.crop_scale must be \[min, max\] with min <= max, each in \(0, 1\], got \[0\.5, 0\.1\]"),
        ("augment.crop_ratio=[0, 1]", r"augment\.crop_ratio must be \[min, max\] with min <= max, each > 0"),
        ("augment.affine_scale=[1.1, 0.9]", r"augment\.affine_scale must be .* or null, got \[1\.1, 0\.9\]"),
        ("augment.randaugment_n=5000", r"augment\.randaugment_n must be <= 1024, got 5000"),
        ("model.img_size=[32, 0]", r"model\.img_size must be .*>= 1.*, got \[32, 0\]"),
        ("schedule.end_lr=1.0", r"schedule\.end_lr must be in \[0, optim\.lr=0\.001\], got 1\.0"),
    ],
)  # fmt: skip
def test_declared_bounds_name_the_key_the_range_and_the_value(assignment, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().override([assignment])


# Issue 27 item 4: absurd floats, duplicate keys.


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", "schedule.warmup_epochs=1e308"], "schedule.warmup_epochs"),  # was OverflowError
        (["--lr", "1e308"], "optim.lr"),  # was accepted
        (["--set", "train.dist_timeout_s=1e308"], "train.dist_timeout_s"),  # was accepted
        (["--set", "optim.weight_decay=-1e300"], "optim.weight_decay"),
    ],
)
def test_floats_beyond_2_62_are_refused_with_exit_2(tmp_path, args, key):
    from click.testing import CliRunner

    from mlpmixer.cli import cli

    result = CliRunner().invoke(
        cli, ["train", "--dataset", "digits", *args, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2, result.output
    assert f"error: {key} must be" in result.output
    assert "this looks like a bug" not in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "optim:\n  lr: 0.1\n  lr: 0.2\n",
            r"duplicate key 'lr' at line 3 \(first given at line 2\)",
        ),
        (
            "optim:\n  lr: 0.1\ntrain:\n  epochs: 2\noptim:\n  lr: 0.3\n",
            "duplicate key 'optim' at line 5",
        ),
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(tmp_path, text, message):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="dup.yaml: " + message):
        load_config(path)
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        parse_assignment("model.overrides={a: 1, a: 2}")
