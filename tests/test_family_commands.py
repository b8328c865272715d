"""One test matrix for every registered family: what a Mixer does, each family does, or the
command refuses in one line naming the family, with the documented exit code.

Families: mixer, gmlp, resmlp, gmixer (flat) and the zoo's pyramids vip, cyclemlp, asmlp,
wavemlp, hiremlp. Commands: train, finetune (at another size where the family resizes), eval
(equal to a direct computation), predict, fewshot, export (ONNX, run by onnxruntime), bench,
info, convert to every writable format, and every ``mlpmixer analyze`` subcommand (tokens,
cka, permutation). One tiny config per family (the registered model with
``--set model.overrides...``), trained once per family (a module fixture): nine two-step
trainings on digits. What a family supports is read from its `FamilySpec`, never from its
name.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from mlpmixer import load_model
from mlpmixer.analysis.cka import centered_gram, layer_grams
from mlpmixer.analysis.permutation import foldable
from mlpmixer.analysis.token_mixing import token_mixing_units
from mlpmixer.bench.run import implementations
from mlpmixer.checkpoints.load import WRITABLE_FORMATS
from mlpmixer.cli import cli
from mlpmixer.errors import EXIT_BAD_INPUT
from mlpmixer.models.spec import family_names, family_spec

FLAT = {"patch_size": 2, "hidden_dim": 16, "num_blocks": 2, "tokens_mlp_dim": 16,
        "channels_mlp_dim": 32}  # fmt: skip
# family: registered model, image size, overrides (the digits recipe gives 1 channel, 10 classes)
FAMILIES = {
    "mixer": ("mixer_s16_224", 8, FLAT),
    "gmlp": ("gmlp_s16_224", 8, FLAT),
    "resmlp": ("resmlp_12_224", 8, FLAT),
    "gmixer": ("gmixer_12_224", 8, FLAT),
    "vip": ("vip_s7", 8, {"patch_size": 4, "depths": [1, 1], "embed_dims": [8, 8],
                          "transitions": [False], "segment_dims": [2, 2], "mlp_ratios": [2, 2]}),
    "cyclemlp": ("cyclemlp_b1", 8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "asmlp": ("asmlp_tiny", 32, {"depths": [1, 1, 1, 1], "embed_dim": 8}),
    "wavemlp": ("wavemlp_t", 8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "hiremlp": ("hiremlp_tiny", 8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
}  # fmt: skip
# where a converted file keeps the weights (None: refused for families without the layout)
SUFFIX = {"native": "", "official": ".npz", "timm": ".pth", "state_dict": ".pth"}


def test_the_matrix_covers_every_registered_family():
    assert set(FAMILIES) == set(family_names())


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _run(*args: str) -> str:
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def _json(output: str):
    """The JSON object a command printed (warnings may follow it)."""
    return json.JSONDecoder().raw_decode(output[output.index("{") :])[0]


def _refused(result, family: str) -> str:
    """The one error line of a refusal naming ``family``, exit code EXIT_BAD_INPUT."""
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert len(error) == 1 and repr(family) in error[0], result.output
    return error[0]


def _model_sets(family: str, size_key: str = "model.img_size") -> list[str]:
    """``--set`` options giving the family's tiny config (train's; ``analyze permutation``
    sets the size as a model override)."""
    _name, size, overrides = FAMILIES[family]
    sets = ["--set", f"{size_key}={size}"]
    for key, value in overrides.items():
        sets += ["--set", f"model.overrides.{key}={json.dumps(value)}"]
    return sets


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def trained(request, tmp_path_factory):
    """(family, model folder) of a two-step training on digits."""
    family = request.param
    out = tmp_path_factory.mktemp(family) / "run"
    summary = _json(_run("train", "--model", FAMILIES[family][0], "--dataset", "digits",
                         "--steps", "2", "--batch-size", "16", "--out", out, "--json",
                         *_model_sets(family)))  # fmt: skip
    assert 0.0 <= summary["test_top1"] <= 1.0
    return family, out / "model"


def _nontrivial(model_dir) -> nn.Module:
    """The trained model with a random head, so that predictions differ between images."""
    model = load_model(model_dir).eval()
    with torch.no_grad():
        torch.manual_seed(0)
        model.head.weight.normal_(0, 0.5)
    return model


def _digits_test(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits test split as eval prepares it for ``model``: (images normalised, labels)."""
    from mlpmixer.data import build_dataset

    c = model.config
    data, _ = build_dataset("digits", "test", img_size=c.img_size, in_chans=c.in_chans,
                            crop_pct=c.crop_pct, interpolation=c.interpolation)  # fmt: skip
    images = torch.stack([data[i][0] for i in range(len(data))])
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (c.mean, c.std))
    return (images - mean) / std, labels


