"""A short measurement at first use picks the faster of two equivalent pieces, cached."""

from __future__ import annotations

import json

import pytest

from mlpmixer import measured_choice as mc


class FakeClock:
    """A clock that each candidate advances by its own cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def cost(self, seconds: float):
        def run() -> None:
            self.now += seconds

        return run


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path))
    mc._memo.clear()
    yield
    mc._memo.clear()


def test_fastest_takes_the_lowest_median_and_ties_go_to_the_first():
    clock = FakeClock()
    pick = mc.fastest({"fast": clock.cost(2.0), "plain": clock.cost(1.0)}, clock=clock)
    assert pick == "plain"
    assert mc.fastest({"a": clock.cost(1.0), "b": clock.cost(1.0)}, clock=clock) == "a"


def test_choice_is_measured_once_then_read_from_the_cache_file(monkeypatch):
    calls = []
    monkeypatch.setattr(mc, "fastest", lambda c, rounds=5: calls.append(1) or "plain")
    candidates = {"fast": lambda: None, "plain": lambda: None}
    assert mc.choose("token products bf16 train", candidates, 1, "2.13") == "plain"
    data = json.loads(mc.cache_file().read_text())
    assert list(data.values()) == ["plain"] and "1 threads" in next(iter(data))
    mc._memo.clear()  # a new process: reads the file, does not measure
    assert mc.choose("token products bf16 train", candidates, 1, "2.13") == "plain"
    assert len(calls) == 1
    assert mc.choose("token products bf16 train", candidates, 2, "2.13") == "plain"
    assert len(calls) == 2  # another thread count is another question


def test_a_damaged_cache_or_an_unknown_stored_name_is_measured_over(monkeypatch):
    monkeypatch.setattr(mc, "fastest", lambda c, rounds=5: "fast")
    path = mc.cache_file()
    path.write_text("{not json")
    assert mc.choose("q", {"fast": lambda: None, "plain": lambda: None}, 1, "t") == "fast"
    key = mc.cache_key("q", 1, "t")
    path.write_text(json.dumps({key: "gone"}))
    mc._memo.clear()
    assert mc.choose("q", {"fast": lambda: None, "plain": lambda: None}, 1, "t") == "fast"
    assert json.loads(path.read_text())[key] == "fast"


def test_an_unwritable_cache_still_answers(monkeypatch):
    def refuse(*_):
        raise PermissionError("read-only")

    monkeypatch.setattr(mc, "atomic_write_text", refuse)
    monkeypatch.setattr(mc, "fastest", lambda c, rounds=5: "plain")
    assert mc.choose("q", {"fast": lambda: None, "plain": lambda: None}, 1, "t") == "plain"
    assert not mc.cache_file().exists()
