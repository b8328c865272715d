"""One autocast for the training loop and the benchmarks."""

from __future__ import annotations

import pytest
import torch

from mlpmixer.precision import DTYPES, autocast


def test_fp32_is_no_autocast_and_bf16_is_cpu_autocast_to_bf16():
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16} == DTYPES


def test_an_unknown_precision_is_a_key_error():
    with pytest.raises(KeyError):
        autocast("cpu", "fp8")