# ------------------------------------------------------------------ train, finetune


@pytest.mark.slow
def test_train_gives_the_family_and_the_overrides(trained):
    family, model_dir = trained
    model = load_model(model_dir)
    assert model.config.family == family and type(model) is family_spec(family).model
    assert model.num_params() < 100_000  # the overrides reached the model
    assert model.config.img_size == (FAMILIES[family][1],) * 2 and model.config.in_chans == 1


@pytest.mark.slow
def test_finetune_at_another_size_or_the_refusal(trained, tmp_path):
    """A family that resizes (a resize rule, or layers of any size) finetunes at twice the
    size with the same weights; one that cannot (ViP) refuses in one line, and finetunes at
    its own size."""
    family, model_dir = trained
    spec = family_spec(family)
    size = 2 * FAMILIES[family][1]
    args = ["finetune", "--checkpoint", model_dir, "--dataset", "digits", "--steps", "1",
            "--batch-size", "16", "--out", tmp_path / "ft", "--json"]  # fmt: skip
    if spec.any_size or spec.resize is not None:
        _run(*args, "--img-size", size)
        assert load_model(tmp_path / "ft" / "model").config.img_size == (size, size)
        return
    error = _refused(_invoke(*args, "--img-size", size), family)
    assert "cannot be resized" in error
    _run(*args)
    assert load_model(tmp_path / "ft" / "model").config.img_size == (size // 2,) * 2


# ------------------------------------------------------------------ eval, predict, fewshot


@pytest.mark.slow
def test_eval_equals_a_direct_computation(trained, tmp_path):
    _family, model_dir = trained
    model = _nontrivial(model_dir)
    model.save_pretrained(tmp_path / "m")
    report = _json(_run("eval", "--checkpoint", tmp_path / "m", "--dataset", "digits",
                        "--json", "--out", tmp_path / "eval"))  # fmt: skip
    images, labels = _digits_test(model)
    with torch.no_grad():
        direct = (model(images).argmax(1) == labels).double().mean().item()
    assert report["top1"] == pytest.approx(direct)


@pytest.mark.slow
def test_predict_gives_the_directly_computed_class(trained, tmp_path):
    from mlpmixer.evaluate.eval import normalizer
    from mlpmixer.evaluate.predict import prepare_image

    _family, model_dir = trained
    model = _nontrivial(model_dir)
    model.save_pretrained(tmp_path / "m")
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray((torch.rand(12, 12) * 255).byte().numpy(), mode="L").save(files[-1])
    report = _json(_run("predict", "--checkpoint", tmp_path / "m", *files, "--json"))
    assert len(report["predictions"]) == 2 and not report["failures"]
    prep = normalizer(model.config.mean, model.config.std)
    for path, prediction in zip(files, report["predictions"], strict=True):
        with torch.no_grad():
            logits = model(prep(prepare_image(path, model.config)[None]))
        assert prediction["top"][0]["index"] == logits.argmax(1).item()


@pytest.mark.slow
def test_fewshot_takes_every_family(trained, tmp_path):
    _family, model_dir = trained
    fewshot = _json(_run("fewshot", "--checkpoint", model_dir, "--dataset", "digits",
                         "--shots", "1", "--seeds", "1", "--json", "--out", tmp_path / "fs"))  # fmt: skip
    assert fewshot["results"] and 0.0 <= fewshot["results"][0]["mean_accuracy"] <= 1.0
    assert fewshot["feature_dim"] == load_model(model_dir).num_features


# ------------------------------------------------------------------ export, bench, info


@pytest.mark.slow
@pytest.mark.skipif(
    not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")),
    reason="onnx and onnxruntime are the [export] extra",
)
def test_export_onnx_runs_as_the_model(trained, tmp_path):
    import onnxruntime

    _family, model_dir = trained
    exported = _json(_run("export", "--checkpoint", model_dir, "--out", tmp_path / "m.onnx",
                          "--json"))  # fmt: skip
    assert exported["max_abs_diff"] < 1e-4
    model = load_model(model_dir).eval()
    images = torch.randn(3, 1, *model.config.img_size)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(images), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_bench_runs_and_compares_with_what_the_family_has(trained):
    family, model_dir = trained
    bench = _json(_run("bench", "--checkpoint", model_dir, "--json", "--mode", "infer",
                       "--batch-size", "2", "--warmup", "0", "--repeats", "1", "--min-time",
                       "0", "--no-latency", "--no-peak"))  # fmt: skip
    assert bench["config"]["family"] == family and bench["config"]["params"] > 0
    model = load_model(model_dir)
    impls, notes = implementations(model, compare=True)
    assert impls["mlpmixer"] is model
    assert ("plain" in impls) == (family_spec(family).plain is not None)
    if "plain" not in impls:
        assert any("plain comparison skipped" in n for n in notes)


@pytest.mark.slow
def test_info_shows_the_family_and_the_size(trained, tmp_path):
    """Also for a bare state dict without its sidecar (the size is then in no file): a size
    the shapes fix (the flat families' token grid) is inferred; a family whose layers take
    any size says the size shown is assumed (it showed 224 as if known); one whose shapes fit
    one size but do not give it (ViP's segments) is refused with the fix, --img-size."""
    family, model_dir = trained
    side = FAMILIES[family][1]
    size = f"{side}x{side}"
    info = _run("info", model_dir)
    assert family in info and re.search(rf"image size\W+{size}\W", info), info
    summary = _json(_run("info", model_dir, "--json"))
    assert summary["loads"] and not summary["img_size_assumed"]
    _run("convert", model_dir, tmp_path / "bare.pth", "--to", "state_dict")
    next(tmp_path.glob("bare.pth.*.json")).unlink()  # the sidecar keeps the size
    given = _json(_run("info", tmp_path / "bare.pth", "--json", "--img-size", size))
    assert given["config"]["img_size"] == [side, side] and not given["img_size_assumed"]
    result = _invoke("info", tmp_path / "bare.pth", "--json")
    if family_spec(family).any_size:
        assert result.exit_code == 0 and _json(result.output)["img_size_assumed"]
        assert "(assumed: not in the file" in _run("info", tmp_path / "bare.pth")
    elif result.exit_code == 0:
        summary = _json(result.output)
        assert summary["config"]["img_size"] == [side, side] and not summary["img_size_assumed"]
    else:
        assert "give --img-size" in _refused(result, family)


# ------------------------------------------------------------------ convert


def _writes(family: str, fmt: str) -> bool:
    """Whether ``convert --to fmt`` holds this family, by its spec."""
    spec = family_spec(family)
    return {"official": spec.official_npz, "timm": spec.timm is not None}.get(fmt, True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", WRITABLE_FORMATS)
def test_convert_to_every_writable_format_or_the_refusal(trained, fmt, tmp_path):
    family, model_dir = trained
    model = _nontrivial(model_dir)
    model.save_pretrained(tmp_path / "m")
    dest = tmp_path / f"out{SUFFIX[fmt]}"
    result = _invoke("convert", tmp_path / "m", dest, "--to", fmt)
    if not _writes(family, fmt):
        _refused(result, family)
        return
    assert result.exit_code == 0, result.output
    back = load_model(dest).eval()
    assert type(back) is type(model) and back.config.img_size == model.config.img_size
    images = torch.randn(2, 1, *model.config.img_size)
    with torch.no_grad():
        torch.testing.assert_close(back(images), model(images), atol=1e-5, rtol=1e-5)


def test_convert_offers_exactly_the_writable_formats():
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    for fmt in WRITABLE_FORMATS:
        assert fmt in result.output
    assert "lucidrains" not in result.output.split("--to")[1].split("--img-size")[0]


# ------------------------------------------------------------------ analyze


def test_analyze_has_the_subcommands_the_matrix_runs():
    from mlpmixer.cli.analyze import analyze

    assert set(analyze.commands) == {"tokens", "cka", "permutation"}


@pytest.mark.slow
def test_analyze_tokens_or_the_refusal(trained, tmp_path):
    """Families with a token-mixing weight draw its rows on the patch grid; the zoo has none
    in the paper's sense and is refused, naming the family and what takes it instead."""
    family, model_dir = trained
    result = _invoke("analyze", "tokens", "--checkpoint", model_dir, "--blocks", "1,2",
                     "--out", tmp_path, "--json")  # fmt: skip
    if family_spec(family).token_weight is None:
        assert "analyze cka and analyze permutation take it" in _refused(result, family)
        return
    assert result.exit_code == 0, result.output
    data = _json(result.output)
    model = load_model(model_dir)
    for b, block in zip((0, 1), data["blocks"], strict=True):
        expected = model.token_mixing_weight(b).detach().double()
        units = token_mixing_units(model, b)
        assert units.shape == (expected.shape[0], 4, 4) and block["num_units"] == len(units)
        torch.testing.assert_close(torch.from_numpy(units.reshape(len(units), -1)), expected)


def _block_modules(model: nn.Module) -> list[nn.Module]:
    """Every block in forward order: a flat model's ``blocks``, a pyramid's stages' blocks."""
    if isinstance(model.blocks, nn.ModuleList):
        return list(model.blocks)
    return [block for stage in model.blocks for block in stage]


@pytest.mark.slow
def test_analyze_cka_compares_the_stem_and_every_block(trained, tmp_path):
    _family, model_dir = trained
    data = _json(_run("analyze", "cka", "--checkpoint", model_dir, "--dataset", "digits",
                      "--num-images", "16", "--out", tmp_path, "--json"))  # fmt: skip
    model = load_model(model_dir).eval()
    blocks = _block_modules(model)
    assert data["layers_a"] == ["stem"] + [f"block {i + 1}" for i in range(len(blocks))]
    assert all(row[i] == pytest.approx(1.0) for i, row in enumerate(data["cka"]))
    # the Gram matrices against forward hooks on the stem and each block (a map in either
    # layout: CKA does not see the order of the features)
    stem = model.get_submodule(model.pretrained_cfg["first_conv"].rsplit(".", 1)[0])
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in [stem, *blocks]]
    images = torch.randn(6, 1, *model.config.img_size)
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    names, grams = layer_grams(model, images, batch_size=4)
    assert len(names) == len(seen) == len(blocks) + 1
    for gram, out in zip(grams, seen, strict=True):
        torch.testing.assert_close(gram, centered_gram(out), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_analyze_permutation_trains_every_family(trained, tmp_path):
    """The paper's study for any trainable family: the family and the CNN on the three
    variants; the exact float64 check where the family has a fold (Mixer, gMixer)."""
    family, model_dir = trained
    data = _json(_run("analyze", "permutation", "--model", FAMILIES[family][0],
                      *_model_sets(family, "model.overrides.img_size"),
                      "--epochs", "1", "--limit", "40", "--exact-epochs", "1", "--batch-size",
                      "20", "--out", tmp_path, "--json"))  # fmt: skip
    assert set(data["accuracy"]) == {family, "cnn"}
    for row in data["accuracy"].values():
        assert set(row) == {"original", "patch+pixel", "global"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert data["config"]["family"] == family
    if foldable(load_model(model_dir)):
        assert data["exact"]["max_abs_weight_diff"] < 1e-9 and data["exact"]["same_predictions"]
    else:
        assert data["exact"] is None and data["settings"]["exact"].startswith("not run")
