"""The int8 folder as a checkpoint format: every command that runs a model reads it, and
gives what `load_quantized` gives; the commands that need float weights refuse it in one line.

The reference of each check is the model `deploy.storage.load_quantized` rebuilds, run
through the library function the command wraps (`evaluate_checkpoint`, `predict_files`,
`fewshot_checkpoint`): the command must have loaded that same model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import mlpmixer
from deploy_testing import needs_torchao
from mixer_testing import randomised
from mlpmixer.checkpoints import detect_format
from mlpmixer.cli import cli
from mlpmixer.deploy import load_quantized, quantize, save_quantized
from mlpmixer.errors import CheckpointError, ConfigError
from mlpmixer.models import MixerConfig, build_model

pytestmark = needs_torchao


def _digits_model() -> torch.nn.Module:
    """A randomised 2-block Mixer for scikit-learn's digits (1x8x8, 10 classes)."""
    config = MixerConfig(
        img_size=(8, 8), patch_size=(2, 2), in_chans=1, num_classes=10,
        hidden_dim=32, num_blocks=2, tokens_mlp_dim=16, channels_mlp_dim=64,
    )  # fmt: skip
    return randomised(build_model(config), 0).eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The float model (native) and its weight-only int8 folder."""
    root = tmp_path_factory.mktemp("int8ckpt")
    model = _digits_model()
    model.save_pretrained(root / "float")
    save_quantized(quantize(model, "weight-only"), root / "q")
    return root


def _invoke(*args: str) -> tuple[int, str]:
    run = CliRunner().invoke(cli, list(args))
    return run.exit_code, run.output


def _json(*args: str) -> dict:
    code, output = _invoke(*args, "--json")
    assert code == 0, output
    return json.loads(output[output.index("{") :])


def test_load_model_reads_the_folder_as_load_quantized_does(folders):
    folder = folders / "q"
    assert detect_format(folder) == "int8"
    assert detect_format(folders / "float") == "native"
    loaded, reference = mlpmixer.load_model(folder), load_quantized(folder)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
    assert (loaded.method, loaded.kept_in_float) == ("weight-only", ("stem.proj", "head"))


def test_the_format_detects_the_names_the_storage_writes():
    from mlpmixer.checkpoints.formats import int8
    from mlpmixer.deploy import storage

    assert (int8.MANIFEST, int8.FORMAT_NAME) == (storage.MANIFEST, storage.FORMAT_NAME)


def test_info_names_the_method_and_what_is_kept_in_float(folders):
    summary = _json("info", str(folders / "q"))
    assert (summary["format"], summary["loads"]) == ("int8", True)
    assert summary["int8_method"] == "weight-only"
    assert summary["kept_in_float"] == ["stem.proj", "head"]
    assert summary["int8_layers"] == len(load_quantized(folders / "q").quantized)
    code, text = _invoke("info", str(folders / "q"))
    assert code == 0 and "kept in float" in text and "weight-only" in text


def test_eval_scores_what_load_quantized_scores(folders, tmp_path):
    scored = _json("eval", "--checkpoint", str(folders / "q"), "--dataset", "digits",
                   "--out", str(tmp_path))  # fmt: skip
    reference, _ = mlpmixer.evaluate.evaluate_checkpoint(load_quantized(folders / "q"), "digits")
    assert scored["top1"] == reference.top1 and scored["loss"] == reference.loss
    float_scored = _json("eval", "--checkpoint", str(folders / "float"), "--dataset", "digits",
                         "--out", str(tmp_path))  # fmt: skip
    assert float_scored["loss"] != scored["loss"]  # the int8 model, not the float one, ran


def test_predict_gives_what_load_quantized_gives(folders, tmp_path):
    for i in range(3):
        pixels = (np.random.RandomState(i).rand(8, 8) * 255).astype("uint8")
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    predicted = _json("predict", str(tmp_path), "--checkpoint", str(folders / "q"),
                      "--out", str(tmp_path / "out"))  # fmt: skip
    from mlpmixer.evaluate.predict import predict_files

    reference = predict_files(load_quantized(folders / "q"), [str(tmp_path)]).to_dict()
    assert predicted["predictions"] == json.loads(json.dumps(reference["predictions"]))


def test_fewshot_reads_the_int8_features(folders, tmp_path):
    result = _json("fewshot", "--checkpoint", str(folders / "q"), "--dataset", "digits",
                   "--shots", "1", "--seeds", "1", "--out", str(tmp_path))  # fmt: skip
    from mlpmixer.evaluate.fewshot import fewshot_checkpoint

    reference = fewshot_checkpoint(load_quantized(folders / "q"), "digits", shots=(1,), seeds=(0,))
    assert result["results"][0]["accuracies"] == reference.to_dict()["results"][0]["accuracies"]


def test_bench_times_inference_only_and_refuses_training(folders):
    common = ("--no-latency", "--no-peak", "--min-time", "0", "--repeats", "1", "--warmup", "0",
              "--batch-size", "2")  # fmt: skip
    result = _json("bench", "--checkpoint", str(folders / "q"), *common)
    assert [row["mode"] for row in result["results"]] == ["infer"]
    assert any("int8 model: inference only" in note for note in result["notes"])
    code, output = _invoke("bench", "--checkpoint", str(folders / "q"), "--mode", "train", *common)
    assert code == 2 and "an int8 model is benchmarked in inference only" in output


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["convert", "{q}", "{tmp}/out"], "cannot be converted to another format"),
        (["finetune", "--checkpoint", "{q}", "--dataset", "digits", "--steps", "1"],
         "cannot be trained or fine-tuned"),
        (["train", "--dataset", "digits", "--set", "model.pretrained={q}", "--steps", "1"],
         "cannot be trained or fine-tuned"),
        (["export", "--checkpoint", "{q}", "--out", "{tmp}/m.pt"],
         "cannot be exported to torchscript"),
        (["export", "--checkpoint", "{q}", "--out", "{tmp}/m.onnx"], "cannot be exported to onnx"),
        (["analyze", "tokens", "--checkpoint", "{q}", "--out", "{tmp}/a"], "cannot be analysed"),
    ],
)  # fmt: skip
def test_commands_that_need_float_weights_refuse_in_one_line(folders, tmp_path, args, why):
    filled = [a.format(q=folders / "q", tmp=tmp_path) for a in args]
    code, output = _invoke(*filled)
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and why in errors[0], output
    assert not (tmp_path / "out").exists()


def test_the_library_refuses_resizing_new_settings_and_saving(folders, tmp_path):
    model = mlpmixer.load_model(folders / "q")
    with pytest.raises(ConfigError, match="cannot be resized"):
        model.resize((16, 16))
    with pytest.raises(CheckpointError, match=r"rebuilt with other settings \(gelu\)"):
        mlpmixer.load_model(folders / "q", gelu="none")
    with pytest.raises(CheckpointError, match="cannot be saved as a float checkpoint"):
        mlpmixer.save_model(model, tmp_path / "x")


def test_without_torchao_reading_the_folder_says_what_to_install(folders, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_torchao(name, *args):
        if name.startswith("torchao"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr("mlpmixer.deploy.extra.importlib.import_module", no_torchao)
    with pytest.raises(CheckpointError, match=r"needs torchao: pip install 'mlpmixer\[int8\]'"):
        mlpmixer.load_model(folders / "q")
    code, output = _invoke("eval", "--checkpoint", str(folders / "q"), "--dataset", "digits")
    assert code == 2 and "needs torchao: pip install 'mlpmixer[int8]'" in output


def test_reading_a_float_checkpoint_does_not_import_torchao(folders):
    probe = (
        "import sys, mlpmixer; mlpmixer.load_model(sys.argv[1]); print('torchao' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(folders / "float")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_a_static_folder_evaluates_as_load_quantized_does(tmp_path):
    model = _digits_model()
    calibration = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    save_quantized(quantize(model, "static", calibration=calibration), tmp_path / "s")
    scored = _json("eval", "--checkpoint", str(tmp_path / "s"), "--dataset", "digits",
                   "--out", str(tmp_path / "e"))  # fmt: skip
    reference, _ = mlpmixer.evaluate.evaluate_checkpoint(load_quantized(tmp_path / "s"), "digits")
    assert scored["top1"] == reference.top1 and scored["loss"] == reference.loss
    summary = _json("info", str(tmp_path / "s"))
    assert summary["int8_method"] == "static"
    code, output = _invoke("fewshot", "--checkpoint", str(tmp_path / "s"), "--dataset", "digits",
                           "--shots", "1", "--seeds", "1")  # fmt: skip
    assert code == 2 and "gives no features" in output
