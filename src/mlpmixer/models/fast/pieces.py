"""Which fast piece runs on this machine: decided once per piece, dtype and shape class.

Every piece of the fast path computes what its plain twin computes (the tests hold each to
it); whether it is *faster* depends on the CPU. So each is decided, once per process, for
each case it meets (a dtype, a mode, a shape class), and the layers keep the answer
(`fast.layers` resolves it at their first call in that case; nothing is re-decided per
forward pass, no environment variable is read there):

* **a rule** on the CPUs the pieces were measured on (`cpu_kind.measured_kind`: AMD and Intel
  with AVX-512 and bf16 instructions): today's defaults, no measurement;
* **a probe** on any other CPU (AVX2-only, AVX-512 without bf16, Arm, unknown): each candidate
  runs once on random operands of the case's shapes and must give the plain op's numbers
  (within the tests' tolerance: 1e-5 relative in fp32, 2e-2 in bf16), then the candidates are
  timed in a few interleaved rounds of thread CPU time (`measured_choice.measure`, cached in
  ``$MLPMIXER_CACHE/choices.json`` by CPU flags, torch version and threads); the piece is used
  only where it wins. A probe costs tens of milliseconds per case (`PROBE_ROWS` rows);
* **unavailable** where the piece cannot run here (no C compiler for the GELU kernel, no
  oneDNN or no oneDNN bf16), **failed** where a call failed (then that piece, in that dtype,
  is off for the process), **off** where its switch says so (``MLPMIXER_FUSED_GELU=0``,
  ``MLPMIXER_ONEDNN=0``, ``MLPMIXER_LAYOUTS=0``, read when the piece is decided).

``MLPMIXER_PIECES`` (or `set_policy`) overrides the way of deciding: ``auto`` (the above,
default), ``probe`` (measure even where a rule exists), ``on`` (every available piece on, no
probe: what the test suite uses, so that the fast-vs-plain tests test the pieces).
`decisions` lists what was decided and why (``mlpmixer info --fast``, ``mlpmixer bench``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import torch
from torch.utils._python_dispatch import _disable_current_modes

from ... import measured_choice
from ...cpu_kind import effective_cpu, measured_kind

log = logging.getLogger(__name__)

POLICIES = ("auto", "probe", "on")
PROBE_ROWS = {"few": 16, "many": 128}  # rows of the probe's products, per rows class
# training has costs per step that do not grow with the rows (oneDNN's weight transposes):
# at 128 rows the oneDNN training products measured 0.89x ATen on the EPYC, at 512 0.99x, at
# 1024 1.13x (S/16 shapes; a batch of 16 is 3136 rows), so its probe takes more rows
TRAINING_PROBE_ROWS = {"few": 16, "many": 1024}
MANY_ROWS = 64  # a product with more rows than this is in the "many" class
PROBE_ROUNDS = 3
ROUND_S = 0.003  # a timed round of a probe lasts at least this (short ops are repeated)
MARGIN = 1.02  # a piece is used where it wins by 2% at least (run-to-run noise of a probe)


@dataclass(frozen=True)
class Decision:
    """piece: which fast piece; case: its dtype/mode/shape; choice: the candidate that runs
    (the last of a piece's candidates is the plain one); why: rule, measured ratio,
    unavailable, failed, off, or the policy."""

    piece: str
    case: str
    choice: str
    why: str
    seconds: float = 0.0  # CPU time deciding took (a probe: its checks and timings)

    def to_dict(self) -> dict[str, object]:
        return {"piece": self.piece, "case": self.case, "choice": self.choice, "why": self.why,
                "seconds": round(self.seconds, 4)}  # fmt: skip


_decisions: dict[tuple[str, str], Decision] = {}
_policy: str | None = None
generation = 0  # bumped by `reset`: layers drop what they resolved


def set_policy(policy: str | None) -> None:
    """``auto``/``probe``/``on`` for this process (None: back to ``MLPMIXER_PIECES``);
    forgets every decision."""
    global _policy
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    _policy = policy
    reset()


def policy() -> str:
    """`set_policy`'s value, else ``MLPMIXER_PIECES`` (default ``auto``; unknown: ``auto``)."""
    if _policy is not None:
        return _policy
    value = os.environ.get("MLPMIXER_PIECES", "auto").strip().lower()
    return value if value in POLICIES else "auto"


def reset() -> None:
    """Forget every decision (after changing a switch in this process); layers re-resolve."""
    global generation
    _decisions.clear()
    generation += 1


def decisions() -> list[Decision]:
    """What this process decided so far, in order."""
    return list(_decisions.values())


def switched_off(variable: str) -> bool:
    """Whether ``$variable`` is ``0``/``false``/``no``/``off`` (read when a piece is decided)."""
    return os.environ.get(variable, "1").strip().lower() in ("0", "false", "no", "off")


def rows_class(rows: int) -> str:
    return "many" if rows > MANY_ROWS else "few"


def failed(piece: str, case: str, plain: str, err: BaseException) -> None:
    """A chosen piece failed at run time: use ``plain`` for this case from now on (logged at
    debug level; the caller computes this call with the plain op)."""
    log.debug("%s (%s) failed, using %s from now on: %s", piece, case, plain, err)
    _decisions[piece, case] = Decision(piece, case, plain, f"failed: {err}".splitlines()[0])
    global generation
    generation += 1


Probe = Callable[[], Mapping[str, Callable[[], torch.Tensor]]]


def decide(
    piece: str,
    case: str,
    names: tuple[str, ...],
    probe: Probe,
    rule: Callable[[str], str] | None = None,
    unavailable: Callable[[], str | None] | None = None,
    switch: str | None = None,
    tolerance: float = 1e-5,
    everywhere: str | None = None,
) -> str:
    """The candidate ``piece`` uses in ``case`` (decided at the first question, then kept).

    ``names``: the candidates, the plain op last. ``probe()`` builds the measurement: name ->
    a call returning that candidate's result on the case's operands. ``rule(kind)``: the
    choice on a CPU the pieces were measured on (`cpu_kind.measured_kind`);
    ``unavailable()``: why only the plain op can run here (None: all can); ``switch``: the
    environment variable that switches the piece off; ``everywhere``: why the first candidate
    is right on every CPU (it does strictly less work for the same numbers): no probe.
    """
    found = _decisions.get((piece, case))
    if found is None:
        start = time.thread_time()  # (probes run on this thread alone)
        if everywhere is not None and not (switch is not None and switched_off(switch)):
            found = Decision(piece, case, names[0], f"rule: any CPU ({everywhere})")
        else:
            found = _decide(piece, case, names, probe, rule, unavailable, switch, tolerance)
        found = replace(found, seconds=time.thread_time() - start)
        _decisions[piece, case] = found
        log.debug("%s (%s): %s, %s", piece, case, found.choice, found.why)
    return found.choice


def _decide(  # type: ignore[no-untyped-def]
    piece, case, names, probe, rule, unavailable, switch, tolerance
) -> Decision:
    plain = names[-1]
    if switch is not None and switched_off(switch):
        return Decision(piece, case, plain, f"off: {switch}=0")
    reason = unavailable() if unavailable is not None else None
    if reason is not None:
        return Decision(piece, case, plain, f"unavailable: {reason}")
    how = policy()
    if how == "on":
        return Decision(piece, case, names[0], "on: MLPMIXER_PIECES=on")
    kind = measured_kind(effective_cpu())
    if how == "auto" and kind is not None and rule is not None:
        return Decision(piece, case, rule(kind), f"rule: {kind}")
    with _outside_the_callers_modes():
        return _probe(piece, case, probe(), tolerance)


def _repeated(
    candidates: dict[str, Callable[[], torch.Tensor]], once: float
) -> dict[str, Callable[[], object]]:
    """Each candidate called often enough that one timed round lasts ~`ROUND_S` (a single call
    of a sub-millisecond op is mostly timer and cache noise); ``once``: one plain call's time."""
    repeats = max(1, min(64, round(ROUND_S / max(once, 1e-6))))
    if repeats == 1:
        return dict(candidates)
    return {name: (lambda fn=fn: [fn() for _ in range(repeats)]) for name, fn in candidates.items()}


@contextlib.contextmanager
def _outside_the_callers_modes() -> Iterator[None]:
    """A probe runs on real tensors whatever its caller is in: no dispatch mode (fake tensors,
    FlopCounterMode), no autocast, grad on, not inference mode."""
    with (
        _disable_current_modes(),
        torch.autocast("cpu", enabled=False),
        torch.inference_mode(False),
        torch.enable_grad(),
    ):
        yield


def _probe(
    piece: str, case: str, made: Mapping[str, Callable[[], torch.Tensor]], tolerance: float
) -> Decision:
    """Check each candidate against the plain one, then time the ones that agree."""
    names = list(made)
    plain = names[-1]
    start = time.thread_time()
    expected = made[plain]().float()
    once = time.thread_time() - start
    scale = expected.abs().max().clamp_min(1e-30)
    agree: dict[str, Callable[[], torch.Tensor]] = {}
    rejected = []
    for name in names[:-1]:
        try:
            error = ((made[name]().float() - expected).abs().max() / scale).item()
        except (RuntimeError, NotImplementedError) as err:
            rejected.append(f"{name} failed: {str(err).splitlines()[0]}")
            continue
        if error <= tolerance:
            agree[name] = made[name]
        else:
            rejected.append(f"{name} differs by {error:.1e}")
    agree[plain] = made[plain]
    if len(agree) == 1:
        return Decision(piece, case, plain, "; ".join(rejected) or "nothing to compare")
    # the candidates are part of the question: a choice stored among fewer (an older version's)
    # never hides a new candidate from the probe
    question = f"fast piece {piece} ({case}) among {' / '.join(names)}"
    with measured_choice.one_thread():  # thread CPU time counts the calling thread only
        timed = _repeated(agree, once)
        result = measured_choice.measure(
            question, timed, 1, torch.__version__, PROBE_ROUNDS, margin=MARGIN
        )
    if result.choice == plain:
        ratio = result.best_other
        verdict = "slower" if ratio is None or ratio < 1 else f"within {MARGIN - 1:.0%}"
        why = f"measured: {verdict}" + (f" ({ratio:.2f}x)" if ratio else "")
    else:
        why = "measured" + (f" {result.speedup:.2f}x" if result.speedup else "")
    return Decision(piece, case, result.choice, why)
