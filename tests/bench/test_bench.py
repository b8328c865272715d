"""`mlpmixer bench`: analytic FLOPs against torch's FLOP counter, and sane results (no timings).

Throughput itself is measured in benchmarks/, never asserted in tests.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from mlpmixer import MixerConfig, MlpMixer, create_model
from mlpmixer.bench.peak import measure_matmul_peak
from mlpmixer.bench.run import BenchOptions, benchmark
from mlpmixer.cli import cli
from mlpmixer.models import flops_per_image, model_config
from mlpmixer.models.plain import PlainMixer
from mlpmixer.timing import SavedActivations, percentile, summarize_ms

CONFIGS = [
    MixerConfig(img_size=(8, 8), patch_size=(2, 2), in_chans=1, num_classes=10, hidden_dim=16,
                num_blocks=2, tokens_mlp_dim=8, channels_mlp_dim=32),
    MixerConfig(img_size=(12, 20), patch_size=(4, 2), in_chans=3, num_classes=0, hidden_dim=24,
                num_blocks=3, tokens_mlp_dim=10, channels_mlp_dim=40),
]  # fmt: skip
FAST = {"warmup": 1, "repeats": 2, "min_time_s": 0.0, "latency_repeats": 2, "peak_sizes": (128,)}


def _counted_flops(module: torch.nn.Module, images: torch.Tensor, backward: bool = False) -> int:
    with FlopCounterMode(display=False) as counter:
        out = module(images)
        if backward:
            out.square().mean().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("config", CONFIGS, ids=["gray-8x8", "non-square-headless"])
def test_analytic_flops_equal_flop_counter(config):
    model = MlpMixer(config).eval()
    images = torch.randn(3, config.in_chans, *config.img_size)
    with torch.no_grad():
        assert _counted_flops(model, images) == 3 * flops_per_image(config)
        assert _counted_flops(PlainMixer.from_model(model), images) == 3 * flops_per_image(config)


def test_training_step_is_three_forward_passes():
    """Backward costs two products per forward product, except the stem's input gradient."""
    config = CONFIGS[0]
    model = MlpMixer(config).train()
    images = torch.randn(4, 1, 8, 8)
    counted = _counted_flops(model, images, backward=True)
    forward = 4 * flops_per_image(config)
    stem_input_grad = 4 * config.num_tokens * config.hidden_dim * 4 * 2  # not computed
    assert counted == 3 * forward - stem_input_grad
    assert abs(counted / (3 * forward) - 1) < 0.05


def test_matmul_peak_is_measured_per_size():
    peak = measure_matmul_peak("cpu", "fp32", sizes=(32, 64), min_time_s=0.0)
    assert set(peak.by_size) == {32, 64} and peak.tflops == max(peak.by_size.values()) > 0
    assert peak.size in (32, 64) and peak.dtype == "fp32"


def test_summaries_and_percentiles():
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 90) == pytest.approx(1.9)
    s = summarize_ms([0.001, 0.002, 0.003])
    assert s["median"] == pytest.approx(2.0) and s["min"] == pytest.approx(1.0)
    assert s["spread"] == pytest.approx((2.8 - 1.2) / 2.0)


def test_saved_activations_shrink_with_checkpointing():
    model = create_model("mixer_t2_8").train()
    images = torch.randn(8, 1, 8, 8)
    sizes = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        with SavedActivations(model.parameters()) as saved:
            out = model(images)
        out.sum().backward()
        sizes.append(saved.bytes)
    assert 0 < sizes[1] < sizes[0] / 2


