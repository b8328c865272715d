"""The paper's Table 1: parameter counts and FLOPs of the whole family."""

from __future__ import annotations

import pytest
import torch

import mlpmixer
from mlpmixer.models import flops_per_image, macs_per_image, model_entry, param_count

# Exact counts with the 1000-way head, computed by hand from the table's sizes:
# stem P²·3·C + C, per block 4C + (2·S·D_S + D_S + S) + (2·C·D_C + D_C + C), final norm 2C,
# head 1000·C + 1000.
EXACT_WITH_HEAD = {
    "mixer_s32_224": 19_104_624,
    "mixer_s16_224": 18_528_264,
    "mixer_b32_224": 60_293_428,
    "mixer_b16_224": 59_880_472,
    "mixer_l32_224": 206_939_264,
    "mixer_l16_224": 208_196_168,
    "mixer_h14_224": 432_350_952,
}
PAPER_MILLIONS = {
    "mixer_s32_224": 19, "mixer_s16_224": 18, "mixer_b32_224": 60, "mixer_b16_224": 59,
    "mixer_l32_224": 206, "mixer_l16_224": 207, "mixer_h14_224": 431,
}  # fmt: skip


@pytest.mark.parametrize("name", list(EXACT_WITH_HEAD))
def test_parameter_counts_match_the_paper(name):
    config = mlpmixer.model_config(name)
    assert param_count(config) == EXACT_WITH_HEAD[name]
    # The paper's table counts the backbone: without the head, every entry rounds to it.
    backbone = param_count(config, include_head=False)
    assert backbone == EXACT_WITH_HEAD[name] - 1000 * config.hidden_dim - 1000
    assert round(backbone / 1e6) == PAPER_MILLIONS[name] == model_entry(name).paper_params_m


@pytest.mark.parametrize("name", ["mixer_s32_224", "mixer_b16_224", "mixer_t2_8", "mixer_s4_32"])
def test_built_models_have_the_analytic_count(name):
    with torch.device("meta"):  # no memory for the weights: only shapes are counted
        model = mlpmixer.create_model(name)
    assert model.num_params() == param_count(model.config)


def test_b16_costs_12_6_g_multiply_adds_as_in_the_paper():
    config = mlpmixer.model_config("mixer_b16_224")
    assert round(macs_per_image(config) / 1e9, 1) == 12.6
    assert flops_per_image(config) == 2 * macs_per_image(config)


def test_analytic_flops_match_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = mlpmixer.create_model("mixer_s4_32").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert counter.get_total_flops() == 2 * flops_per_image(model.config)
