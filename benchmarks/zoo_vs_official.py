"""The zoo's five families (AS-MLP, Wave-MLP, Hire-MLP, ViP, CycleMLP) against the official
code, same weights.

For each family: the official model and ours built with the same (small, and some full-size)
configs; random weights (BatchNorm statistics included) drawn for the official model, loaded
into ours with ``strict=True`` under the official key names; the eval-mode logits of both on
the same images compared. Then, for every registered variant, the official model's state-dict
keys and shapes against ours, and its parameter count. Writes
``results/zoo-vs-official.json`` and prints one line per comparison.

Set-up (the four repositories are MIT; nothing of them is copied into this project)::

    git clone https://github.com/svip-lab/AS-MLP /tmp/AS-MLP
    git clone https://github.com/ggjy/Hire-Wave-MLP.pytorch /tmp/Hire-Wave-MLP
    git clone https://github.com/houqb/VisionPermutator /tmp/VisionPermutator
    git clone https://github.com/ShoufaChen/CycleMLP /tmp/CycleMLP
    python benchmarks/zoo_vs_official.py /tmp/AS-MLP /tmp/Hire-Wave-MLP /tmp/VisionPermutator /tmp/CycleMLP

(The numbers in results/ came from the commits AS-MLP dd1eb4f, Hire-Wave-MLP 7ef7ddd,
VisionPermutator 2cab2ce, CycleMLP 4e062a0.)

Stubs: the official files import a few names from timm 0.3 (``DropPath``, ``to_2tuple``,
``trunc_normal_``, ``register_model``, ImageNet statistics) and AS-MLP's shift module imports
cupy. This script registers minimal stand-ins for those imports (DropPath as the identity: the
comparison is in eval mode) and runs AS-MLP's shift through the official file's own torch
fallback ``torch_shift`` (its CUDA kernel needs a GPU and cupy; the tests hold our shift to
the kernel's definition with explicit loops).

CycleMLP's ``CycleFC`` calls ``torchvision.ops.deform_conv2d``; torchvision is no dependency
of this project, so `deform_conv2d` below is a plain-torch implementation of that operator's
documented semantics (torchvision's docs and its CPU kernel's bilinear rule: sample the input
at (y, x) = base position + kernel tap + learned offset, bilinearly, each of the four corners
that lies outside the map counting 0, and 0 altogether when y <= -1, y >= H, x <= -1 or
x >= W; then the convolution's weighted sum), written here independently of our model's
shift code, and checked (`deform_conv_checks`) against ``F.conv2d`` at zero offsets and
``F.grid_sample`` at fractional ones.
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
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from mlpmixer.fileio import atomic_write_text
from mlpmixer.models import as_mlp, cyclemlp, hire_mlp, vip, wave_mlp

RESULTS = Path(__file__).parent / "results" / "zoo-vs-official.json"


def _bilinear(image: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """image (B, G, Cg, H, W) sampled at y, x (B, G, K, P): (B, G, Cg, K, P).

    torchvision's rule: four corners weighted (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly·lx, a
    corner outside the map counting 0; the whole sample 0 when y <= -1, y >= H, x <= -1 or
    x >= W.
    """
    b, g, cg, h, w = image.shape
    flat = image.reshape(b, g, cg, h * w)
    y0, x0 = y.floor(), x.floor()
    ly, lx = y - y0, x - x0
    inside = (y > -1) & (y < h) & (x > -1) & (x < w)
    total = torch.zeros(b, g, cg, *y.shape[2:], dtype=image.dtype)
    for dy, dx, weight in [(0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx),
                           (1, 0, ly * (1 - lx)), (1, 1, ly * lx)]:  # fmt: skip
        yy, xx = (y0 + dy).long(), (x0 + dx).long()
        valid = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(b, g, 1, -1)
        values = torch.gather(flat, 3, index.expand(b, g, cg, index.shape[-1]))
        values = values.reshape(b, g, cg, *y.shape[2:])
        total = total + (weight * valid)[:, :, None] * values
    return total


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """torchvision.ops.deform_conv2d's semantics in plain torch (a reference, not fast).

    input (B, Cin, H, W); offset (B, 2·G·kh·kw, H', W'), channel 2(g·kh·kw + k) the dy and
    2(g·kh·kw + k) + 1 the dx of offset group g at kernel tap k = i·kw + j; weight (Cout,
    Cin/groups, kh, kw); mask (B, G·kh·kw, H', W') or None. Output (B, Cout, H', W').
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    b, cin, h, w = input.shape
    cout, cin_group, kh, kw = weight.shape
    taps, groups = kh * kw, cin // cin_group
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    offset_groups = offset.shape[1] // (2 * taps)
    offset = offset.reshape(b, offset_groups, taps, 2, oh, ow)
    i, j = torch.arange(kh).repeat_interleave(kw), torch.arange(kw).repeat(kh)  # tap k -> (i, j)
    base_y = (torch.arange(oh) * sh - ph)[None, :, None] + (i * dh)[:, None, None]  # (K, H', 1)
    base_x = (torch.arange(ow) * sw - pw)[None, None, :] + (j * dw)[:, None, None]  # (K, 1, W')
    y = (base_y + offset[:, :, :, 0]).to(input.dtype).flatten(3)  # (B, G, K, H'·W')
    x = (base_x + offset[:, :, :, 1]).to(input.dtype).flatten(3)
    grouped = input.reshape(b, offset_groups, cin // offset_groups, h, w)
    columns = _bilinear(grouped, y, x)  # (B, G, Cin/G, K, H'·W')
    if mask is not None:
        columns = columns * mask.reshape(b, offset_groups, 1, taps, oh * ow)
    columns = columns.reshape(b, groups, cin_group * taps, oh * ow)
    kernel = weight.reshape(groups, cout // groups, cin_group * taps)
    out = torch.einsum("gok,bgkp->bgop", kernel, columns).reshape(b, cout, oh, ow)
    return out if bias is None else out + bias[None, :, None, None]


def deform_conv_checks() -> list[dict]:
    """`deform_conv2d` against two independent torch operators."""
    g = torch.Generator().manual_seed(5)
    image = torch.randn(2, 6, 9, 11, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    zero = torch.zeros(2, 2 * 9, 5, 6, dtype=torch.float64)
    got = deform_conv2d(image, zero, weight, bias, stride=2, padding=1)
    want = F.conv2d(image, weight, bias, stride=2, padding=1, groups=2)
    rows = [{"check": "zero offsets == conv2d (3x3, stride 2, pad 1, groups 2)",
             "max_abs_diff": (got - want).abs().max().item()}]  # fmt: skip
    # 1x1 kernel, one offset group per channel, fractional offsets reaching off the map:
    # grid_sample (bilinear, zeros, align_corners) samples the same points by its own code.
    offset = 4 * torch.randn(2, 2 * 6, 9, 11, generator=g, dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.float64)[:, :, None, None]
    got = deform_conv2d(image, offset, eye)
    rows_y = torch.arange(9, dtype=torch.float64)[:, None] + offset[:, 0::2]
    cols_x = torch.arange(11, dtype=torch.float64)[None, :] + offset[:, 1::2]
    grid = torch.stack([2 * cols_x / 10 - 1, 2 * rows_y / 8 - 1], -1)  # (B, C, H, W, 2)
    want = torch.stack([F.grid_sample(image[:, c : c + 1], grid[:, c], align_corners=True)[:, 0]
                        for c in range(6)], 1)  # fmt: skip
    rows.append({"check": "fractional offsets == grid_sample (bilinear, zeros)",
                 "max_abs_diff": (got - want).abs().max().item()})  # fmt: skip
    for row in rows:
        print(f"deform_conv2d reference: {row['check']}: max |diff| = {row['max_abs_diff']:.1e}")
    return rows


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
    ops = types.ModuleType("torchvision.ops.deform_conv")
    ops.deform_conv2d = deform_conv2d
    cupy = types.ModuleType("cupy")
    cupy._util = types.SimpleNamespace(memoize=lambda **_kw: lambda f: f)
    for name, module in {
        "timm": types.ModuleType("timm"),
        "timm.models": types.ModuleType("timm.models"),
        "timm.models.layers": layers,
        "timm.models.layers.helpers": helpers,
        "timm.models.registry": registry,
        "timm.data": data,
        "torchvision": types.ModuleType("torchvision"),
        "torchvision.ops": types.ModuleType("torchvision.ops"),
        "torchvision.ops.deform_conv": ops,
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


def load_vip_cycle(vip_dir: Path, cycle_dir: Path):
    """(ViP module, CycleMLP module) from the checkouts (mmseg/mmdet absent: the official file
    prints a note and registers no dense-prediction backbones)."""
    return load(vip_dir / "models" / "vip.py", "vip_official"), load(
        cycle_dir / "cycle_mlp.py", "cyclemlp_official"
    )


def randomize(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights scaled by 1/sqrt(fan-in), norm scales near 1, BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith(".offset"):  # CycleFC's fixed offsets: a constant, not a weight
            state[key] = value.clone()
        elif key.endswith("num_batches_tracked"):
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
    row["relative"] = row["max_abs_diff"] / row["max_abs_logit"]
    print(f"{name:34s} {size} {row['dtype']}: max |official - ours| = "
          f"{row['max_abs_diff']:.2e} (largest logit {row['max_abs_logit']:.1f}, "
          f"relative {row['relative']:.1e})")  # fmt: skip
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


# fmt: off
VIP_SMALL = [
    # (patch, img, layers, dims, transitions, segments, mlp ratios, qkv_bias, skip_lam)
    (4, 32, (1, 2, 1, 1), (16, 24, 24, 32), (True, False, False), (8, 4, 4, 4), (3, 2, 3, 4),
     False, 1.0),
    (7, 28, (2, 1), (8, 16), (False,), (4, 4), (3, 3), True, 2.0),
    (14, 56, (1, 1, 1), (12, 12, 24), (False, True), (4, 4, 2), (2, 3, 4), False, 1.0),
]
# fmt: on


def vip_pair(official_vip, row, num_classes: int = 5):
    """(official model, our model) for one `VIP_SMALL` row."""
    patch, img, layers, dims, transitions, segments, ratios, bias, lam = row
    official = official_vip.VisionPermutator(
        list(layers), img_size=img, patch_size=patch, num_classes=num_classes,
        embed_dims=list(dims), transitions=[*transitions, False], segment_dim=list(segments),
        mlp_ratios=list(ratios), qkv_bias=bias, skip_lam=lam,
    )  # fmt: skip
    config = vip.VipConfig(
        img_size=(img, img), patch_size=patch, depths=layers, embed_dims=dims,
        transitions=transitions, segment_dims=segments, mlp_ratios=ratios, qkv_bias=bias,
        skip_lam=lam, num_classes=num_classes,
    )  # fmt: skip
    return official, vip.VisionPermutator(config)


CYCLE_SMALL = [
    # (layers, dims, mlp ratios, qkv_bias, skip_lam)
    ((1, 2, 1, 1), (8, 12, 16, 20), (4, 3, 2, 4), False, 1.0),
    ((2, 1, 1, 2), (6, 10, 14, 18), (2, 4, 4, 3), True, 2.0),
]


def cycle_pair(official_cycle, row, size, num_classes: int = 5):
    """(official model, our model) for one `CYCLE_SMALL` row at image size ``size``."""
    layers, dims, ratios, bias, lam = row
    official = official_cycle.CycleNet(
        list(layers), embed_dims=list(dims), transitions=[True] * 4, mlp_ratios=list(ratios),
        qkv_bias=bias, skip_lam=lam, num_classes=num_classes,
    )  # fmt: skip
    config = cyclemlp.CycleMlpConfig(
        img_size=size, depths=layers, embed_dims=dims, mlp_ratios=ratios, qkv_bias=bias,
        skip_lam=lam, num_classes=num_classes,
    )  # fmt: skip
    return official, cyclemlp.CycleNet(config)


def vip_cycle_outputs(official_vip, official_cycle) -> list[dict]:
    rows = []
    for row in VIP_SMALL:
        official, ours = vip_pair(official_vip, row)
        rows.append(compare(f"vip small patch {row[0]} {len(row[2])} stages", official, ours,
                            (row[1], row[1])))  # fmt: skip
    for name in ("vip_s14", "vip_s7", "vip_m7", "vip_l7"):
        build = getattr(official_vip, name)
        ours = vip.VisionPermutator(vip.VARIANTS[name].replace(num_classes=10))
        rows.append(compare(f"{name}, 10 classes", build(num_classes=10), ours, (224, 224)))
    for row in CYCLE_SMALL:
        for size in [(37, 61), (64, 64), (5, 9), (224, 224)]:
            official, ours = cycle_pair(official_cycle, row, size)
            rows.append(compare(f"cyclemlp small C={row[1][0]}", official, ours, size))
    for name, sizes in [("cyclemlp_b1", [(224, 224), (256, 192)]), ("cyclemlp_b2", [(224, 224)]),
                        ("cyclemlp_b5", [(224, 224)])]:  # fmt: skip
        build = getattr(official_cycle, "CycleMLP_" + name[-2:].upper())
        for size in sizes:
            config = cyclemlp.VARIANTS[name].replace(num_classes=10, img_size=size)
            rows.append(compare(f"{name}, 10 classes", build(num_classes=10),
                                cyclemlp.CycleNet(config), size))  # fmt: skip
    return rows


def vip_cycle_keys(official_vip, official_cycle) -> list[dict]:
    rows = []
    for name, config in vip.VARIANTS.items():
        official = getattr(official_vip, name)()
        ours = on_meta(vip.VisionPermutator, config)
        rows.append(same_keys(name, official, ours, vip.param_count(config)))
    for name, config in cyclemlp.VARIANTS.items():
        official = getattr(official_cycle, "CycleMLP_" + name[-2:].upper())()
        ours = on_meta(cyclemlp.CycleNet, config)
        rows.append(same_keys(name, official, ours, cyclemlp.param_count(config)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("asmlp", type=Path, help="a checkout of svip-lab/AS-MLP")
    parser.add_argument("hirewave", type=Path, help="a checkout of ggjy/Hire-Wave-MLP.pytorch")
    parser.add_argument("vip", type=Path, help="a checkout of houqb/VisionPermutator")
    parser.add_argument("cyclemlp", type=Path, help="a checkout of ShoufaChen/CycleMLP")
    args = parser.parse_args()
    torch.set_num_threads(1)
    install_stubs()
    deform = deform_conv_checks()
    classes = load_official(args.asmlp, args.hirewave)
    more = load_vip_cycle(args.vip, args.cyclemlp)
    result = {
        "deform_conv2d_reference": deform,
        "outputs": output_checks(*classes) + vip_cycle_outputs(*more),
        "variants": key_checks(*classes) + vip_cycle_keys(*more),
    }
    atomic_write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