@pytest.mark.slow
def test_benchmark_tiny_model_compare():
    result = benchmark("mixer_t2_8", BenchOptions(batch_size=4, compare=True, **FAST))
    json.dumps(result)  # JSON-ready
    assert result["implementations"] == ["mlpmixer", "plain"]
    assert result["gflops_per_image"] == pytest.approx(
        flops_per_image(model_config("mixer_t2_8")) / 1e9
    )
    rows = {(r["impl"], r["mode"]): r for r in result["results"]}
    assert set(rows) == {(i, m) for i in ("mlpmixer", "plain") for m in ("infer", "train")}
    peak = result["matmul_peak"]["tflops"]  # the better of the runs before and after
    assert peak >= result["matmul_peak_after"]["tflops"]
    for (_, mode), row in rows.items():
        ms = row["step_ms"]
        assert ms["n"] >= 2 and 0 < ms["min"] <= ms["median"] <= ms["p90"]
        assert row["images_per_s"] == pytest.approx(4 / (ms["median"] / 1e3))
        flops = (1 if mode == "infer" else 3) * 4 * result["gflops_per_image"] * 1e9
        assert row["tflops"] == pytest.approx(flops / (ms["median"] / 1e3) / 1e12)
        assert row["mfu"] == pytest.approx(row["tflops"] / peak)
        assert row["images_per_s_best"] >= row["images_per_s"] and row["mfu_best"] >= row["mfu"]
        assert row["images_per_s_per_core"] == pytest.approx(
            row["images_per_s"] / result["machine"]["torch_threads"]
        )
        assert row["peak_memory_mb"] >= 0
        if mode == "infer":
            assert row["latency_ms_batch1"]["p50"] > 0
        else:
            assert row["saved_activations_mb_per_image"] > 0
    ratio = rows["mlpmixer", "infer"]["images_per_s"] / rows["plain", "infer"]["images_per_s"]
    assert result["ratios"]["infer"]["mlpmixer_vs_plain"] == pytest.approx(ratio)
    cpu_ratio = (
        rows["mlpmixer", "train"]["cpu_ms"]["median"] / rows["plain", "train"]["cpu_ms"]["median"]
    )
    assert result["ratios_cpu_time"]["train"]["mlpmixer_vs_plain"] == pytest.approx(1 / cpu_ratio)
    assert any("timm" in note for note in result["notes"])  # timm is absent here: said so


