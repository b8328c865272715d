"""Every family works where a Mixer works: train, analyze tokens, CKA, bench, convert.

Small configs of the registered family models (timm's names), so each test takes seconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model, load_model
from mlpmixer.analysis.cka import layer_grams
from mlpmixer.analysis.token_mixing import analyze_token_mixing, token_mixing_units
from mlpmixer.bench.run import BenchOptions, implementations
from mlpmixer.checkpoints.load import WRITABLE_FORMATS
from mlpmixer.cli import cli

FAMILY_MODELS = ["gmlp_s16_224", "resmlp_12_224", "gmixer_12_224"]
SMALL = {
    "img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "hidden_dim": 16,
    "num_blocks": 2, "tokens_mlp_dim": 16, "channels_mlp_dim": 32,
}  # fmt: skip


def _small(name: str):
    torch.manual_seed(0)
    return create_model(name, **SMALL, mean=(0.5,), std=(0.5,)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_train_runs_end_to_end_for_every_family(name, tmp_path):
    out = tmp_path / "run"
    sets = [
        f"model.overrides.{k}={v}"
        for k, v in SMALL.items()
        if k not in ("img_size", "in_chans", "num_classes")
    ]
    args = ["train", "--model", name, "--dataset", "digits", "--steps", "2", "--batch-size", "16",
            "--out", str(out), "--json", "--set", "model.img_size=8"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    model = load_model(out / "model")
    assert model.config.family == create_model(name).config.family
    assert model.num_params() < 100_000  # the overrides reached the model
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_top1"] <= 1.0


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_analyze_tokens_reads_each_familys_token_weight(name):
    model = _small(name)
    units = token_mixing_units(model, 1)
    expected = model.token_mixing_weight(1).detach().double().numpy()
    assert units.shape == (expected.shape[0], 4, 4)
    torch.testing.assert_close(torch.from_numpy(units.reshape(len(units), -1)),
                               torch.from_numpy(expected))  # fmt: skip
    (result,) = analyze_token_mixing(model, [0])
    assert result.num_units == expected.shape[0]


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_cka_layers_are_the_stem_and_each_block_output(name):
    model = _small(name)
    images = torch.randn(6, 1, 8, 8)
    names, grams = layer_grams(model, images, batch_size=4)
    assert names == ["stem", "block 1", "block 2"]
    # independent of forward_intermediates: run the blocks by hand
    with torch.no_grad():
        x = model.stem(images)
        outs = [x]
        for block in model.blocks:
            x = block(x)
            outs.append(x)
    for gram, out in zip(grams, outs, strict=True):
        flat = out.flatten(1).double()
        flat = flat - flat.mean(0)
        torch.testing.assert_close(gram, flat @ flat.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_bench_compares_a_family_model_with_timm_only(name):
    model = _small(name)
    impls, notes = implementations(model, compare=True)
    assert "plain" not in impls and impls["mlpmixer"] is model
    assert any("plain comparison skipped" in n for n in notes)
    assert BenchOptions().batch_size > 0


def test_convert_offers_exactly_the_writable_formats():
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    for fmt in WRITABLE_FORMATS:
        assert fmt in result.output
    assert "lucidrains" not in result.output.split("--to")[1].split("--img-size")[0]


@pytest.fixture(scope="module", params=FAMILY_MODELS)
def saved_family_model(request, tmp_path_factory):
    model = _small(request.param)
    with torch.no_grad():  # a non-trivial head, so predictions differ between images
        model.head.weight.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("fam") / request.param
    model.save_pretrained(path)
    return path, model


def test_eval_of_a_saved_family_model_equals_a_direct_computation(saved_family_model):
    from mlpmixer.data import build_dataset
    from mlpmixer.evaluate.eval import evaluate_checkpoint

    path, model = saved_family_model
    data, _ = build_dataset("digits", "test", img_size=(8, 8), in_chans=1, crop_pct=0.875,
                            interpolation="bicubic")  # fmt: skip
    images = torch.stack([data[i][0] for i in range(len(data))])
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    result, loaded = evaluate_checkpoint(path, "digits", batch_size=100)
    assert type(loaded) is type(model)
    with torch.no_grad():
        direct = (model((images - 0.5) / 0.5).argmax(1) == labels).double().mean().item()
    assert result.top1 == pytest.approx(direct)


def test_predict_and_fewshot_take_a_family_model(saved_family_model, tmp_path):
    from PIL import Image

    from mlpmixer.evaluate.fewshot import fewshot_checkpoint
    from mlpmixer.evaluate.predict import predict_files

    path, _ = saved_family_model
    for i in range(2):
        Image.fromarray((torch.rand(8, 8) * 255).byte().numpy(), mode="L").save(
            tmp_path / f"{i}.png"
        )
    report = predict_files(load_model(path), [tmp_path], top_k=3)
    assert len(report.predictions) == 2 and not report.failures
    result = fewshot_checkpoint(path, "digits", shots=(1,), seeds=(0,))
    assert result.results and 0.0 <= result.results[0].mean_accuracy <= 1.0
