"""Names of the choices both the library and the command line offer, in a module that imports
nothing: the CLI lists them in ``--help`` before (and without) importing torch.

The library's modules import them from here (`mlpmixer.models.config`,
`mlpmixer.checkpoints.load`), so each list is written once.
"""

from typing import Literal, get_args

# the number formats a run, an evaluation or a benchmark computes in (`mlpmixer.precision`)
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")  # what eval/predict can resize with
WRITABLE_FORMATS = ("native", "official", "timm", "state_dict")  # what `convert --to` writes
