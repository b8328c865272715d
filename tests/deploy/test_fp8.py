"""fp8 on GPUs (`mlpmixer.deploy.fp8`, ``mlpmixer quantize --method fp8``; issue 29 item 4).

Off the GPU: where fp8 cannot run the command says why and what to use instead (exit 2) —
no CUDA (int8 or fp32), a GPU below compute capability 8.9 (bf16, the capability stubbed) —
and int8 asked for a GPU says fp8/bf16. The conversion itself is checked on the CPU too, by
letting torchao's fp8 tensors run there (its hardware check stubbed: torchao emulates the fp8
product on the CPU): the fp8 model equals, bit for bit, an independent per-row e4m3
reference written here. On a GPU (``pytest -m cuda``, run by ``make gpu-check``) the real
thing: the fp8 model against the reference and against bf16, and the command end to end.
"""

from __future__ import annotations

import functools
import importlib
import json
import types
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from deploy_testing import needs_torchao, tiny
from mixer_testing import randomised
from mlpmixer import save_model
from mlpmixer.choices import GPU_METHODS
from mlpmixer.cli import cli
from mlpmixer.deploy import fp8, methods
from mlpmixer.errors import ConfigError
from mlpmixer.models import MixerConfig, build_model

E4M3_MAX = torch.finfo(torch.float8_e4m3fn).max
FP8_GPU = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
needs_fp8_gpu = pytest.mark.skipif(
    not FP8_GPU, reason="needs a CUDA GPU of compute capability >= 8.9"
)


def _quantize(*args: str) -> object:
    return CliRunner().invoke(cli, ["quantize", *args])


