"""Names of the choices both the library and the command line offer, in a module that imports
nothing: the CLI lists them in ``--help`` before (and without) importing torch.

The library's modules import them from here (`mlpmixer.models.config`,
`mlpmixer.checkpoints.load`), so each list is written once.
"""

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")  # what eval/predict can resize with
WRITABLE_FORMATS = ("native", "official", "timm", "state_dict")  # what `convert --to` writes
