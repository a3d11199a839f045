"""Config fuzz: every numeric key, set at its bounds, just beyond them, and to the values a
hostile user types (NaN, infinities, 1e300, 2**63), either gives a config that builds a
world or one ConfigError line that names the key. Never a traceback, a library warning,
or a value accepted and then wrapped."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtg.core.config import ConfigError, numbers, to_config
from qtg.core.world import build_world
from tests.support import InvariantCheck, run_sim

HOSTILE = [math.nan, math.inf, -math.inf, 1e300, -1e300, 2**63, -(2**63) - 1, -1, 0]


def keys() -> list[tuple[str, bool, bool, tuple, int]]:
    """(key, real, is a list, bounds, list length) of every number of the default config."""
    out = []
    for key, _, value, _, bounds, real in numbers(to_config({})):
        if "[" in key:  # items of a list of events: none by default
            continue
        out.append((key, real, isinstance(value, list), bounds, len(value) if isinstance(value, list) else 0))
    return out


KEYS = keys()


def candidates(real: bool, bounds: tuple) -> list:
    """The bounds, just beyond each, and the hostile values, as the field's type."""
    lo, hi = bounds
    values = list(HOSTILE)
    for b, step in ((lo, -1), (hi, +1)):
        if b is None:
            continue
        values.append(b)
        values.append(b + step * (max(abs(b) * 1e-6, 1e-6) if real else 1))
    return [float(v) if real else (int(v) if not isinstance(v, float) or math.isfinite(v) else v) for v in values]


def tree_of(key: str, value, is_list: bool, length: int) -> dict:
    """The nested override of ``key``; a list field gets the value in every place (a range
    [v, v], or one per symbol)."""
    if is_list:
        value = [value] * max(length, 2 if key.startswith("population.") else 1)
    *path, last = key.split(".")
    tree: dict = {}
    node = tree
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    return tree


def outcome(tree: dict, key: str):
    """The typed config, or the refusal's line; fails the test on anything else."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning on the way is a defect too
        try:
            return to_config(tree)
        except ConfigError as e:
            line = str(e)
            assert "\n" not in line and line, line
            head = key.split(".")[0]
            assert line.startswith((key, head, "population", "market", "fundamentals", "news")), (key, line)
            return line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEYS), st.data())
def test_a_numeric_key_at_any_edge_builds_or_is_refused_in_one_line(entry, data):
    key, real, is_list, bounds, length = entry
    value = data.draw(st.sampled_from(candidates(real, bounds)), label="value")
    result = outcome(tree_of(key, value, is_list, length), key)
    if isinstance(result, str):
        return
    # Accepted: every number within its bounds, finite, and the world builds (or refuses a
    # float that holdings cannot fit, with one line), its money within int64.
    for k, _, _, nums, (lo, hi), _ in numbers(result):
        assert all(math.isfinite(v) for v in nums), k
        assert all((lo is None or v >= lo) and (hi is None or v <= hi) for v in nums), k
    if sum(k.count for k in result.population.values()) > 5_000:
        return  # a large population builds slowly; its bounds are what this test checks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            world = build_world(result)
        except ConfigError as e:
            assert "\n" not in str(e) and str(e).startswith("market.shares_outstanding")
            return
    cash = np.asarray(world.state.wallet.cash)
    assert (cash >= 0).all() and int(cash.astype(object).sum()) < 2**62


def test_every_candidate_of_every_key_is_drawn_from_the_field_type():
    """The fuzzer reaches every numeric key, ranges and per-symbol lists included."""
    names = {k for k, *_ in KEYS}
    assert {"seed", "market.initial_price", "market.shares_outstanding", "population.noise.activity",
            "population.noise.cash", "news.earnings.std", "run.ticks", "ui.fps"} <= names
    assert all(len(candidates(real, b)) >= len(HOSTILE) for _, real, _, b, _ in KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("changes", [
    {"market.initial_price": 1000.0, "market.shares_outstanding": 1_000_000},  # near the economy bound
    {"population.noise.cash": 1e9, "population.market_maker.cash": 1e9},
    {"population.noise.activity": [1.0, 1.0], "population.noise.price_sigma": [0.5, 0.5]},
])
def test_configs_at_the_edges_run_with_money_and_shares_conserved(changes):
    """Accepted edge values run: conservation and no negative cash every tick, both checked
    by ``InvariantCheck``, on a small market."""
    tree: dict = {"market": {"symbols": ["ACME", "BOLT"], "sectors": []}, "hooks": [],
                  "population": {"noise": {"count": 20}, "market_maker": {"count": 2}}}
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    run = run_sim(to_config(tree), ticks=30)
    assert isinstance(run.check, InvariantCheck) and run.check.ticks == 30
