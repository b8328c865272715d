"""docs/architecture.md, "Adding a family", as a test: a toy family in this one file.

The family is its model class and one `FamilySpec`; nothing else in the project names it.
Its config is its own frozen dataclass with per-stage tuples, as the zoo families' are (not a
`MixerConfig`), and it takes any input size divisible by its total stride. With the spec
registered, the project's machinery runs it end to end: ``create_model``, parameters and
FLOPs from the spec, save and load through the project's format, the architecture read back
from a bare state dict, and a few training steps through ``mlpmixer.train.train``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import mlpmixer
from mlpmixer.cli import cli
from mlpmixer.errors import ConfigError
from mlpmixer.models.config import IMAGENET_MEAN, IMAGENET_STD, to_pair
from mlpmixer.models.io import ModelIO
from mlpmixer.models.spec import FamilySpec, Paper, register_family, unregister_family
from mlpmixer.models.state_shapes import shape_of

# ----- the family: config, model, cost, spec ------------------------------------------------


@dataclass(frozen=True)
class ToyConfig:
    """A two-level pyramid: a P×P patch stem to ``dims[0]``, then per stage a residual
    channel MLP, and a 2×2 stride-2 merge between stages."""

    family: str = "toymlp"
    img_size: tuple[int, int] = (8, 8)
    in_chans: int = 1
    num_classes: int = 10
    patch_size: int = 2
    dims: tuple[int, ...] = (8, 16)
    mlp_ratio: int = 2
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", to_pair(self.img_size, "img_size"))
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if len(self.mean) != self.in_chans and len(set(self.mean)) == 1:
            object.__setattr__(self, "mean", self.mean[:1] * self.in_chans)
        if len(self.std) != self.in_chans and len(set(self.std)) == 1:
            object.__setattr__(self, "std", self.std[:1] * self.in_chans)
        if not self.dims or min(self.dims) <= 0:
            raise ConfigError(f"dims must be positive widths, got {self.dims!r}")
        stride = self.patch_size * 2 ** (len(self.dims) - 1)
        if self.img_size[0] % stride or self.img_size[1] % stride:
            raise ConfigError(f"img_size {self.img_size} is not divisible by the stride {stride}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ToyConfig key(s) {unknown}")
        return cls(**data)


class ToyStage(nn.Module):
    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))


class ToyMlp(nn.Module, ModelIO):
    """(B, in_chans, H, W) -> logits; ``forward_features`` gives (B, H', W', C)."""

    family: ClassVar[str] = "toymlp"

    def __init__(self, config: ToyConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ToyConfig()
        p, dims = config.patch_size, config.dims
        self.stem = nn.Conv2d(config.in_chans, dims[0], p, stride=p)
        self.stages = nn.ModuleList(ToyStage(d, config.mlp_ratio) for d in dims)
        self.merges = nn.ModuleList(
            nn.Conv2d(a, b, 2, stride=2) for a, b in itertools.pairwise(dims)
        )
        self.head = nn.Linear(dims[-1], config.num_classes)
        # computed here, in no state dict (as CycleMLP's shifts): loading must still give it
        self.register_buffer("pixel_scale", torch.tensor(0.5), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.config.dims[-1], num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.config = dataclasses.replace(self.config, num_classes=num_classes)

    def num_params(self, include_head: bool = True) -> int:
        """What train/run.py reports (as `MlpFamilyModel.num_params`)."""
        return toy_params(self.config, include_head)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch; the toy's stages are too small to checkpoint."""

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images * self.pixel_scale)
        for i, stage in enumerate(self.stages):
            x = stage(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            if i < len(self.merges):
                x = self.merges[i](x)
        return x.permute(0, 2, 3, 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


def toy_params(config: ToyConfig, include_head: bool = True) -> int:
    p, dims, r = config.patch_size, config.dims, config.mlp_ratio
    stem = config.in_chans * p * p * dims[0] + dims[0]
    stages = sum(2 * d + (d * d * r + d * r) + (d * r * d + d) for d in dims)
    merges = sum(a * 4 * b + b for a, b in itertools.pairwise(dims))
    head = (dims[-1] + 1) * config.num_classes if include_head else 0
    return stem + stages + merges + head


def toy_macs(config: ToyConfig) -> int:
    p, dims, r = config.patch_size, config.dims, config.mlp_ratio
    h, w = config.img_size[0] // p, config.img_size[1] // p
    total = h * w * config.in_chans * p * p * dims[0]
    for i, d in enumerate(dims):
        total += h * w * 2 * d * d * r
        if i + 1 < len(dims):
            h, w = h // 2, w // 2
            total += h * w * d * 4 * dims[i + 1]
    return total + dims[-1] * config.num_classes


def toy_config_from_state(state: Any, img_size: Any, fields: dict[str, Any]) -> ToyConfig:
    dims, p = [], shape_of(state, "stem.weight", 4)
    while f"stages.{len(dims)}.fc1.weight" in state:
        dims.append(shape_of(state, f"stages.{len(dims)}.fc1.weight", 2)[1])
    ratio = shape_of(state, "stages.0.fc1.weight", 2)[0] // dims[0]
    size = img_size if img_size is not None else ToyConfig().img_size  # any size: the default
    return ToyConfig(
        img_size=size, in_chans=p[1], patch_size=p[2], dims=tuple(dims), mlp_ratio=ratio,
        num_classes=shape_of(state, "head.weight", 2)[0], **fields,
    )  # fmt: skip


SPEC = FamilySpec(
    name="toymlp",
    config_class=ToyConfig,
    model=ToyMlp,
    params=toy_params,
    macs=toy_macs,
    paper=Paper("ToyMLP", "0000.00000", "mit", "https://example.invalid/toymlp"),
    markers=("stages.0.fc1.weight", "stem.weight"),
    config_from_state=toy_config_from_state,
    any_size=True,
    variants={"toymlp_t": ToyConfig(), "toymlp_s": ToyConfig(dims=(16, 32))},
    description="a two-stage toy pyramid for the recipe test",
)

# ----- the test -------------------------------------------------------------------------------


@pytest.fixture
def toy_family():
    register_family(SPEC)
    yield SPEC
    unregister_family(SPEC.name)


def test_an_unknown_family_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown model family 'toymlp'; known: mixer, "):
        mlpmixer.models.family_spec("toymlp")
    assert "toymlp_t" not in mlpmixer.list_models("toymlp*")


def test_a_toy_family_runs_end_to_end(toy_family, tmp_path):
    assert mlpmixer.list_models("toymlp*") == ["toymlp_t", "toymlp_s"]
    listed = CliRunner().invoke(cli, ["models", "--pattern", "toymlp*", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["toymlp_s"]["params_m"] == round(toy_params(ToyConfig(dims=(16, 32))) / 1e6, 2)
    model = mlpmixer.create_model("toymlp_s", num_classes=3)
    assert isinstance(model, ToyMlp) and model.config.dims == (16, 32)
    # cost: the spec's formulas, equal to the built model's parameter count
    built = sum(t.numel() for t in model.parameters())
    assert mlpmixer.models.param_count(model.config) == built
    assert mlpmixer.models.flops_per_image(model.config) == 2 * toy_macs(model.config)
    images = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = model(images)

    # the project's format (config.json by the family's config class), and back
    saved = mlpmixer.save_model(model, tmp_path / "toy")
    assert '"family": "toymlp"' in (saved / "config.json").read_text()
    loaded = mlpmixer.load_model(saved)
    assert type(loaded) is ToyMlp and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(images), expected)

    # a bare state dict: the architecture read off its keys and shapes
    torch.save(model.state_dict(), tmp_path / "toy.pt")
    with pytest.warns(UserWarning, match="holds weights only"):
        inferred = mlpmixer.load_model(tmp_path / "toy.pt", img_size=8)
    assert inferred.config.dims == (16, 32) and inferred.config.num_classes == 3
    with torch.no_grad():
        assert torch.equal(inferred(images), expected)


@pytest.mark.slow
def test_a_toy_family_trains_through_the_python_api(toy_family, tmp_path):
    result = mlpmixer.train.train(
        dataset="digits",
        model="toymlp_t",
        overrides=[
            f"run.out={tmp_path / 'run'}", "train.steps=3", "train.batch_size=16",
        ],
        progress=False,
    )  # fmt: skip
    assert isinstance(result.model, ToyMlp)
    losses = [v for k, v in result.summary.items() if re.fullmatch(r".*loss.*", k)]
    assert losses and all(math.isfinite(v) for v in losses)
