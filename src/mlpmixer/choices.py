"""Names of the choices both the library and the command line offer, in a module that imports
nothing: the CLI lists them in ``--help`` before (and without) importing torch.

The library's modules import them from here (`mlpmixer.models.config`,
`mlpmixer.checkpoints.load`, `mlpmixer.checkpoints.formats`), so each list is written once.
"""

from typing import Literal, get_args

# the number formats a run, an evaluation or a benchmark computes in (`mlpmixer.precision`)
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")  # what eval/predict can resize with

# The registry of checkpoint formats: (name, whether it writes), in the order reading tries
# them (the first whose detect() claims a file reads it: a bare state dict's own key names
# last). Each is one module, mlpmixer/checkpoints/formats/<name>.py, defining FORMAT; adding
# a format is that file and one line here (docs/architecture.md, "Adding a checkpoint format").
CHECKPOINT_FORMATS = (
    ("training", False),  # a run's checkpoints/last.pt
    ("int8", False),  # `mlpmixer quantize`'s folder: quantized.safetensors + quantized.json
    ("native", True),  # this project's: safetensors + config.json, a folder or one file
    ("official", True),  # Google's flat .npz
    ("zoo", False),  # the official files of ViP, CycleMLP, AS-MLP, Wave-MLP, Hire-MLP
    ("timm", True),  # timm's key names: .pth/.bin/.safetensors or a hub folder
    ("facebook", False),  # deit's original ResMLP checkpoints
    ("lucidrains", False),  # mlp-mixer-pytorch state dicts
    ("state_dict", True),  # torch.save(model.state_dict()) with this package's key names
)
WRITABLE_FORMATS = tuple(name for name, writes in CHECKPOINT_FORMATS if writes)  # `convert --to`

# `mlpmixer quantize --method` (`mlpmixer.deploy.methods`): the int8 methods, for the CPU, and
# the GPU ones (fp8, on CUDA GPUs of compute capability >= 8.9: `mlpmixer.deploy.fp8`); `auto`
# chooses among the int8 ones
INT8_METHODS = ("weight-only", "dynamic", "static")
GPU_METHODS = ("fp8",)
