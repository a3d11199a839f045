"""chart.png draws every symbol (a cell per symbol, or every symbol as a line in its sector's
panel), keeps legends off the data, and names every agent in its title."""

from __future__ import annotations

import types

import numpy as np
import pytest

from components.money import SCALE
from qtg.reports import chart as chart_mod
from qtg.reports.analysis import symbol_groups
from qtg.reports.chart import chart_figure


def synthetic(n_symbols: int, sectors: list[str], ticks: int = 120, pool: int = 0, seed: int = 0):
    """A static layout and a recorded history (units) of ``n_symbols`` random walks."""
    rng = np.random.default_rng(seed)
    mid = 100 * np.exp(np.cumsum(0.002 * rng.standard_normal((ticks, n_symbols)), axis=0))
    last = np.round(mid * SCALE / 100) * 100
    hist = {
        "last": last.astype(np.int64), "high": (last + 100).astype(np.int64), "low": (last - 100).astype(np.int64),
        "bid": (last - 100).astype(np.int64), "ask": (last + 100).astype(np.int64),
        "fair": mid * SCALE, "volume": rng.integers(0, 50, (ticks, n_symbols)),
        "equity": np.cumsum(rng.standard_normal((ticks, 2)), axis=0) * SCALE + 1e9,
    }
    names = tuple(f"S{i:03d}" for i in range(n_symbols))
    distinct = tuple(dict.fromkeys(sectors))
    kinds = (types.SimpleNamespace(name="market_maker", count=4), types.SimpleNamespace(name="noise", count=36))
    static = types.SimpleNamespace(
        symbols=names, n_symbols=n_symbols, sectors=distinct, sector_of=tuple(distinct.index(s) for s in sectors),
        kinds=kinds, n_agents=40, background=types.SimpleNamespace(members=pool) if pool else None)
    return static, hist


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _price_axes(fig):
    return [ax.get_label() for ax in fig.axes if ax.get_label().startswith("price ")]


def test_a_12_symbol_chart_has_a_cell_for_every_symbol():
    static, hist = synthetic(12, ["tech"] * 6 + ["energy"] * 6)
    fig = chart_figure(static, hist)
    assert _price_axes(fig) == [f"price S{i:03d}" for i in range(12)]
    assert len(fig.axes) == 12 * 5 + 1  # price, RSI, MACD, spread, volume per symbol; P&L by kind
    for ax in fig.axes:
        if ax.get_label().startswith("price "):
            assert [line.get_label() for line in ax.lines][:2] == ["last trade", "fair value"]
            assert ax.get_legend() is None  # one legend for the figure, outside the axes
    assert len(fig.legends) == 1
    size = fig.get_size_inches()
    assert tuple(size) == pytest.approx((4.8 * 4 + 2.2, 4.4 * 3 + 3.4))  # 4 columns, 3 rows


def test_past_the_grid_every_symbol_is_a_line_in_its_sectors_panel():
    sectors = [f"sector{i % 5}" for i in range(100)]
    static, hist = synthetic(100, sectors)
    fig = chart_figure(static, hist)
    panels = [ax for ax in fig.axes if ax.get_label().startswith("sector ")]
    assert [ax.get_label() for ax in panels] == [f"sector sector{i}" for i in range(5)]
    drawn = [line.get_label() for ax in panels for line in ax.lines if not line.get_label().startswith("_")]
    assert sorted(drawn) == list(static.symbols)  # each symbol once
    assert all(len([ln for ln in ax.lines if not ln.get_label().startswith("_")]) == 20 for ax in panels)
    assert all(ax.get_legend() is None for ax in panels)


@pytest.mark.parametrize("n_symbols", [3, 20])
def test_volume_is_one_step_outline_of_every_ticks_volume(n_symbols):
    """A symbol's volume panel (a sector's past the grid) is one artist, a bar one tick wide
    centred on each tick: not one artist per tick (10,000 in a default run's chart)."""
    from matplotlib.patches import StepPatch

    static, hist = synthetic(n_symbols, ["a"] * (n_symbols // 2) + ["b"] * (n_symbols - n_symbols // 2))
    fig = chart_figure(static, hist)
    cells = fig.axes[4:-1:5] if n_symbols <= chart_mod.GRID_MAX_SYMBOLS else fig.axes[1:-1:2]
    want = hist["volume"] if n_symbols <= chart_mod.GRID_MAX_SYMBOLS else np.stack(
        [hist["volume"][:, :n_symbols // 2].sum(axis=1), hist["volume"][:, n_symbols // 2:].sum(axis=1)], axis=1)
    assert len(cells) == want.shape[1]
    for j, ax in enumerate(cells):
        assert ax.get_ylabel() == "volume" and len(ax.patches) == 1 and isinstance(ax.patches[0], StepPatch)
        values, edges, baseline = ax.patches[0].get_data()
        assert np.array_equal(values, want[:, j]) and baseline == 0
        assert np.array_equal(edges, np.arange(len(want) + 1) - 0.5)


def test_symbol_groups_split_a_large_sector():
    assert symbol_groups(["a", "b", "a"]) == [("a", [0, 2]), ("b", [1])]
    groups = symbol_groups(["market"] * 60)
    assert [(t, len(m)) for t, m in groups] == [("market 1/3", 20), ("market 2/3", 20), ("market 3/3", 20)]
    assert sum((m for _, m in groups), []) == list(range(60))


def test_the_title_counts_the_background_pool():
    static, hist = synthetic(3, ["market"] * 3, pool=87_500)
    fig = chart_figure(static, hist)
    assert fig._suptitle.get_text() == (
        "qtg run: 120 ticks, 3 symbols, 87,540 agents (40 with rows, 87,500 in the background pool)")
    static, hist = synthetic(3, ["market"] * 3)
    assert chart_figure(static, hist)._suptitle.get_text() == "qtg run: 120 ticks, 3 symbols, 40 agents"


def test_the_pnl_legend_sits_outside_its_axes():
    static, hist = synthetic(2, ["market"] * 2)
    fig = chart_figure(static, hist)
    pnl = fig.axes[-1]
    legend = pnl.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["market_maker (4)", "noise (36)"]
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= pnl.get_window_extent().x1


def test_chart_module_limits_are_documented():
    assert chart_mod.GRID_MAX_SYMBOLS >= 12 and chart_mod.__doc__ and "GRID_MAX_SYMBOLS" in chart_mod.__doc__
