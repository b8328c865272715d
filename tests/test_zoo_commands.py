"""Every zoo family through the CLI, as tests/test_family_commands.py takes the Mixer families:
train (two steps on digits at a small size), eval, predict, export, bench, info; and the
Mixer-only analyses refused in one line naming the family.

One tiny config per family (the registered model with ``--set model.overrides...``), trained
once per family (a module fixture), so the matrix costs five short trainings.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mlpmixer import load_model
from mlpmixer.cli import cli

# name, image size, overrides (the digits recipe gives in_chans 1 and 10 classes)
ZOO = {
    "vip_s7": (8, {"patch_size": 4, "depths": [1, 1], "embed_dims": [8, 8],
                   "transitions": [False], "segment_dims": [2, 2], "mlp_ratios": [2, 2]}),
    "cyclemlp_b1": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "asmlp_tiny": (32, {"depths": [1, 1, 1, 1], "embed_dim": 8}),
    "wavemlp_t": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "hiremlp_tiny": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
}  # fmt: skip


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _json(output: str):
    return json.loads(output[output.index("{") :])


@pytest.fixture(scope="module", params=sorted(ZOO))
def trained(request, tmp_path_factory):
    name = request.param
    size, overrides = ZOO[name]
    out = tmp_path_factory.mktemp(name) / "run"
    args = ["train", "--model", name, "--dataset", "digits", "--steps", "2", "--batch-size",
            "16", "--out", str(out), "--json", "--set", f"model.img_size={size}"]  # fmt: skip
    for key, value in overrides.items():
        args += ["--set", f"model.overrides.{key}={json.dumps(value)}"]
    summary = _json(_run(*args))
    assert 0.0 <= summary["test_top1"] <= 1.0
    return name, out / "model"


@pytest.mark.slow
def test_train_gives_the_family_and_the_overrides(trained):
    name, model_dir = trained
    model = load_model(model_dir)
    assert model.config.family == name.split("_")[0]
    assert model.num_params() < 100_000  # the overrides reached the model
    assert model.config.img_size == (ZOO[name][0],) * 2 and model.config.in_chans == 1


@pytest.mark.slow
def test_eval_predict_export_bench_info(trained, tmp_path):
    name, model_dir = trained
    family = name.split("_")[0]
    report = _json(_run("eval", "--checkpoint", str(model_dir), "--dataset", "digits", "--json",
                        "--out", str(tmp_path / "eval")))  # fmt: skip
    assert 0.0 <= report["top1"] <= 1.0
    for i in range(2):
        Image.fromarray((torch.rand(8, 8) * 255).byte().numpy(), mode="L").save(
            tmp_path / f"{i}.png"
        )
    predicted = _json(_run("predict", "--checkpoint", str(model_dir), str(tmp_path / "0.png"),
                           str(tmp_path / "1.png"), "--json"))  # fmt: skip
    assert len(predicted["predictions"]) == 2 and not predicted["failures"]
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        exported = _json(_run("export", "--checkpoint", str(model_dir), "--out",
                              str(tmp_path / "m.onnx"), "--json"))  # fmt: skip
        assert exported["max_abs_diff"] < 1e-4
    bench = _json(_run("bench", "--checkpoint", str(model_dir), "--json", "--mode", "infer",
                       "--batch-size", "2", "--warmup", "0", "--repeats", "1", "--min-time",
                       "0", "--no-latency", "--no-peak"))  # fmt: skip
    assert bench["config"]["family"] == family and bench["config"]["params"] > 0
    info = _run("info", str(model_dir))
    assert family in info and "stage depths" in info


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ["tokens", "cka"])
def test_mixer_only_analyses_are_refused_naming_the_family(trained, analysis):
    name, model_dir = trained
    args = ["analyze", analysis, "--checkpoint", str(model_dir)]
    result = CliRunner().invoke(cli, args + (["--dataset", "digits"] if analysis == "cka" else []))
    assert result.exit_code != 0
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and repr(name.split("_")[0]) in error[0], result.output


@pytest.mark.slow
def test_finetune_at_another_size_and_fewshot(trained, tmp_path):
    """finetune resizes a zoo model to the new size (same weights; ViP refuses by name)."""
    name, model_dir = trained
    size = 2 * ZOO[name][0]
    result = CliRunner().invoke(cli, [
        "finetune", "--checkpoint", str(model_dir), "--dataset", "digits", "--steps", "1",
        "--batch-size", "16", "--img-size", str(size), "--out", str(tmp_path / "ft"), "--json",
    ])  # fmt: skip
    if name.startswith("vip"):
        assert result.exit_code != 0 and "family 'vip' cannot be resized" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert load_model(tmp_path / "ft" / "model").config.img_size == (size, size)
    fewshot = _json(_run("fewshot", "--checkpoint", str(model_dir), "--dataset", "digits",
                         "--shots", "1", "--seeds", "1", "--json", "--out", str(tmp_path / "fs")))  # fmt: skip
    assert fewshot["results"] and fewshot["feature_dim"] > 0