def _gpu(monkeypatch, capability: tuple[int, int], name: str = "NVIDIA A100-SXM4-80GB") -> None:
    """Make torch report one CUDA GPU of ``capability``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


def _model(tokens_mlp_dim: int = 32, seed: int = 0) -> nn.Module:
    """A randomised 2-block Mixer on 3x32x32 images (64 tokens), 16 classes: every Linear
    fp8-sized unless ``tokens_mlp_dim`` is not a multiple of 16."""
    config = MixerConfig(
        img_size=(32, 32), patch_size=(4, 4), in_chans=3, num_classes=16, hidden_dim=64,
        num_blocks=2, tokens_mlp_dim=tokens_mlp_dim, channels_mlp_dim=128,
    )  # fmt: skip
    return randomised(build_model(config), seed)


def _e4m3_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` through e4m3 with one scale per row (last dim), as float32: the scale is the
    row's max |value| / 448 computed in ``t``'s dtype (what torchao does), then float32."""
    scale = (t.abs().amax(-1, keepdim=True) / E4M3_MAX).float()
    q = (t.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q.float() * scale


def _reference_linear(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    y = _e4m3_rows(x) @ _e4m3_rows(self.weight).t()
    return (y if self.bias is None else y + self.bias.float()).to(x.dtype)


def _reference(model: nn.Module, layers: tuple[str, ...], device: str) -> nn.Module:
    """The bf16 model with ``layers`` computing per-token, per-row e4m3 products (float32
    accumulation): fp8 written out by hand, independent of torchao."""
    ref = fp8.bf16_copy(model, device)
    for name in layers:
        linear = ref.get_submodule(name)
        linear.forward = types.MethodType(_reference_linear, linear)
    return ref


@pytest.fixture
def fp8_on_cpu(monkeypatch):
    """Let torchao's fp8 tensors run on the CPU (emulated) by stubbing the hardware checks."""
    quant_api = pytest.importorskip("torchao.quantization.quant_api")
    if not hasattr(quant_api, "_check_hardware_support"):
        pytest.skip("this torchao checks the hardware elsewhere")
    monkeypatch.setattr(quant_api, "_check_hardware_support", lambda granularity: None)
    monkeypatch.setattr(fp8, "fp8_refusal", lambda device="cuda": None)


# ----- the method table ---------------------------------------------------------------------
def test_fp8_is_the_gpu_entry_of_the_one_method_table():
    assert GPU_METHODS == ("fp8",) and methods.GPU_METHODS is GPU_METHODS
    assert "fp8" not in methods.METHODS  # not an int8 method: no int8 folder holds it
    with pytest.raises(ConfigError, match="unknown int8 method 'fp8'"):
        methods.check_method("fp8")
    option = next(p for p in cli.commands["quantize"].params if p.name == "method")
    assert list(option.type.choices) == [*methods.METHODS, *GPU_METHODS, "auto"]


# ----- where fp8 (or int8) cannot help --------------------------------------------------------
def test_without_cuda_fp8_is_refused_first_naming_int8_and_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = str(tmp_path / "no-such-checkpoint")  # the hardware is answered before any read
    for extra in ([], ["--device", "cuda"], ["--device", "cpu"]):
        result = _quantize("--checkpoint", missing, "--method", "fp8", *extra)
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line and "compute capability >= 8.9" in line
        assert "--method static" in line and "fp32" in line


def test_on_a_gpu_below_8_9_fp8_is_refused_naming_bf16(monkeypatch, tmp_path):
    _gpu(monkeypatch, (8, 0))
    result = _quantize("--checkpoint", str(tmp_path / "none"), "--method", "fp8")
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "NVIDIA A100-SXM4-80GB is 8.0" in line
    assert "use bf16" in line and "--precision bf16" in line


@pytest.mark.parametrize(("capability", "runs"), [((8, 6), False), ((8, 9), True), ((9, 0), True)])
def test_the_capability_rule(monkeypatch, capability, runs):
    _gpu(monkeypatch, capability, "GPU")
    assert (fp8.fp8_refusal("cuda") is None) is runs
    assert (fp8.fp8_refusal("cuda:0") is None) is runs
    assert "there is no cuda:1" in fp8.fp8_refusal("cuda:1")  # one GPU here
    with pytest.raises(ConfigError, match="unknown device 'banana'"):
        fp8.fp8_refusal("banana")


def test_fp8_writes_nothing_and_refuses_out(monkeypatch, tmp_path):
    _gpu(monkeypatch, (9, 0), "NVIDIA H100")
    out = tmp_path / "fp8"
    result = _quantize("--checkpoint", str(tmp_path / "none"), "--method", "fp8", "--out", str(out))
    assert result.exit_code == 2 and "drop --out" in result.output and not out.exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_int8_asked_for_a_gpu_is_refused_naming_fp8_and_bf16(tmp_path, device):
    out = tmp_path / "int8"
    for method in ("weight-only", "static", "auto"):
        result = _quantize(
            "--checkpoint", str(tmp_path / "none"), "--method", method, "--device", device,
            "--out", str(out),
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line and "int8 on a GPU is not served here" in line
        assert "--method fp8" in line and "bf16" in line and not out.exists()


def test_int8_still_needs_out(tmp_path):
    result = _quantize("--checkpoint", str(tmp_path / "none"), "--method", "dynamic")
    assert result.exit_code == 2 and "Missing option '--out'" in result.output


@pytest.mark.slow  # a weight-only quantization: seconds on a busy machine
@needs_torchao
def test_int8_on_a_machine_with_a_gpu_is_written_for_the_cpu_with_a_note(monkeypatch, tmp_path):
    from mlpmixer.deploy import choose

    save_model(tiny(), tmp_path / "model")
    monkeypatch.setattr(choose, "best_times", lambda models, images, **kw: dict.fromkeys(models, 1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    out = tmp_path / "int8"
    result = CliRunner().invoke(
        cli,
        ["quantize", "--checkpoint", str(tmp_path / "model"), "--method", "weight-only",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "note: the int8 model runs on the CPU" in result.stderr and "--method fp8" in result.stderr
    )
    assert (out / "quantized.json").is_file()


# ----- the conversion, checked on the CPU (torchao emulates fp8 there) -------------------------
@needs_torchao
def test_fp8_model_equals_a_per_row_e4m3_reference_bit_for_bit(fp8_on_cpu):
    model = _model()
    built = fp8.to_fp8(model, "cpu")
    names = [n for n, m in built.model.named_modules() if isinstance(m, nn.Linear)]
    assert built.fp8_layers == tuple(n for n in names if n != "head")  # 2 blocks x 4
    assert len(built.fp8_layers) == 8 and built.kept_bf16 == ("stem.proj", "head")
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = images.to(torch.bfloat16)
    with torch.no_grad():
        out = built.model(x).float()
        ref = _reference(model, built.fp8_layers, "cpu")(x).float()
        bf16 = fp8.bf16_copy(model, "cpu")(x).float()
    assert torch.equal(out, ref)
    assert not torch.equal(ref, bf16)  # the reference is not bf16: the test can tell them apart
    assert (ref - bf16).abs().max() < 0.05 * bf16.abs().max()  # and fp8 is close to bf16
    assert all(p.dtype != torch.float32 for p in built.model.parameters())  # bf16 or fp8


@needs_torchao
def test_linears_scaled_mm_cannot_take_stay_bf16_and_are_named(fp8_on_cpu):
    built = fp8.to_fp8(_model(tokens_mlp_dim=24), "cpu", keep=("stem.proj", "head"))
    odd = ("blocks.0.token_mixing.fc1", "blocks.0.token_mixing.fc2",
           "blocks.1.token_mixing.fc1", "blocks.1.token_mixing.fc2")  # fmt: skip
    assert built.kept_bf16 == ("stem.proj", "head", *odd)
    assert len(built.fp8_layers) == 4 and not set(odd) & set(built.fp8_layers)
    for name in odd:
        assert type(built.model.get_submodule(name).weight) is nn.Parameter
    assert built.unaligned == odd
    assert "4 Linears fp8" in built.describe()
    assert (
        "stem.proj, head, 4 Linears not 16-aligned (blocks.0.token_mixing.fc1, blocks.0.token_mixing.fc2, ...)"
        in built.describe()
    )


@pytest.mark.slow  # the command twice, with fp8 emulated on the CPU
@needs_torchao
def test_the_command_reports_fp8_against_bf16_and_refuses_it_where_slower(
    fp8_on_cpu, monkeypatch, tmp_path
):
    # measured for real (one timed call each), then the ratio is set: one call on a busy
    # machine may time either side slower, and the rule is what is tested here
    measure = functools.partial(fp8.measure, repeats=1, min_time_s=0.0)
    ratio = {"speedup": 0.5}
    monkeypatch.setattr(fp8, "measure", lambda *a, **kw: replace(measure(*a, **kw), **ratio))
    monkeypatch.setattr(importlib.import_module("mlpmixer.cli.quantize"), "FP8_BATCH", 16)
    save_model(_model(), tmp_path / "model")
    args = ["--checkpoint", str(tmp_path / "model"), "--method", "fp8", "--device", "cpu"]
    slower = _quantize(*args)
    assert slower.exit_code == 2, slower.output
    assert "fp8 would be slower than bf16 here: measured 0.50x bf16 at batch 16" in slower.output
    ratio["speedup"] = 1.5
    faster = _quantize(*args)
    assert faster.exit_code == 0 and "1.50x bf16 at batch 16" in faster.output, faster.output
    assert "8 Linears fp8" in faster.output and "nothing written" in faster.output
    ratio["speedup"] = 0.5
    forced = _quantize(*args, "--force", "--json")
    assert forced.exit_code == 0, forced.output
    report = json.loads(forced.output[forced.output.index("{") :])
    assert report["method"] == "fp8" and report["written"] is None and report["forced"] is True
    assert report["fp8_layers"] == 8 and report["kept_in_bf16"] == ["stem.proj", "head"]
    assert report["images"] == 16 and report["batch"] == 16  # FP8_BATCH random images
    assert report["top1_agreement"] >= 0.9 and report["max_abs_dlogit"] > 0


# ----- on a GPU with fp8 (make gpu-check) ------------------------------------------------------
@pytest.mark.cuda
@needs_fp8_gpu
@pytest.mark.parametrize("compiled", [False, True])
def test_gpu_fp8_follows_the_reference_and_agrees_with_bf16(compiled):
    torch.manual_seed(0)
    model = _model()
    built = fp8.to_fp8(model, "cuda")
    assert len(built.fp8_layers) == 8
    images = torch.randn(256, 3, 32, 32, device="cuda", dtype=torch.bfloat16)
    fp8_model = torch.compile(built.model) if compiled else built.model
    with torch.no_grad():
        out = fp8_model(images).float()
        ref = _reference(model, built.fp8_layers, "cuda")(images).float()
        bf16 = fp8.bf16_copy(model, "cuda")(images).float()
    # the GPU accumulates the fp8 products its own way (fast accumulation): close to the
    # hand-written reference, much closer than either is to bf16
    assert (out - ref).abs().mean() < 0.5 * (ref - bf16).abs().mean()
    assert (out.argmax(1) == bf16.argmax(1)).float().mean() >= 0.95
    assert (out - bf16).abs().max() < 0.05 * bf16.abs().max()


@pytest.mark.cuda
@needs_fp8_gpu
def test_gpu_the_command_checks_fp8_against_bf16(tmp_path):
    save_model(_model(), tmp_path / "model")
    result = _quantize("--checkpoint", str(tmp_path / "model"), "--method", "fp8", "--force",
                       "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["fp8_layers"] == 8 and report["top1_agreement"] >= 0.95
    assert report["fp8_ms"] > 0 and report["bf16_ms"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available() or FP8_GPU, reason="needs a CUDA GPU below capability 8.9"
)
def test_gpu_without_fp8_units_the_command_names_bf16():
    result = _quantize("--checkpoint", "unused", "--method", "fp8")
    assert result.exit_code == 2 and "use bf16" in result.output
