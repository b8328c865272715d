"""Augmentation: the per-sample part's settings, and the batched part on the training device.

Every data set (image folders, shards, Hugging Face sets and the in-memory arrays: digits,
MNIST, CIFAR) does the paper's per-image part itself, on uint8, with one definition
(`mlpmixer.data.transforms`: inception crop, flip, RandAugment, seeded per sample by
(seed, epoch, index); files through `train_sample`, arrays through `train_array_sample`);
`sample_augment` maps the ``augment`` section to it. `DeviceAugment` then does the rest on
whole (B, C, H, W) batches on the device: pad-and-crop and affine (kornia) when configured,
normalisation, mixup or cutmix, drawing from torch's global generator (see
`mlpmixer.train.loop` for how it is seeded per step, which makes resumed runs exact).

Mixup draws one mixing coefficient lambda ~ Beta(alpha, alpha) per batch and mixes each
example with its neighbour in the batch (big_vision's recipe, which the paper used);
kornia's RandomMixUpV2 draws lambda uniformly from a range instead, so mixup is done here.
CutMix uses kornia's RandomCutMixV2 (lambda ~ Beta(alpha, alpha) sets the cut area).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.info import normalize
from ..data.transforms import SampleAugment
from .config import AugmentSection


def sample_augment(
    cfg: AugmentSection, decode: str = "full", resize: str = "torch"
) -> SampleAugment:
    """The worker part of ``cfg`` for image files: crop, flip, RandAugment; ``decode`` and
    ``resize``: ``data.train_decode`` and ``data.train_resize`` (`SampleAugment`)."""
    return SampleAugment(
        inception_crop=cfg.random_resized_crop,
        area=(float(cfg.crop_scale[0]), float(cfg.crop_scale[1])),
        ratio=(float(cfg.crop_ratio[0]), float(cfg.crop_ratio[1])),
        hflip=cfg.hflip,
        randaug_layers=cfg.randaugment_n,
        randaug_magnitude=cfg.randaugment_m,
        decode=decode,
        resize=resize,
    )


def _geometric(cfg: AugmentSection, img_size: tuple[int, int]) -> list[nn.Module]:
    """The device's geometric ops (the crop and the flip are the data sets')."""
    import kornia.augmentation as K

    ops: list[nn.Module] = []
    if cfg.pad_crop:
        ops.append(K.RandomCrop(img_size, padding=cfg.pad_crop))
    if cfg.affine_degrees or cfg.affine_translate or cfg.affine_scale:
        translate = (cfg.affine_translate, cfg.affine_translate) if cfg.affine_translate else None
        ops.append(
            K.RandomAffine(
                cfg.affine_degrees, translate=translate, scale=cfg.affine_scale, p=cfg.affine_prob
            )
        )
    return ops


class DeviceAugment(nn.Module):
    """(images (B, C, H, W) in [0, 1] or uint8, labels (B,)) -> (normalised images, soft
    targets (B, K)). The data sets already cropped, flipped and RandAugmented
    (`sample_augment`): the ``augment`` section's other ops happen here."""

    def __init__(
        self,
        cfg: AugmentSection,
        img_size: tuple[int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        num_classes: int,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.ops = nn.Sequential(*_geometric(cfg, img_size))
        self.cutmix = None
        if cfg.cutmix_alpha:
            import kornia.augmentation as K

            self.cutmix = K.RandomCutMixV2(
                beta=cfg.cutmix_alpha, data_keys=["input", "class"], use_correct_lambda=True
            )
        self.cfg, self.mean, self.std = cfg, mean, std
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """One-hot targets with label smoothing: (B,) -> (B, K)."""
        onehot = F.one_hot(labels.long(), self.num_classes).float()
        eps = self.label_smoothing
        return onehot * (1.0 - eps) + eps / self.num_classes if eps else onehot

    def _mix(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        use_cutmix = self.cutmix is not None and (
            not cfg.mixup_alpha or torch.rand(()).item() < cfg.mix_switch_prob
        )
        if use_cutmix:
            assert self.cutmix is not None
            mixed, info = self.cutmix(images, labels)
            first, second, keep = info[0, :, 0], info[0, :, 1], info[0, :, 2:3].float()
            return mixed, keep * self.targets(first) + (1.0 - keep) * self.targets(second)
        if cfg.mixup_alpha:
            alpha = torch.tensor(float(cfg.mixup_alpha))
            lam = torch.distributions.Beta(alpha, alpha).sample().item()
            mixed = lam * images + (1.0 - lam) * images.roll(1, dims=0)
            targets = self.targets(labels)
            return mixed, lam * targets + (1.0 - lam) * targets.roll(1, dims=0)
        return images, self.targets(labels)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        if len(self.ops):
            images = self.ops(images).clamp(0.0, 1.0)
        images = normalize(images, self.mean, self.std)
        return self._mix(images, labels)
