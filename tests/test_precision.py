"""One autocast for the training loop and the benchmarks; precisions a CPU has no instructions
for: one line saying so and what they cost."""

from __future__ import annotations

import logging

import pytest
import torch

from mixer_testing import EPYC
from mlpmixer import precision
from mlpmixer.cpu_kind import parse_cpuinfo
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


AVX2_EPYC = parse_cpuinfo(EPYC.replace(" avx512f avx512_bf16", ""))


@pytest.fixture(autouse=True)
def _fresh():
    precision.warn_if_emulated.cache_clear()
    yield
    precision.warn_if_emulated.cache_clear()


def test_emulated_bf16_is_said_once_with_its_measured_cost(monkeypatch, caplog):
    monkeypatch.setattr(precision, "effective_cpu", lambda: AVX2_EPYC)
    monkeypatch.setattr(precision, "product_slowdown", lambda p: 6.7)
    with caplog.at_level(logging.WARNING, logger="mlpmixer"):
        line = precision.warn_if_emulated("cpu", "bf16")
        precision.warn_if_emulated("cpu", "bf16")
    assert line is not None and "\n" not in line
    assert "no native bf16" in line and "6.7x the fp32 time" in line and "fp32 is faster" in line
    assert [r.getMessage() for r in caplog.records] == [line]


def test_native_precisions_and_other_devices_say_nothing(monkeypatch):
    monkeypatch.setattr(precision, "effective_cpu", lambda: parse_cpuinfo(EPYC))
    assert precision.warn_if_emulated("cpu", "bf16") is None
    assert precision.warn_if_emulated("cpu", "fp32") is None
    monkeypatch.setattr(precision, "effective_cpu", lambda: AVX2_EPYC)
    assert precision.warn_if_emulated("cuda", "bf16") is None


def test_the_slowdown_is_a_measured_positive_ratio():
    assert precision.product_slowdown("bf16", rows=32, width=64, rounds=2) > 0
