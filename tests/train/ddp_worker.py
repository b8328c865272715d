"""One process of the 2-process DDP test (launched by torchrun): trains, saves its weights.

Usage: torchrun --nproc_per_node 2 --standalone tests/train/ddp_worker.py CONFIG.yaml OUT_DIR
Each rank writes OUT_DIR/rank<R>.safetensors with the weights it holds at the end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from mlpmixer.train import load_config, train


def main() -> None:
    config_path, out = sys.argv[1], Path(sys.argv[2])
    result = train(load_config(config_path), overrides=[f"run.out={out / 'run'}"])
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
