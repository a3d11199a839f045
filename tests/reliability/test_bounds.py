"""Bounds before anything is built: every number is checked for type, finiteness and range,
the money totals are proven to fit int64 from the config alone, a population too big for
memory is refused with its estimate, and an unknown key at any depth is named with a guess.

Each case once crashed with a traceback or was accepted and overflowed later."""

import subprocess
import sys
from pathlib import Path

import pytest

from components.money import ECONOMY_MAX, INT64_MAX, MAX_PRICE, SCALE
from components.schema import bounds_of, doc_of, setting
from qtg.core.compose import load_config
from qtg.core.config import (
    ConfigError,
    MarketConfig,
    check_economy,
    memory_estimate,
    numbers,
    to_config,
)
from systems.strategies import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=1e20", "seed: Value '1e+20' of type 'float' could not be converted to Integer"),
        ("seed=99999999999999999999", "seed: must be in [0, 9223372036854775807], got 99999999999999999999"),
        ("market.shares_outstanding=1e20",
         "market.shares_outstanding: Value '1e+20' of type 'float' could not be converted to Integer"),
        ("market.shares_outstanding=10000000000000",
         "market.shares_outstanding: must be in [1, 1000000000000], got 10000000000000"),
        ("population.noise.activity=[nan,0.5]", "population.noise.activity: must be a finite number, got [nan, 0.5]"),
        ("population.noise.activity=nan", "population.noise.activity: must be a range [lo, hi], got nan"),
        ("population.noise.size=[1,nan]",
         "population.noise.size[1]: Value 'nan' of type 'float' could not be converted to Integer"),
        ("population.noise.cash=inf", "population.noise.cash: must be a finite number, got inf"),
        ("market.borrow_fraction=nan", "market.borrow_fraction: must be a finite number, got nan"),
        ("ui.fps=-inf", "ui.fps: must be a finite number, got -inf"),
        ("market.initial_price=1e12", "market.initial_price: must be in [0.0001, 100000.0], got 1000000000000.0"),
        ("news.earnings.std=1e300", "news.earnings.std: must be in [0.0, 1.0], got 1e+300"),
        ("market.symbols=5", "market.symbols: must be a list, such as [a, b]"),
    ],
)
def test_a_bad_number_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert str(e.value) == message


def test_a_news_event_of_any_size_is_refused_beyond_its_bounds():
    """``size=1e300`` was accepted and its fair value overflowed int64 later."""
    event = "news.scheduled=[{kind:sector,tick:5,target:tech,size:1e300}]"
    with pytest.raises(ConfigError) as e:
        load_config([event])
    assert str(e.value) == "news.scheduled[0].size: must be in [-10.0, 10.0], got 1e+300"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"population.noise.cash": 1e30},
         "population.noise.cash: the agents' opening cash (1e+32 in all) must be at most 2.31e+14 in currency "
         "with the market's value to keep money in int64; lower the cash or the counts, got 1e+30 for 100 agents"),
        ({"market.shares_outstanding": 10**12},
         "market.shares_outstanding: the market's 10,500,000,000,000 shares (the borrow pools included) at the "
         "largest order price (100,000.00) are worth 1.05e+18, more than 2.31e+14 in currency that keeps money "
         "in int64; lower it, got 1000000000000"),
        ({"market.shares_outstanding_each": [10**7] * 9 + [10**10]},
         "market.shares_outstanding_each: the market's 10,594,500,000 shares (the borrow pools included) at the "
         "largest order price (100,000.00) are worth 1.06e+15, more than 2.31e+14 in currency that keeps money "
         "in int64; lower it, got " + str([10**7] * 9 + [10**10])),
    ],
)
def test_money_totals_that_could_overflow_int64_are_refused(changes, message):
    """``cash=1e30`` and ``initial_price=1e12`` were accepted, then int64 wrapped silently."""
    tree: dict = {}
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value
    with pytest.raises(ConfigError) as e:
        to_config(tree)
    assert str(e.value) == message


def test_the_economy_bound_is_exact_at_its_edge():
    """The most agents of 1e9 in cash that fit beside the market pass; one more does not.
    The totals are Python integers, so the check itself cannot wrap."""
    cfg = to_config({"market": {"symbols": ["A"], "sectors": [], "initial_price": 1.0,
                                "shares_outstanding": 10_000_000, "borrow_fraction": 0.0},
                     "population": {"noise": {"count": 0}, "market_maker": {"count": 1, "cash": 1e9}}})
    market = 10_000_000 * MAX_PRICE
    most = (ECONOMY_MAX - market) // (10**9 * SCALE)
    assert 2 * ECONOMY_MAX < INT64_MAX and most > 100_000
    cfg.population["market_maker"].count = most
    check_economy(cfg)
    cfg.population["market_maker"].count = most + 1
    with pytest.raises(ConfigError, match=rf"^population.market_maker.cash: .* got 1000000000.0 for {most + 1:,} agents$"):
        check_economy(cfg)


