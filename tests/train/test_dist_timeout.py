"""A stopped or killed DDP peer (issue 16 item 11): the collective gives up after
``train.dist_timeout_s`` and says which rank did not answer, instead of waiting 30 minutes
and ending in "this looks like a bug".

Two gloo processes on 127.0.0.1; rank 1 stops itself (SIGSTOP) or dies right after joining,
rank 0 runs an all-reduce under `peers_checked` with a 2-second timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from mlpmixer.errors import ConfigError
from mlpmixer.train import TrainConfig
from mlpmixer.train.distributed import DEFAULT_TIMEOUT_S, collective_timeout

WORKER = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    from mlpmixer.errors import RunError
    from mlpmixer.train.distributed import DistInfo, all_reduce_sum, init_process_group, peers_checked
    rank, fault = int(os.environ["RANK"]), sys.argv[1]
    init_process_group(DistInfo(rank, 2), torch.device("cpu"), float(sys.argv[2]))
    all_reduce_sum(torch.ones(1))  # both alive: this one completes
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP if fault == "stop" else signal.SIGKILL)
    try:
        with peers_checked():
            all_reduce_sum(torch.ones(1))
        print(json.dumps({"error": None}))
    except RunError as err:
        print(json.dumps({"error": str(err)}))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(fault: str, timeout_s: float) -> tuple[dict, float]:
    """Run the worker on ranks 0 and 1; (rank 0's report, seconds it took)."""
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, "-c", WORKER, fault, str(timeout_s)]
    procs = [subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]  # fmt: skip
    start = time.monotonic()
    try:
        out, err = procs[0].communicate(timeout=120)
        took = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # SIGKILL ends a stopped process too
            p.wait()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, err[-2000:]
    return json.loads(lines[-1]), took


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_a_silent_or_killed_peer_is_named_within_the_timeout(fault):
    report, took = _two_ranks(fault, timeout_s=2.0)
    message = report["error"]
    assert message is not None and "rank(s) 1 of 2" in message, message
    assert "--resume" in message
    if fault == "stop":
        assert "did not answer within 2 s" in message and "dist_timeout_s" in message
    else:
        assert "ended or was killed" in message or "did not answer" in message
    assert took < 60  # seconds, not torch's 30 minutes


def test_the_timeout_is_configurable(monkeypatch):
    monkeypatch.delenv("MLPMIXER_DIST_TIMEOUT_S", raising=False)
    assert collective_timeout() == DEFAULT_TIMEOUT_S == 300
    monkeypatch.setenv("MLPMIXER_DIST_TIMEOUT_S", "42")
    assert collective_timeout() == 42
    assert collective_timeout(7.5) == 7.5  # train.dist_timeout_s wins over the environment
    monkeypatch.setenv("MLPMIXER_DIST_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="MLPMIXER_DIST_TIMEOUT_S.*'soon'"):
        collective_timeout()
    with pytest.raises(ConfigError, match="train.dist_timeout_s"):
        TrainConfig.from_dict({"train": {"dist_timeout_s": 0}})
    assert TrainConfig.from_dict({"train": {"dist_timeout_s": 60}}).train.dist_timeout_s == 60
