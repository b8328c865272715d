"""Runs ``mlpmixer`` in a subprocess and crashes it at a chosen point (for the crash tests).

    python crash_driver.py MODE N -- CLI ARGS...

MODE ``kill-in-checkpoint-write``: the N-th training checkpoint is half written, then the
process is SIGKILLed (before the rename). ``kill-before-outputs``: SIGKILL after the last
checkpoint, when the final model is about to be written. ``sigint-after-step``: SIGINT
(Ctrl-C) to itself right after optimizer step N; ``sigint-group-after-step``: to its whole
process group (with the DataLoader workers), as a terminal does.
"""

from __future__ import annotations

import os
import signal
import sys


def _kill_in_checkpoint_write(n: int) -> None:
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, file, *args, **kwargs):  # only training checkpoints use torch.save
        calls["n"] += 1
        real_save(obj, file, *args, **kwargs)
        if calls["n"] == n:  # half the file on disk, not yet renamed: the worst moment
            file.flush()  # the checkpoint is written through an open file object
            size = os.fstat(file.fileno()).st_size
            os.ftruncate(file.fileno(), size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save


def _kill_before_outputs() -> None:
    import mlpmixer.checkpoints.native as native_module

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    native_module.write_native = killed


def _sigint_after_step(n: int, group: bool = False) -> None:
    from mlpmixer.train.loop import Trainer

    real_step = Trainer.train_step

    def step(self, micro_batches):
        loss = real_step(self, micro_batches)
        if self.state.global_step == n:
            if group:  # as a terminal's Ctrl-C: the process and its DataLoader workers
                os.killpg(os.getpgid(0), signal.SIGINT)
            else:
                os.kill(os.getpid(), signal.SIGINT)
        return loss

    Trainer.train_step = step


def main() -> None:
    mode, n, sep, *args = sys.argv[1:]
    assert sep == "--"
    if mode == "kill-in-checkpoint-write":
        _kill_in_checkpoint_write(int(n))
    elif mode == "kill-before-outputs":
        _kill_before_outputs()
    elif mode == "sigint-after-step":
        _sigint_after_step(int(n))
    elif mode == "sigint-group-after-step":
        _sigint_after_step(int(n), group=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
    from mlpmixer.cli import cli

    cli(args, prog_name="mlpmixer")


if __name__ == "__main__":
    main()