def test_a_population_too_big_for_memory_is_refused_with_its_estimate():
    """A huge count died in a 7.45 GiB allocation; now the estimate stops it first."""
    with pytest.raises(ConfigError) as e:
        load_config(["population.noise.count=1000000000"])
    line = str(e.value)
    assert line.startswith("population: 1,000,000,050 agents need about ") and " GiB (estimated), more than the " in line
    assert line.endswith(" GiB available; lower the counts, or set run.memory_limit_gb to allow more")
    with pytest.raises(ConfigError, match=r"more than the 0\.5 GiB allowed by run\.memory_limit_gb"):
        load_config(["run.memory_limit_gb=0.5"])
    # The limit is the user's to raise: the same count passes the config with a larger one.
    assert load_config(["population.noise.count=1000000000", "run.memory_limit_gb=1e6"]).population["noise"].count


def test_the_memory_estimate_grows_with_agents_symbols_and_rows():
    base = to_config({})
    more = to_config({"population": {"noise": {"count": 1100}}})
    wide = to_config({"market": {"symbols": [f"S{i}" for i in range(40)], "sectors": []}})
    factor = to_config({"population": {"factor_long_short": {"count": 100}}})
    assert memory_estimate(base) < memory_estimate(more) < memory_estimate(base) * 3
    assert memory_estimate(wide) > memory_estimate(base)
    assert memory_estimate(factor) > memory_estimate(base)  # one row per symbol and agent
    # Measured: 200,000 noise traders on 10 symbols peaked 509 MiB above 20,000 (2.8 KiB each).
    many, few = (to_config({"population": {"noise": {"count": n, "shares": 0}}}) for n in (200_000, 20_000))
    per_agent = (memory_estimate(many) - memory_estimate(few)) / 180_000
    assert 2.0 * 1024 <= per_agent <= 6.0 * 1024


@pytest.mark.parametrize(
    "override, message",
    [
        ("population.noise.activty=[0,1]",
         "population.noise.activty: unknown key; did you mean 'activity'? allowed: count, activity, size, size_tail, "
         "aggressive, price_sigma, collar, cash, shares, max_short, anchor, vol_feedback, vol_periods, chartists, "
         "switching, herding, predisposition, misalignment, value_weight, trend_weight, trend_period, "
         "chartist_activity, rebalance, chartist_size, chartist_aggressive"),
        ("+news.earnings.rat=0.1",
         "news.earnings.rat: unknown key; did you mean 'rate'? allowed: rate, min_interval, mean, std, "
         "sentiment, duration"),
        ("news.scheduled=[{kind:sector,tick:1,target:tech,sise:1}]",
         "news.scheduled[*].sise: unknown key; did you mean 'size'? allowed: kind, tick, target, size"),
        ("markt.symbols=[A]",
         "markt: unknown key; did you mean 'market'? allowed: market, fundamentals, news, population, engine, "
         "risk, run, hooks, storage, snapshot, metrics, ui, resume, seed"),
        ("+population.nois.count=3",
         "population.nois: unknown strategy kind; did you mean 'noise'? allowed: " + ", ".join(sorted(registry()))),
    ],
)
def test_an_unknown_key_at_any_depth_is_named_with_a_guess(override, message):
    """``+news.earnings.rat`` was dropped silently and a list item's key was reported
    without its path, against the root's keys."""
    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert str(e.value) == message


def test_every_number_of_the_schema_has_bounds_and_every_field_a_description():
    """One source for what a key allows and means: the field's ``setting``."""
    cfg = to_config({})
    seen = list(numbers(cfg))
    assert len(seen) > 150
    for key, _, _, _, (lo, hi), _ in seen:
        assert lo is None or hi is None or lo <= hi, key
    classes = [MarketConfig, *(kind.Config for kind in registry().values())]
    for cls in classes:
        docs = doc_of(cls)
        assert all(docs[name] for name in docs if name != "count"), cls
        assert bounds_of(cls)


def test_setting_copies_a_list_default_for_every_instance():
    import dataclasses

    @dataclasses.dataclass
    class C:
        xs: list[int] = setting([1, 2], lo=1, hi=5, doc="Some numbers.")

    a, b = C(), C()
    a.xs.append(3)
    assert b.xs == [1, 2] and bounds_of(C) == {"xs": (1, 5)} and doc_of(C) == {"xs": "Some numbers."}


@pytest.mark.slow
@pytest.mark.parametrize("override", ["population.noise.cash=1e30", "population.noise.count=1000000000"])
def test_the_command_line_prints_one_line_no_warning_and_writes_nothing(tmp_path, override):
    """``cash=1e30`` printed a RuntimeWarning, then ran with wrapped cash and exited 0."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "qtg.run", override, f"hydra.run.dir={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "Warning" not in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.startswith("qtg: config error: population")
    assert not out.exists()
