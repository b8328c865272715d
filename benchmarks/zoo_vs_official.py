"""The zoo's AS-MLP, Wave-MLP and Hire-MLP against the official code, same weights.

For each family: the official model and ours built with the same (small, and some full-size)
configs; random weights (BatchNorm statistics included) drawn for the official model, loaded
into ours with ``strict=True`` under the official key names; the eval-mode logits of both on
the same images compared. Then, for every registered variant, the official model's state-dict
keys and shapes against ours, and its parameter count. Writes
``results/zoo-vs-official.json`` and prints one line per comparison.

Set-up (both repositories are MIT; nothing of them is copied into this project)::

    git clone https://github.com/svip-lab/AS-MLP /tmp/AS-MLP
    git clone https://github.com/ggjy/Hire-Wave-MLP.pytorch /tmp/Hire-Wave-MLP
    python benchmarks/zoo_vs_official.py /tmp/AS-MLP /tmp/Hire-Wave-MLP

Stubs: the official files import a few names from timm 0.3 (``DropPath``, ``to_2tuple``,
``trunc_normal_``, ``register_model``, ImageNet statistics) and AS-MLP's shift module imports
cupy. This script registers minimal stand-ins for those imports (DropPath as the identity: the
comparison is in eval mode) and runs AS-MLP's shift through the official file's own torch
fallback ``torch_shift`` (its CUDA kernel needs a GPU and cupy; the tests hold our shift to
the kernel's definition with explicit loops).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import types
from pathlib import Path

import torch
from torch import nn

from mlpmixer.fileio import atomic_write_text
from mlpmixer.models import as_mlp, hire_mlp, wave_mlp

RESULTS = Path(__file__).parent / "results" / "zoo-vs-official.json"


def install_stubs() -> None:
    """Stand-ins for the timm 0.3 names and the cupy module the official files import."""

    class Identity(nn.Module):
        def __init__(self, *_args, **_kwargs) -> None:
            super().__init__()

        def forward(self, x):
            return x

    def to_2tuple(x):
        return tuple(x) if isinstance(x, tuple | list) else (x, x)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = Identity
    layers.to_2tuple = to_2tuple
    layers.trunc_normal_ = lambda t, std=1.0: nn.init.trunc_normal_(t, std=std)
    helpers = types.ModuleType("timm.models.layers.helpers")
    helpers.to_2tuple = to_2tuple
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda f: f
    data = types.ModuleType("timm.data")
    data.IMAGENET_DEFAULT_MEAN, data.IMAGENET_DEFAULT_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # fmt: skip
    cupy = types.ModuleType("cupy")
    cupy._util = types.SimpleNamespace(memoize=lambda **_kw: lambda f: f)
    for name, module in {
        "timm": types.ModuleType("timm"),
        "timm.models": types.ModuleType("timm.models"),
        "timm.models.layers": layers,
        "timm.models.layers.helpers": helpers,
        "timm.models.registry": registry,
        "timm.data": data,
        "cupy": cupy,
    }.items():
        sys.modules[name] = module


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_official(asmlp_dir: Path, hirewave_dir: Path):
    """(AS_MLP class, wave module, hire module) from the checkouts."""
    package = types.ModuleType("asmlp_official")
    package.__path__ = [str(asmlp_dir / "models")]
    sys.modules["asmlp_official"] = package
    shift = load(asmlp_dir / "models" / "shift_cuda.py", "asmlp_official.shift_cuda")
    shift.Shift.forward = lambda self, x: (
        x if self.kernel_size == 1 else shift.torch_shift(x, self.kernel_size, self.dim)
    )
    asmlp = load(asmlp_dir / "models" / "as_mlp.py", "asmlp_official.as_mlp")
    wave = load(hirewave_dir / "mlp_based" / "wave_mlp.py", "wave_official")
    hire = load(hirewave_dir / "mlp_based" / "hire_mlp.py", "hire_official")
    return asmlp.AS_MLP, wave, hire


def randomize(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights scaled by 1/sqrt(fan-in), norm scales near 1, BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g, dtype=value.dtype) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.randn(shape, generator=g, dtype=value.dtype) * 0.1
        elif value.ndim == 1:
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g, dtype=value.dtype)
        else:
            scale = 1 / math.sqrt(math.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=g, dtype=value.dtype) * scale
    model.load_state_dict(state)
    return state


def compare(name: str, official: nn.Module, ours: nn.Module, size: tuple[int, int]) -> dict:
    state = randomize(official)
    ours.load_state_dict(state, strict=True)
    official.eval()
    ours.eval()
    dtype = next(official.parameters()).dtype
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3), dtype=dtype)
    with torch.no_grad():
        a, b = official(images), ours.to(dtype)(images)
    row = {
        "what": name,
        "size": list(size),
        "dtype": str(dtype).removeprefix("torch."),
        "max_abs_diff": (a - b).abs().max().item(),
        "max_abs_logit": a.abs().max().item(),
    }
    print(f"{name:34s} {size} {row['dtype']}: max |official - ours| = "
          f"{row['max_abs_diff']:.2e} (largest logit {row['max_abs_logit']:.1f})")  # fmt: skip
    return row


def on_meta(cls, config):
    with torch.device("meta"):
        return cls(config)


def same_keys(name: str, official: nn.Module, ours: nn.Module, params: int) -> dict:
    theirs = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    count = sum(p.numel() for p in official.parameters())
    row = {"variant": name, "keys_and_shapes_equal": theirs == mine, "keys": len(theirs),
           "official_params": count, "our_param_count": params}  # fmt: skip
    print(f"{name:16s} keys and shapes equal: {theirs == mine} ({len(theirs)} keys); "
          f"params official {count} ours {params}")  # fmt: skip
    return row


def output_checks(AS_MLP, wave, hire) -> list[dict]:
    rows = []
    for embed, depths, shift, size in [(8, (1, 2, 1, 1), 5, (32, 64)), (12, (1, 1, 1, 1), 3, (64, 64))]:  # fmt: skip
        official = AS_MLP(img_size=size, embed_dim=embed, depths=list(depths), shift_size=shift)
        config = as_mlp.AsMlpConfig(img_size=size, embed_dim=embed, depths=depths, shift_size=shift)
        rows.append(compare(f"asmlp C={embed} shift {shift}", official, as_mlp.AsMlp(config), size))
    for norm, stem_norm, mode in [("batch", True, "fc"), ("group", False, "fc"),
                                  ("batch", True, "depthwise"), ("group", True, "depthwise")]:  # fmt: skip
        extra = {"norm_layer": wave.MyNorm} if norm == "group" else {}
        official = wave.WaveNet([1, 2, 1, 1], embed_dims=[8, 12, 16, 20], transitions=[True] * 4,
                                mlp_ratios=[4, 3, 2, 4], mode=mode, ds_use_norm=stem_norm,
                                num_classes=5, **extra)  # fmt: skip
        config = wave_mlp.WaveMlpConfig(embed_dims=(8, 12, 16, 20), depths=(1, 2, 1, 1),
                                        mlp_ratios=(4, 3, 2, 4), norm=norm, stem_norm=stem_norm,
                                        theta_conv=mode, num_classes=5)  # fmt: skip
        for size in [(40, 56), (37, 61)]:
            rows.append(compare(f"wavemlp {norm}/{stem_norm}/{mode}", official,
                                wave_mlp.WaveMlp(config), size))  # fmt: skip
    official = hire.HireMLPNet([3, 2, 1, 2], embed_dims=[8, 12, 16, 20], mlp_ratios=[4] * 4,
                               pixel=[3, 2, 4, 2], step_stride=[2, 2, 1, 2],
                               step_dilation=[2, 5, 1, 1], num_classes=5)  # fmt: skip
    config = hire_mlp.HireMlpConfig(embed_dims=(8, 12, 16, 20), depths=(3, 2, 1, 2),
                                    region_size=(3, 2, 4, 2), step_stride=(2, 2, 1, 2),
                                    step_dilation=(2, 5, 1, 1), num_classes=5)  # fmt: skip
    for size in [(43, 61), (64, 64), (224, 224)]:
        rows.append(compare("hiremlp small config", official, hire_mlp.HireMlp(config), size))
    rows.append(compare("hiremlp_tiny, 10 classes", hire.hire_mlp_tiny(num_classes=10),
                        hire_mlp.HireMlp(hire_mlp.VARIANTS["hiremlp_tiny"].replace(num_classes=10)),
                        (224, 224)))  # fmt: skip
    ten = wave_mlp.VARIANTS["wavemlp_t"].replace(num_classes=10)
    rows.append(compare("wavemlp_t, 10 classes", wave.WaveMLP_T(num_classes=10),
                        wave_mlp.WaveMlp(ten), (224, 224)))  # fmt: skip
    # Random BatchNorm statistics let Wave-MLP-T's activations (and so its phases) grow large:
    # in float32 the two sides' rounding then differs visibly; float64 shows it is rounding.
    torch.set_default_dtype(torch.float64)
    rows.append(compare("wavemlp_t, 10 classes", wave.WaveMLP_T(num_classes=10),
                        wave_mlp.WaveMlp(ten), (224, 224)))  # fmt: skip
    torch.set_default_dtype(torch.float32)
    return rows


def key_checks(AS_MLP, wave, hire) -> list[dict]:
    rows = []
    for name, config in as_mlp.VARIANTS.items():
        official = AS_MLP(embed_dim=config.embed_dim, depths=list(config.depths), shift_size=5)
        row = same_keys(name, official, on_meta(as_mlp.AsMlp, config), as_mlp.param_count(config))
        # the counter the paper's FLOPs come from (tests/models/test_as_mlp.py writes it out)
        row["official_flops_counter"] = int(official.flops())
        row["our_macs"] = as_mlp.macs_per_image(config)
        print(f"{name:16s} official flops() {row['official_flops_counter']}, "
              f"our multiply-adds {row['our_macs']}")  # fmt: skip
        rows.append(row)
    builders = {"wavemlp_t_dw": wave.WaveMLP_T_dw, "wavemlp_t": wave.WaveMLP_T,
                "wavemlp_s": wave.WaveMLP_S, "wavemlp_m": wave.WaveMLP_M,
                "wavemlp_b": wave.WaveMLP_B}  # fmt: skip
    for name, build in builders.items():
        config = wave_mlp.VARIANTS[name]
        rows.append(same_keys(name, build(), on_meta(wave_mlp.WaveMlp, config),
                              wave_mlp.param_count(config)))  # fmt: skip
    builders = {"hiremlp_tiny": hire.hire_mlp_tiny, "hiremlp_small": hire.hire_mlp_small,
                "hiremlp_base": hire.hire_mlp_base, "hiremlp_large": hire.hire_mlp_large}  # fmt: skip
    for name, build in builders.items():
        config = hire_mlp.VARIANTS[name]
        rows.append(same_keys(name, build(), on_meta(hire_mlp.HireMlp, config),
                              hire_mlp.param_count(config)))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("asmlp", type=Path, help="a checkout of svip-lab/AS-MLP")
    parser.add_argument("hirewave", type=Path, help="a checkout of ggjy/Hire-Wave-MLP.pytorch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    install_stubs()
    classes = load_official(args.asmlp, args.hirewave)
    result = {"outputs": output_checks(*classes), "variants": key_checks(*classes)}
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
