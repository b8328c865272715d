"""The bound language of config fields: each form accepts and rejects the right edges."""

from __future__ import annotations

import pytest

from mlpmixer.errors import ConfigError
from mlpmixer.train.bounds import Bound, check_value


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (">= 1", [1, 2, 1e9], [0, 0.999, -1]),
        ("> 0", [1e-12, 3], [0, -1e-12]),
        ("<= 5", [5, -3], [5.0001]),
        ("< 5", [4.999], [5]),
        ("[0, 1)", [0, 0.5, 0.999], [-0.001, 1]),
        ("(0, 1]", [1e-9, 1], [0, 1.001]),
        ("[0, 180]", [0, 180], [-1, 180.5]),
        ("{1, 3}", [1, 3], [0, 2, 4]),
    ],
)
def test_each_form_of_range_has_the_right_edges(text, inside, outside):
    bound = Bound(text)
    assert all(bound.holds(v) for v in inside)
    assert not any(bound.holds(v) for v in outside)


def test_a_malformed_range_fails_where_it_is_declared():
    with pytest.raises(ValueError, match="malformed bound"):
        Bound("=> 1")


def test_checks_name_key_and_value_and_accept_null():
    check_value("a.b", None, Bound(">= 1"), nullable=True)
    with pytest.raises(ConfigError, match=r"^a\.b must be >= 1 or null, got 0$"):
        check_value("a.b", 0, Bound(">= 1"), nullable=True)
    with pytest.raises(ConfigError, match=r"^a\.b must be a finite number, got nan$"):
        check_value("a.b", float("nan"), None, nullable=False)
    with pytest.raises(ConfigError, match=r"^a\.b must be smaller than 2\*\*62 in magnitude"):
        check_value("a.b", 2**70, Bound(">= 0"), nullable=False)
    with pytest.raises(ConfigError, match=r"^a\.b must be <= 8, got \[1, 9\]$"):
        check_value("a.b", (1, 9), Bound(">= 0", limit=8), nullable=False)
    check_value("a.b", (0.2, 0.2), Bound("(0, 1]", ordered=True), nullable=False)
    with pytest.raises(ConfigError, match=r"min <= max"):
        check_value("a.b", (0.3, 0.2), Bound("(0, 1]", ordered=True), nullable=False)


def test_the_fields_own_range_is_said_before_the_int64_limit():
    seed = Bound("[0, 4294967295]", said="in [0, 2**32 - 1]")
    with pytest.raises(
        ConfigError, match=r"^s must be in \[0, 2\*\*32 - 1\], got 5000000000000000000$"
    ):
        check_value("s", 5 * 10**18, seed, nullable=False)
