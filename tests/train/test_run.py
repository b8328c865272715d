"""A whole (tiny) run: files written, model saved in the native format, CLI, NaN stop, fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import mlpmixer
from mlpmixer.checkpoints.train_state import load_train_state
from mlpmixer.cli import cli
from mlpmixer.data import build_dataset, normalize
from mlpmixer.errors import ConfigError, RunError
from mlpmixer.train import loop as loop_module
from mlpmixer.train import train


@pytest.mark.slow
def test_run_directory_and_native_checkpoint(tmp_path, tiny):
    run_dir = tmp_path / "run"
    config = tiny(run={"out": str(run_dir), "plot": True}, train={"epochs": 2, "ema_decay": 0.9})
    result = train(config)
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "model",
        "model_ema",
        "curves.png",
        "checkpoints",
    } <= names
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "test_top1",
        "test_top5",
        "train_seconds",
        "images_per_second",
        "params",
        "model",
        "dataset",
        "epochs",
    ):
        assert key in summary, key
    assert (
        summary["epochs"] == 2
        and summary["model"] == "mixer_t2_8"
        and summary["dataset"] == "digits"
    )
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in (
        "epoch",
        "step",
        "lr",
        "train_loss",
        "train_top1",
        "test_top1",
        "images_per_second",
    ):
        assert key in records[0]
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the saved model is the returned one, carries the data's preprocessing, and its
    # test top-1 recomputed here from scratch equals the summary's
    model = mlpmixer.load_model(run_dir / "model").eval()
    test, info = build_dataset("digits", "test")
    assert model.config.mean == info.mean and model.config.class_names == info.class_names
    images = torch.stack([test[i][0] for i in range(len(test))])
    labels = torch.tensor([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        logits = model(normalize(images, model.config.mean, model.config.std))
    assert (logits.argmax(-1) == labels).float().mean().item() == pytest.approx(
        summary["test_top1"]
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            model.state_dict().values(), result.model.state_dict().values(), strict=True
        )
    )
    state = load_train_state(run_dir)
    assert state["progress"]["global_step"] == summary["steps"] == 2 * (1438 // 64)
    with pytest.raises(ConfigError, match="--resume"):
        train(config)  # the run directory is taken


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    run_dir = tmp_path / "nan"
    real = loop_module.compute_loss
    calls = {"n": 0}

    def flaky(logits, targets, kind):
        calls["n"] += 1
        loss = real(logits, targets, kind)
        return loss * float("nan") if calls["n"] == 9 else loss

    monkeypatch.setattr(loop_module, "compute_loss", flaky)
    config = tiny(run={"out": str(run_dir)}, train={"checkpoint_every_steps": 4})
    with pytest.raises(RunError, match=r"became nan .*global step 9.*after step 8"):
        train(config)
    state = load_train_state(run_dir)
    assert state["progress"]["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_cli_train_prints_metrics_and_where_files_are(tmp_path):
    out = tmp_path / "cli-run"
    args = ["train", "--epochs", "1", "--out", str(out), "--set", "train.threads=1", "--set", "run.progress=none",
            "--set", "run.plot=false", "--set", "model.overrides.hidden_dim=16", "--set", "model.overrides.num_blocks=1",
            "--set", "model.overrides.channels_mlp_dim=32", "--set", "model.overrides.tokens_mlp_dim=8"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "test top-1" in result.output and str(out) in result.output and "model/" in result.output
    bad = CliRunner().invoke(cli, ["train", "--set", "optim.lrr=1"])
    assert bad.exit_code == 2 and "optim.lrr" in bad.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--json"])
    assert result.exit_code == 0, result.output  # nothing left to do: same summary, marked resumed
    assert json.loads(result.stdout)["resumed"] is True  # stderr: the warmup notice


def test_finetune_resets_the_head_and_resizes(tmp_path, tiny):
    source = mlpmixer.create_model("mixer_t2_8", num_classes=3, **{"hidden_dim": 16, "channels_mlp_dim": 32,
                                                                    "tokens_mlp_dim": 8, "num_blocks": 2})  # fmt: skip
    source.save(tmp_path / "pretrained")
    out = tmp_path / "ft"
    args = ["finetune", "--from", str(tmp_path / "pretrained"), "--dataset", "digits", "--img-size", "16",
            "--steps", "4", "--batch-size", "32", "--out", str(out), "--set", "train.threads=1",
            "--set", "run.progress=none", "--set", "run.plot=false", "--set", "schedule.warmup_steps=1",
            "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    model = mlpmixer.load_model(out / "model")
    assert model.config.num_classes == 10 and model.config.img_size == (16, 16)
    assert model.config.tokens_mlp_dim == 4 * 8  # block-diagonal resize: K^2 = 4 copies
    assert model.config.mean == source.config.mean  # the checkpoint's preprocessing is kept
    saved = (out / "config.yaml").read_text()
    assert "name: sgd" in saved and "momentum: 0.9" in saved and "name: cosine" in saved


def test_options_run_together(tmp_path, tiny):
    """bf16 autocast, channels-last, accumulation, sigmoid loss, RandAugment + cutmix + mixup, EMA."""
    config = tiny(
        run={"out": str(tmp_path / "opts")},
        train={"steps": 4, "precision": "bf16", "channels_last": True, "grad_accum": 2, "loss": "sigmoid",
               "ema_decay": 0.5, "label_smoothing": 0.1},
        augment={"randaugment_n": 1, "cutmix_alpha": 1.0, "mixup_alpha": 0.2, "hflip": True},
        model={"img_size": 16},
    )  # fmt: skip
    result = train(config)
    assert result.summary["steps"] == 4 and result.summary["precision"] == "bf16"
    assert result.model.config.img_size == (16, 16)
    assert (result.model.config.interpolation, result.model.config.crop_pct) == ("bilinear", 1.0)
    head_bias = mlpmixer.load_model(tmp_path / "opts" / "model").head.bias
    assert torch.allclose(
        head_bias, torch.full_like(head_bias, -2.302585), atol=0.05
    )  # starts at -log 10


def test_tensorboard_events_when_installed(tmp_path, tiny):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(run={"out": str(tmp_path / "tb"), "tensorboard": True}, train={"epochs": 1}))
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    assert {"train_loss", "test_top1", "lr"} <= set(events.Tags()["scalars"])
