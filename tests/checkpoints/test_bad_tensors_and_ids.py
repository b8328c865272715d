"""Malformed tensors and hub ids are refused by name, exit 2, before anything big happens.

Before: an ``.npz`` with a 0-d array failed inside a transpose; a ``.pth`` with sparse or
meta tensors raised NotImplementedError; invalid hub ids (``hf-hub:../../x``, ``hf-hub:``,
``hf-hub:a/b/c``...) reached huggingface_hub and came back as HFValidationError (all "this
looks like a bug", exit 1); ``finetune --img-size 100000`` tried to allocate 20 GB for the
token index (3e18 bytes of weights) before any size check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mlpmixer import create_model, load_model, save_model
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError, ConfigError


def _model(**fields):
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=8, tokens_mlp_dim=4,
                        channels_mlp_dim=8, num_classes=3, **fields)  # fmt: skip


@pytest.mark.parametrize(
    "key", ["stem/kernel", "stem/bias", "head/kernel", "MixerBlock_0/LayerNorm_0/scale"]
)
def test_an_npz_with_a_0d_array_is_refused_by_name(tmp_path, key):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_model(_model(), tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz"))
    arrays[key] = np.array(1.0, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match=f"{key} has shape \\(\\) \\(0-d\\)"):
        load_model(tmp_path / "bad.npz")
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "bad.npz")])
    assert result.exit_code == 2 and "0-d" in result.stderr, result.output


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda t: t.to_sparse(), "sparse_coo, not dense"),
        (lambda t: t.to_sparse_csr(), "sparse_csr, not dense"),
        (lambda t: torch.empty(t.shape, device="meta"), "on the meta device"),
    ],
    ids=["coo", "csr", "meta"],
)
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_a_pth_with_sparse_or_meta_tensors_is_refused_by_name(tmp_path, make, words):
    state = dict(_model().state_dict())
    state["head.weight"] = make(state["head.weight"])
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=f"head.weight is {words}"):
        load_model(tmp_path / "bad.pth")
    for command in (["info", str(tmp_path / "bad.pth")],
                    ["predict", "x.png", "--checkpoint", str(tmp_path / "bad.pth")]):  # fmt: skip
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2 and words in result.stderr, result.output


@pytest.mark.parametrize(
    "hub_id",
    [
        "hf-hub:../../x",
        "hf-hub:/etc/passwd",
        "hf-hub:",
        "hf-hub:a/b/c",
        "hf-hub:org/na me",
        "hf-hub:org/-x",
        "hf-hub:a--b/c",
        "hf-hub:org/x\x1b]0;T\x07",
    ],
)
def test_invalid_hub_ids_are_refused_by_our_rule(hub_id, monkeypatch):
    import huggingface_hub

    def never(*args, **kwargs):
        raise AssertionError("huggingface_hub was asked")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    with pytest.raises(CheckpointError, match="not a valid Hugging Face hub id"):
        load_model(hub_id)
    result = CliRunner().invoke(cli, ["info", hub_id])
    assert result.exit_code == 2, result.output
    assert "not a valid Hugging Face hub id" in result.stderr and "\x1b" not in result.stderr


def test_valid_hub_ids_still_count_as_hub_ids():
    from mlpmixer.download import hub_repo_id, is_hub_id

    assert hub_repo_id("hf-hub:timm/mixer_b16_224.goog_in21k_ft_in1k") == (
        "timm/mixer_b16_224.goog_in21k_ft_in1k"
    )
    assert hub_repo_id("hf-hub:gpt2") == "gpt2" and is_hub_id("org/name")
    assert not is_hub_id("runs/a/model") and not is_hub_id("./a/b") and not is_hub_id("a b/c")


def test_resizing_to_an_absurd_size_is_refused_before_allocating():
    with pytest.raises(
        ConfigError, match=r"img_size=\(100000, 100000\).*more than the limit of 1e\+10"
    ):
        _model().resize(100000)


def test_finetune_to_an_absurd_size_is_exit_2_naming_the_bound(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _model(in_chans=1).save_pretrained(tmp_path / "ck")
    args = ["finetune", "--from", "ck", "--dataset", "digits", "--img-size", "100000", "--out", "r"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "more than the limit of 1e+10" in result.stderr
