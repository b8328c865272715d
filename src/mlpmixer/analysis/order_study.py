"""The order-invariance experiment: a model of any family and a CNN on original and permuted
pixels.

`order_invariance_study` trains each model on the three `VARIANTS` of the same data (same
seed, same batch order, same permutation for train and test images) and reports test top-1.
Where the family has a fold (`foldable`: Mixer, gMixer) it also runs the exact check: a Mixer initialised with the seed, and its folded copy
(`fold_permutation`), trained on original and patch+pixel-permuted images in float64 end
up as the same network, permuted — compared weight by weight and logit by logit.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..models.config import MixerConfig
from ..models.family import build_model
from ..progress import Ticker
from .baseline_cnn import SmallCnn
from .fit import accuracy, fit, predict_logits, steps_per_epoch
from .permutation import VARIANTS, Permutations, fold_permutation, foldable, study_patch

log = logging.getLogger(__name__)  # progress: one line per training (the CLI shows it)


@dataclass
class ExactCheck:
    """Folded Mixer trained on permuted data vs the plain one, folded after training."""

    epochs: int
    dtype: str
    max_abs_weight_diff: float
    max_abs_logit_diff: float
    same_predictions: bool


@dataclass
class StudyResult:
    accuracy: dict[str, dict[str, float]]  # model -> variant -> test top-1
    exact: ExactCheck | None
    num_train: int
    num_test: int
    settings: dict[str, Any] = field(default_factory=dict)
    complete: bool = True  # False: stopped early (Ctrl-C); ``accuracy`` has what finished

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study; ``partial`` holds the trainings that finished."""

    def __init__(self, partial: StudyResult) -> None:
        super().__init__("interrupted")
        self.partial = partial


def _new_model(config: Any, seed: int, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A fresh model of ``config.family``, initialised from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(config).to(dtype)


def _new_cnn(config: Any, width: int, seed: int) -> SmallCnn:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SmallCnn(config.in_chans, config.num_classes, width)


def exact_check(
    config: MixerConfig,
    perms: Permutations,
    train: tuple[torch.Tensor, torch.Tensor],
    test_images: torch.Tensor,
    epochs: int = 1,
    seed: int = 0,
    on_step: Any = None,
    **fit_options: Any,
) -> ExactCheck:
    """Train a Mixer on original images and its folded copy on patch+pixel images, in float64.

    The network trained on permuted images is compared with the plain one folded after
    training: weights and test logits (on correspondingly permuted images) must agree to
    float64 rounding.
    """
    images, labels = train[0].double(), train[1]
    plain = _new_model(config, seed, torch.float64).to(images.device)
    permuted = fold_permutation(plain, perms)
    fit(plain, images, labels, epochs, seed=seed, on_step=on_step, **fit_options)
    fit(permuted, perms.apply(images, "patch+pixel"), labels, epochs, seed=seed,
        on_step=on_step, **fit_options)  # fmt: skip
    expected = fold_permutation(plain, perms)
    weight_diff = max(
        (a - b).abs().max().item()
        for a, b in zip(expected.state_dict().values(), permuted.state_dict().values(), strict=True)
    )
    test = test_images.double()
    logits_plain = predict_logits(plain, test)
    logits_permuted = predict_logits(permuted, perms.apply(test, "patch+pixel"))
    return ExactCheck(
        epochs=epochs,
        dtype="float64",
        max_abs_weight_diff=weight_diff,
        max_abs_logit_diff=(logits_plain - logits_permuted).abs().max().item(),
        same_predictions=bool((logits_plain.argmax(1) == logits_permuted.argmax(1)).all()),
    )


def order_invariance_study(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    config: Any,
    epochs: int = 30,
    cnn_width: int = 32,
    seed: int = 0,
    exact_epochs: int = 1,
    models: tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
    **fit_options: Any,
) -> StudyResult:
    """Test top-1 of each model in ``models`` trained on each variant of the data.

    ``train`` and ``test`` are (images (N, C, H, W) normalised, labels (N,)) at the
    config's resolution; ``fit_options`` go to `fit` (batch_size, lr, weight_decay).
    ``models``: among (the config's family, "cnn"), default both; results are keyed by
    these names. ``exact_epochs=0`` skips the exact check, as does a family without a fold
    (`foldable`; ``settings["exact"]`` says why). Models and images live on ``device``.
    """
    (train_x, train_y), (test_x, test_y) = ((t.to(device) for t in pair) for pair in (train, test))
    if tuple(train_x.shape[1:]) != (config.in_chans, *config.img_size):
        raise ConfigError(
            f"images of shape {tuple(train_x.shape[1:])} do not fit the model config "
            f"({config.in_chans}, {config.img_size[0]}, {config.img_size[1]})"
        )
    family = config.family
    models = (family, "cnn") if models is None else tuple(models)
    unknown = set(models) - {family, "cnn"}
    if unknown:
        raise ConfigError(f"models must be among ({family!r}, 'cnn'), got {sorted(unknown)}")
    perms = Permutations.random(config.img_size, study_patch(config), seed)
    results: dict[str, dict[str, float]] = {name: {} for name in models}
    settings = {"epochs": epochs, "seed": seed, "cnn_width": cnn_width, **fit_options}
    settings["device"] = str(device)
    if exact_epochs > 0 and not foldable(_new_model(config, seed)):
        settings["exact"] = (f"not run: no fold of the permutation into {family!r} weights "
                             f"is written (Mixer and gMixer have one)")  # fmt: skip
        exact_epochs = 0
    partial = StudyResult(results, None, len(train_x), len(test_x), settings, complete=False)
    steps = steps_per_epoch(len(train_x), fit_options.get("batch_size", 64))
    total = steps * (epochs * len(models) * len(VARIANTS) + 2 * exact_epochs)
    with Ticker(log, "permutation study", total) as ticker:
        try:
            for name in models:
                for variant in VARIANTS:
                    ticker.advance(0, f"training {name} on {variant} images", force=True)
                    model = (
                        _new_model(config, seed)
                        if name == family
                        else _new_cnn(config, cnn_width, seed)
                    ).to(device)
                    on_step = _stepper(ticker, f"{name} on {variant}", epochs)
                    fit(model, perms.apply(train_x, variant), train_y, epochs, seed=seed,
                        on_step=on_step, **fit_options)  # fmt: skip
                    results[name][variant] = accuracy(model, perms.apply(test_x, variant), test_y)
            if exact_epochs > 0:
                ticker.advance(0, f"exact check: {exact_epochs} epoch(s) in float64", force=True)
                on_step = _stepper(ticker, "exact check (float64)", exact_epochs)
                partial.exact = exact_check(
                    config, perms, (train_x, train_y), test_x, exact_epochs, seed, on_step=on_step,
                    **fit_options,
                )  # fmt: skip
        except KeyboardInterrupt:
            raise StudyInterrupted(partial) from None
    partial.complete = True
    return partial


def _stepper(ticker: Ticker, what: str, epochs: int) -> Any:
    """An ``on_step`` for `fit` that advances ``ticker`` by one step, naming the training."""

    def step(epoch: int) -> None:
        ticker.advance(detail=f"{what}, epoch {epoch}/{epochs}")

    return step