@pytest.mark.slow
def test_benchmark_bf16_training_with_checkpointing():
    options = BenchOptions(batch_size=4, dtype="bf16", mode="train", peak=False, **FAST)
    plain = benchmark("mixer_t2_8", options)["results"][0]
    options.grad_checkpointing = True
    checkpointed = benchmark("mixer_t2_8", options)["results"][0]
    assert plain["mfu"] is None  # no peak measured, no MFU
    options.gelu = "none"
    assert benchmark("mixer_t2_8", options)["config"]["gelu"] == "none"
    assert checkpointed["saved_activations_mb_per_image"] < plain["saved_activations_mb_per_image"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dtype": "fp64"}, "dtype"),
        ({"mode": "fast"}, "mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
        ({"compile_mode": "reduce-overhead"}, "CUDA"),
        ({"gelu": "relu"}, "gelu"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    from mlpmixer.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        benchmark("mixer_t2_8", BenchOptions(**options))


def test_cli_json_out_and_checkpoint(tmp_path):
    checkpoint = tmp_path / "tiny"
    create_model("mixer_t2_8").save(checkpoint)
    out = tmp_path / "bench.json"
    args = ["bench", "--checkpoint", str(checkpoint), "--batch-size", "2", "--mode", "infer",
            "--warmup", "1", "--repeats", "2", "--min-time", "0", "--no-latency", "--no-peak",
            "--json", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert json.loads(out.read_text()) == printed
    assert printed["results"][0]["mode"] == "infer" and printed["model"] == str(checkpoint)
    # which fast pieces ran, and why (here: the suite's policy, every piece on); none where the
    # process builds plain models (MLPMIXER_FAST=0)
    from mlpmixer.models.fast import fast_layers_enabled

    assert bool(printed["fast_pieces"]) or not fast_layers_enabled()
    assert all({"piece", "case", "choice", "why"} <= set(d) for d in printed["fast_pieces"])


@pytest.mark.slow
def test_cli_table_and_errors():
    runner = CliRunner()
    args = ["bench", "--model", "mixer_t2_8", "--batch-size", "2", "--mode", "infer",
            "--warmup", "1", "--repeats", "2", "--min-time", "0", "--compare", "--no-peak"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "MFU" in result.output and "mlpmixer / plain" in result.output
    assert runner.invoke(cli, ["bench", "--model", "no_such_model"]).exit_code == 2
    both = ["bench", "--model", "mixer_t2_8", "--checkpoint", "x"]
    assert runner.invoke(cli, both).exit_code == 2


def test_matmul_peak_counts_onednn_when_aten_is_slower(monkeypatch):
    """On AMD CPUs ATen's fp32 mm (MKL without AVX-512) is slower than the oneDNN products
    the fast path runs, and a peak from torch.mm alone gave fp32 MFUs of 120-167% (issue 18):
    the peak is the faster library's. ATen is slowed here to stand for that CPU."""
    import time

    import torch

    from mlpmixer.models.fast import onednn

    if not onednn.available():
        pytest.skip("this torch has no oneDNN linear")
    real_mm = torch.mm

    def slow_mm(*args, **kwargs):
        time.sleep(0.02)  # n=256: ~1.7 GFLOP/s at most
        return real_mm(*args, **kwargs)

    monkeypatch.setattr(torch, "mm", slow_mm)
    peak = measure_matmul_peak("cpu", "fp32", sizes=(256,), min_time_s=0.0)
    assert peak.tflops > 0.005, peak  # oneDNN's product: tens of GFLOP/s even on a busy core
    assert peak.library == "onednn"


def test_matmul_peak_survives_a_dtype_onednn_cannot_run(monkeypatch):
    """Issue 25: on an AVX2-only CPU oneDNN has no bf16 inner product, and the bf16 peak probe
    called it without a fallback (`mlpmixer bench --precision bf16` exit 1). Now the peak is
    ATen's, and oneDNN is switched off for that dtype only."""
    from mlpmixer.models.fast import onednn

    monkeypatch.setattr(onednn, "works", lambda op, dtype: True)  # as if it said it could
    monkeypatch.setattr(onednn, "failed", set())

    def refuse(*args):
        raise RuntimeError("could not create a primitive descriptor for the inner product")

    monkeypatch.setattr(onednn, "pointwise", refuse)
    peak = measure_matmul_peak("cpu", "bf16", sizes=(64,), min_time_s=0.0)
    assert peak.library == "aten" and peak.tflops > 0
    assert onednn.failed == {("linear", torch.bfloat16)}


def test_matmul_peak_stops_growing_where_one_product_takes_seconds(monkeypatch):
    """Issue 25: bf16 emulated on an AVX2 CPU runs ~1 GFLOP/s, and the 3072 products of the
    default sizes kept `bench --precision bf16` in its peak probe for over 10 minutes."""
    from mlpmixer.bench import peak as peak_module

    tried = []

    def slow(n, dtype, device, min_time_s, product):
        tried.append(n)
        return 0.001  # TFLOP/s: a 1024 product takes 2 s

    monkeypatch.setattr(peak_module, "_matmul_tflops", slow)
    result = measure_matmul_peak("cpu", "bf16")
    assert set(tried) == {1024} and result.size == 1024 and list(result.by_size) == [1024]


def test_mfu_of_an_emulated_precision_is_against_the_fp32_peak(monkeypatch):
    """bf16 without bf16 instructions (AVX2 caps): its own matmul peak is an emulated, slow
    rate, and MFU against it read 188% / 766%. The denominator is the fp32 peak there."""
    import mlpmixer.bench.run as run_module
    from mlpmixer.bench.peak import MatmulPeak

    def fake_peak(device, dtype="fp32", sizes=None, min_time_s=1.0):
        tflops = {"fp32": 2.0, "bf16": 0.001}[dtype]
        return MatmulPeak(tflops, 128, dtype, str(device), {128: tflops})

    monkeypatch.setattr(run_module, "measure_matmul_peak", fake_peak)
    monkeypatch.setattr(run_module, "warn_if_emulated", lambda device, dtype: "emulated here")
    result = benchmark("mixer_t2_8", BenchOptions(batch_size=4, dtype="bf16", mode="infer", **FAST))
    assert result["matmul_peak"]["dtype"] == "fp32"
    assert result["matmul_peak_after"]["dtype"] == "fp32"
    row = result["results"][0]
    assert row["mfu"] == pytest.approx(row["tflops"] / 2.0)
    assert any("against the fp32 matmul peak" in note for note in result["notes"])

    monkeypatch.setattr(run_module, "warn_if_emulated", lambda device, dtype: None)  # native
    result = benchmark("mixer_t2_8", BenchOptions(batch_size=4, dtype="bf16", mode="infer", **FAST))
    assert result["matmul_peak"]["dtype"] == "bf16"
