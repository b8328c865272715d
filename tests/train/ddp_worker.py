"""One process of the 2-process DDP tests (launched by torchrun): trains, saves its weights.

Usage: torchrun --nproc_per_node 2 --standalone tests/train/ddp_worker.py CONFIG.yaml OUT_DIR
       [--resume] [--kill-after-checkpoint N] [--record-ids NAME]
Each rank writes OUT_DIR/rank<R>.safetensors with the weights it holds at the end; the run is
OUT_DIR/run (``--resume``: continued from its last checkpoint). With
``--kill-after-checkpoint N`` rank 0 SIGKILLs itself right after writing the checkpoint of
global step N (torchrun then stops rank 1), as a crashed node would. With ``--record-ids
NAME`` each rank appends "epoch shard record" of every training sample it reads, in order,
to OUT_DIR/NAME-rank<R>.txt (shard runs with data.num_workers=0: read in this process).
Each rank also writes OUT_DIR/gloo-threads-rank<R>.txt: the names of gloo's threads still
running once ``train`` has returned (Linux), one per line.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from safetensors.torch import save_file

from mlpmixer.train import load_config, train
from mlpmixer.train.loop import Trainer


def _kill_after_checkpoint(step: int) -> None:
    real_save = Trainer.save_checkpoint

    def save(self, *args, **kwargs):
        result = real_save(self, *args, **kwargs)
        if self.state.global_step == step and self.dist.is_main:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Trainer.save_checkpoint = save


def _record_ids(path: Path) -> None:
    from mlpmixer.data.shards import ShardDataset

    real_item = ShardDataset.item

    def item(self, shard, record, order=None, epoch=0):
        if self.split == "train" and order is not None:  # the stream, not the mean/std sample
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"{epoch} {shard} {record}\n")
        return real_item(self, shard, record, order, epoch)

    ShardDataset.item = item


def _gloo_threads() -> list[str]:
    """The names of this process's gloo threads (``pt_gloo_*``, ``gloo_*``); none if no /proc."""
    tasks = Path("/proc/self/task")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.is_dir() else []
    return sorted(n for n in names if "gloo" in n)


def main() -> None:
    config_path, out, flags = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if "--kill-after-checkpoint" in flags:
        _kill_after_checkpoint(int(flags[flags.index("--kill-after-checkpoint") + 1]))
    rank = int(os.environ.get("RANK", "0"))
    if "--record-ids" in flags:
        _record_ids(out / f"{flags[flags.index('--record-ids') + 1]}-rank{rank}.txt")
    if "--resume" in flags:
        result = train(resume=out / "run")
    else:
        result = train(load_config(config_path), overrides=[f"run.out={out / 'run'}"])
    (out / f"gloo-threads-rank{rank}.txt").write_text("".join(f"{n}\n" for n in _gloo_threads()))
    state = {k: v.contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
