"""The zoo's five families against logits computed by the OFFICIAL code, same weights.

Each tests/fixtures/zoo_official/<family>.safetensors holds a small official model's random
state dict (``state.*``, official key names), images (``input.i``) and the official model's
eval-mode logits on them (``logits.i``), with our config for that architecture in the
metadata; benchmarks/zoo_official_goldens.py made them by running the official repositories'
code (regenerate command there). Here the state dict is loaded into OUR model with
``strict=True`` and our logits must equal the official ones to float32 rounding.

`test_a_wrong_model_fails_the_golden` shows the check can fail: each family's model with one
deliberate bug (a shift the other way, the wrong axis, a phase sign) misses its golden.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mlpmixer.models import as_mlp, cyclemlp, hire_mlp, vip, wave_mlp
from mlpmixer.models.spec import config_family

GOLDENS = Path(__file__).parents[1] / "fixtures" / "zoo_official"
FAMILIES = ["asmlp", "wavemlp", "hiremlp", "vip", "cyclemlp"]
# float32: the official and our code sum in different orders; 4e-6 of the largest logit
# leaves room for that rounding (seen: at most ~7e-7) and none for a wrong formula.
RELATIVE_TOLERANCE = 4e-6


def read_golden(family: str) -> tuple[dict, dict[str, torch.Tensor], list, list]:
    """(our config dict, official state dict, images, official logits) of one golden."""
    with safe_open(str(GOLDENS / f"{family}.safetensors"), "pt") as handle:
        meta = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    count = int(meta["inputs"])
    images = [tensors[f"input.{i}"] for i in range(count)]
    logits = [tensors[f"logits.{i}"] for i in range(count)]
    return json.loads(meta["config"]), state, images, logits


def our_model(family: str) -> tuple[torch.nn.Module, list, list]:
    """Our model of the golden's config, the official state loaded strict; images, logits."""
    config_dict, state, images, logits = read_golden(family)
    spec = config_family(config_dict)
    assert spec.name == family
    config = spec.config_class.from_dict(config_dict)
    model = spec.model(config)
    model.load_state_dict(state, strict=True)  # every key and shape equal to the official
    assert sum(p.numel() for p in model.parameters()) == spec.params(config)
    return model.eval(), images, logits


def worst_relative_error(model: torch.nn.Module, images: list, logits: list) -> float:
    """max |ours - official| / max |official| over the golden's inputs."""
    worst = 0.0
    with torch.no_grad():
        for image, want in zip(images, logits, strict=True):
            got = model(image)
            assert got.shape == want.shape
            worst = max(worst, ((got - want).abs().max() / want.abs().max()).item())
    return worst


@pytest.mark.parametrize("family", FAMILIES)
def test_golden_is_small_and_complete(family: str) -> None:
    path = GOLDENS / f"{family}.safetensors"
    assert path.stat().st_size < 200 * 1024
    config_dict, state, images, logits = read_golden(family)
    assert config_dict["family"] == family and state and len(images) == len(logits) >= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_equal_the_official_code(family: str) -> None:
    model, images, logits = our_model(family)
    assert worst_relative_error(model, images, logits) <= RELATIVE_TOLERANCE


# One deliberate bug per family, put into our model by patching its module (or the model).


def _asmlp_bug(mp: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    """The axial shift the other way: flip, shift, flip back."""
    shift = as_mlp.axial_shift
    mp.setattr(as_mlp, "axial_shift", lambda x, s, d, *a: shift(x.flip(d), s, d, *a).flip(d))


def _wavemlp_bug(mp: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    """The phase's sign flipped (the imaginary parts negated)."""
    wave = wave_mlp.wave
    mp.setattr(wave_mlp, "wave", lambda amplitude, phase: wave(amplitude, -phase))


def _hiremlp_bug(mp: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    """The cross-region shift the other way."""
    forth, back = hire_mlp.rearranged, hire_mlp.restored
    mp.setattr(hire_mlp, "rearranged", lambda x, p, step, a: forth(x, p, -step, a))
    mp.setattr(hire_mlp, "restored", lambda y, p, step, a, n: back(y, p, -step, a, n))


def _vip_bug(mp: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    """The width branch permuted along the height."""
    mp.setattr(vip, "mix_along_width", vip.mix_along_height)


def _cyclemlp_bug(mp: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    """Every Cycle FC channel shifted the other way."""
    for module in model.modules():
        if isinstance(module, cyclemlp.CycleFC):
            module.shifts.neg_()


BUGS: dict[str, Callable] = {
    "asmlp": _asmlp_bug,
    "wavemlp": _wavemlp_bug,
    "hiremlp": _hiremlp_bug,
    "vip": _vip_bug,
    "cyclemlp": _cyclemlp_bug,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_wrong_model_fails_the_golden(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model, images, logits = our_model(family)
    BUGS[family](monkeypatch, model)
    assert worst_relative_error(model, images, logits) > 1000 * RELATIVE_TOLERANCE
