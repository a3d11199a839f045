"""Run outputs: ``summary.json``, the CSV files and the terminal table (``chart.png`` is :mod:`qtg.reports.chart`)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from components.money import SCALE, to_float
from components.orders import Reason, Status
from components.world import WorldState
from qtg.core.config import Config
from qtg.core.files import atomic_open, write_text
from qtg.core.sim import Simulation
from qtg.hooks import Recorder


def _cur(units) -> float:
    """Units -> currency, rounded to the unit (exact for display)."""
    return round(to_float(units), 4)


def summarize(cfg: Config, initial: WorldState, sim: Simulation, rec: Recorder, elapsed: float) -> dict:
    """Everything a person asks after a run, as JSON-able data (currency as floats)."""
    from qtg.reports.portfolio import portfolio_summary
    from qtg.reports.risk import excess_returns, summarize_excess, summarize_groups
    from systems.measure import equity, marks
    from systems.risk import risk_metrics

    static, state = sim.static, sim.state
    hist = rec.arrays()
    cash0, cash1 = np.asarray(initial.wallet.cash), np.asarray(state.wallet.cash)
    pos0, pos1 = np.asarray(initial.wallet.position), np.asarray(state.wallet.position)
    start_marks = np.asarray(initial.market.last, np.float64)
    eq0 = cash0 + pos0 @ start_marks
    eq1 = np.asarray(equity(state))
    pnl = (eq1 - eq0) / SCALE

    kinds = {}
    for k in static.kinds:
        p = pnl[k.start : k.stop]
        kinds[k.name] = {
            "agents": k.count,
            "pnl_total": round(float(p.sum()), 2),
            "pnl_mean": round(float(p.mean()), 2),
            "pnl_min": round(float(p.min()), 2),
            "pnl_max": round(float(p.max()), 2),
            "cash_end": _cur(cash1[k.start : k.stop].sum()),
            "shares_end": int(pos1[k.start : k.stop].sum()),
            "trades": int(rec.trades[k.start : k.stop].sum()),
        }

    groups = [(k.name, k.start, k.stop) for k in static.kinds]
    risk = summarize_groups(risk_metrics(static.risk, state.risk), groups)
    total, hold = excess_returns(cash0, pos0, start_marks, np.asarray(marks(state)), eq1)

    volume = hist["volume"].sum(axis=0) if len(hist["volume"]) else np.zeros(static.n_symbols)
    prices = {}
    for s, name in enumerate(static.symbols):
        last = hist["last"][:, s]
        prices[name] = {
            "initial": _cur(start_marks[s]),
            "last": _cur(last[-1]),
            "high": _cur(last.max()),
            "low": _cur(last.min()),
            "best_bid": _cur(hist["bid"][-1, s]),
            "best_ask": _cur(hist["ask"][-1, s]),
            "volume": int(volume[s]),
            "vwap": _cur(rec.notional[s] / volume[s]) if volume[s] else None,
        }

    # Kinds with an execution report (VWAP executors): achieved vs market VWAP.
    from systems.strategies import registry

    strategies = registry()
    market_vwap = np.where(volume > 0, rec.notional / np.maximum(volume, 1) / SCALE, np.nan)
    execution = {}
    for k in static.kinds:
        report = getattr(strategies[k.name], "execution_report", None)
        if report is not None:
            full = report(sim.params.kinds[k.name], cash0[k.start : k.stop], cash1[k.start : k.stop],
                          pos1[k.start : k.stop], market_vwap)
            execution[k.name] = {g: v for g, v in full.items() if g != "agents"}

    seconds = hist["seconds"]
    # The background pool (tier 3) is accounted in aggregate, outside the agents' rows.
    bg = state.background
    pool_cash = int(bg.cash) - int(bg.opening_cash) if bg is not None else 0
    pool_shares = np.asarray(bg.position) - np.asarray(bg.opening_position) if bg is not None else 0
    return {
        "run": {
            "seed": cfg.seed,
            "engine": cfg.engine.name,
            "stp": cfg.engine.stp,
            "ticks": len(seconds),
            "agents": static.n_agents,  # with rows (tiers 1 and 2)
            "background_pool": static.background.members if static.background is not None else 0,  # tier 3
            "symbols": list(static.symbols),
            "elapsed_s": round(elapsed, 3),
            "ms_per_tick_median": round(float(np.median(seconds)) * 1e3, 3),
        },
        "orders": {
            "submitted": rec.submitted,
            "accepted": rec.accepted,
            "rejected_pretrade": {
                Reason(i).name: int(c) for i, c in enumerate(rec.rejects) if c and i
            },
            "outcomes": {Status(i).name: int(c) for i, c in enumerate(rec.status) if c and i},
        },
        "fills": int(hist["fills"].sum()),
        "volume": int(volume.sum()),
        "prices": prices,
        "pnl_by_kind": kinds,
        # Per kind: each agent's total return minus its opening portfolio's, held untouched
        # to the end marks (qtg.reports.risk.excess_returns).
        "excess_by_kind": summarize_excess(total, hold, groups),
        "execution": execution,  # market VWAP over the whole run
        "risk_by_kind": {
            "var_window": static.risk.var_window,
            "var_confidence": static.risk.var_confidence,
            "periods_per_year": static.risk.periods_per_year,
            **risk,
        },
        "engine": sim.engine.stats(),  # resting orders, levels; fast: capacities and grows
        "short_selling": short_selling_summary(sim),
        "portfolio": portfolio_summary(static, state),
        "events": len(rec.events),
        "tiers": tiers_summary(sim),
        "conservation": {
            "cash": bool(cash0.sum() == cash1.sum() + int(state.lender.cash) + pool_cash),
            "shares": bool((pos0.sum(axis=0) == pos1.sum(axis=0) + pool_shares).all()),
            # Every short is borrowed, the ledger adds up, and no pool lends more than it has.
            "borrow_ledger": bool(
                (np.asarray(state.lender.lent) == np.asarray(state.wallet.borrowed).sum(axis=0)).all()
                and (np.asarray(state.wallet.borrowed) >= np.maximum(-pos1, 0)).all()
                and (np.asarray(state.lender.claimed) <= np.asarray(sim.params.pool)).all()
            ),
        },
        "fill_hash": rec.fill_hash,
    }


def tiers_summary(sim: Simulation) -> dict:
    """Agents per tier: tier 1 (decide every tick) and tier 2 (reactive) by kind; tier 3,
    the background pool, with its aggregate account (:func:`background_summary`)."""
    out = {}
    for tier in (1, 2):
        kinds = {k.name: k.count for k in sim.static.kinds if k.tier == tier}
        out[f"tier_{tier}"] = {"agents": sum(kinds.values()), "kinds": kinds}
    if sim.static.background is not None:
        out["tier_3"] = background_summary(sim.static, sim.params, sim.state)
    else:
        out["tier_3"] = {"members": 0}
    out["total"] = out["tier_1"]["agents"] + out["tier_2"]["agents"] + out["tier_3"]["members"]
    return out


def background_summary(static, params, state) -> dict:
    """The pool's aggregate account (host): volumes, VWAPs and P&L at the last price."""
    bs, st = static.background, jax.tree.map(np.asarray, state.background)
    last = np.asarray(state.market.last)
    vwap = lambda v, q: [round(float(a) / float(b) / 1e4, 4) if b else None for a, b in zip(v, q)]  # noqa: E731
    opening = int(st.opening_cash) + int((st.opening_position * np.asarray(params.initial_price)).sum())
    now = int(st.cash) + int((st.position * last).sum())
    return {
        "members": bs.members,
        "orders_sent": int(st.sent.sum()),
        "buy_fraction": round(float(st.sent[0]) / max(int(st.sent.sum()), 1), 4),
        "bought": {s: int(x) for s, x in zip(static.symbols, st.bought)},
        "sold": {s: int(x) for s, x in zip(static.symbols, st.sold)},
        "buy_vwap": dict(zip(static.symbols, vwap(st.buy_value, st.bought))),
        "sell_vwap": dict(zip(static.symbols, vwap(st.sell_value, st.sold))),
        "pnl": round((now - opening) / 1e4, 2),
        "position": {s: int(x) for s, x in zip(static.symbols, st.position)},
    }


def short_selling_summary(sim: Simulation) -> dict:
    """The borrow ledger at the end of a run: per symbol pool, lent and claimed shares,
    shorts held; fees paid to the lender and left unpaid (currency)."""
    state, params = sim.state, sim.params
    pos = np.asarray(state.wallet.position)
    lender = jax.tree.map(np.asarray, state.lender)
    return {
        "enabled": sim.static.short_selling,
        "locate": sim.static.locate,
        "fees_paid": _cur(lender.cash),
        "fees_unpaid": _cur(lender.unpaid),
        "agents_short": int((pos < 0).any(axis=1).sum()),
        "by_symbol": {
            name: {
                "pool": int(params.pool[s]),
                "lent": int(lender.lent[s]),
                "claimed": int(lender.claimed[s]),
                "short_interest": int(np.maximum(-pos[:, s], 0).sum()),
                "outstanding": int(params.outstanding[s]),
            }
            for s, name in enumerate(sim.static.symbols)
        },
    }


PRICE_COLUMNS = ("tick", "symbol", "sector", "last", "bid", "ask", "mid", "fair", "volume", "tick_size")
EVENT_COLUMNS = ("tick", "kind", "target", "size", "symbols", "fair_before", "fair_after")


def history_marks(h: dict[str, np.ndarray]) -> np.ndarray:
    """The marks of a recorded history (``Recorder.arrays()``): the mid where both sides
    quote, else the last price (``systems.measure.marks``' rule). f64[T, S] units"""
    both = (h["bid"] > 0) & (h["ask"] > 0)
    return np.where(both, (h["bid"] + h["ask"]) / 2.0, h["last"]).astype(np.float64)


def write_prices(path: Path, sim: Simulation, rec: Recorder) -> None:
    """prices.csv: one row per tick and symbol (currency; 0 where a book side is empty;
    mid falls back to the last price; fair is the fair value in force after the tick;
    tick_size is the symbol's price increment, so a reader can express the spread in ticks)."""
    import csv

    h = rec.arrays()
    static = sim.static
    mid = history_marks(h)
    tick_size = [f"{t / SCALE:.4f}" for t in np.asarray(sim.params.tick_size)]
    sector = [static.sectors[static.sector_of[s]] if static.sector_of else static.sectors[0]
              for s in range(static.n_symbols)]
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PRICE_COLUMNS)
        for t in range(len(h["last"])):
            for s, name in enumerate(static.symbols):
                w.writerow([t, name, sector[s], f"{h['last'][t, s] / SCALE:.4f}", f"{h['bid'][t, s] / SCALE:.4f}",
                            f"{h['ask'][t, s] / SCALE:.4f}", f"{mid[t, s] / SCALE:.5f}",
                            f"{h['fair'][t, s] / SCALE:.4f}", int(h["volume"][t, s]), tick_size[s]])


def write_events(path: Path, rec: Recorder) -> None:
    """events.csv: one row per news event with its effect on fair value (currency)."""
    import csv

    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EVENT_COLUMNS)
        for tick, kind, target, size, symbols, before, after in rec.events:
            w.writerow([tick, kind, target, f"{size:.6g}", symbols, f"{before:.4f}", f"{after:.4f}"])


def write_summary(path: Path, summary: dict) -> None:
    """Write atomically (:mod:`qtg.core.files`): a reader never sees half a file, and a
    failure leaves the previous summary.json as it was."""
    write_text(path, json.dumps(summary, indent=2) + "\n")


def agents_text(rows: int, pool: int = 0) -> str:
    """A run's agents in words: ``120 agents``, or with a background pool (tier 3, no rows)
    ``100,000 agents (12,500 with rows, 87,500 in the background pool)``."""
    if not pool:
        return f"{rows:,} agents"
    return f"{rows + pool:,} agents ({rows:,} with rows, {pool:,} in the background pool)"


def table(summary: dict) -> str:
    """The end-of-run table, plain text."""
    r = summary["run"]
    lines = [
        f"qtg: {r['ticks']} ticks, {agents_text(r['agents'], r.get('background_pool', 0))}, "
        f"engine={r['engine']}, seed={r['seed']}, "
        f"{r['elapsed_s']:.1f} s ({r['ms_per_tick_median']:.2f} ms/tick median)",
        f"orders {summary['orders']['submitted']:,} sent, {summary['orders']['accepted']:,} "
        f"to the book; {summary['fills']:,} fills, {summary['volume']:,} shares traded",
        "",
        f"{'symbol':<8}{'open':>10}{'last':>10}{'low':>10}{'high':>10}{'bid':>10}{'ask':>10}{'vwap':>10}{'volume':>12}",
    ]
    for name, p in summary["prices"].items():
        vwap = f"{p['vwap']:.2f}" if p["vwap"] is not None else "-"
        lines.append(
            f"{name:<8}{p['initial']:>10.2f}{p['last']:>10.2f}{p['low']:>10.2f}{p['high']:>10.2f}"
            f"{p['best_bid']:>10.2f}{p['best_ask']:>10.2f}{vwap:>10}{p['volume']:>12,}"
        )
    risk = summary["risk_by_kind"]
    lines += [
        "",
        f"{'kind':<20}{'agents':>8}{'P&L total':>14}{'mean':>12}{'min':>12}{'max':>12}"
        f"{'Sharpe':>9}{'max DD':>9}{'VaR':>9}",
    ]

    def med(name: str, metric: str, scale: float = 1.0, fmt: str = ".3f") -> str:
        v = risk[name][metric]["median"]
        return "-" if v is None else format(v * scale, fmt)

    for name, k in summary["pnl_by_kind"].items():
        lines.append(
            f"{name:<20}{k['agents']:>8,}{k['pnl_total']:>14,.2f}{k['pnl_mean']:>12,.2f}"
            f"{k['pnl_min']:>12,.2f}{k['pnl_max']:>12,.2f}"
            f"{med(name, 'sharpe'):>9}{med(name, 'max_drawdown', 100, '.2f') + '%':>9}"
            f"{med(name, 'var', 100, '.3f') + '%':>9}"
        )
    lines.append(
        f"(Sharpe, max drawdown and {risk['var_confidence']:.0%} VaR over {risk['var_window']} "
        "ticks: medians over each kind's agents; Sharpe per tick unless risk.periods_per_year is set)"
    )
    t = summary.get("tiers")
    if t:
        pool = t["tier_3"]
        line = (f"tiers: {t['tier_1']['agents']:,} tier 1 (every tick), {t['tier_2']['agents']:,} tier 2 "
                f"(reactive), {pool['members']:,} in the background pool; {t['total']:,} in all")
        if pool["members"]:
            line += (f"\npool: {pool['orders_sent']:,} orders ({pool['buy_fraction']:.1%} buys), "
                     f"P&L {pool['pnl']:,.2f}")
        lines += ["", line]
    c = summary["conservation"]
    ok = lambda key: "ok" if c[key] else "BROKEN"  # noqa: E731
    lines += ["", f"conservation: cash {ok('cash')}, shares {ok('shares')}, borrow ledger {ok('borrow_ledger')}"]
    return "\n".join(lines)


CHART_INDICATORS = {"bollinger": (20, 2.0), "rsi": 14, "macd": (12, 26, 9)}
"""The indicators drawn in chart.png (textbook defaults)."""


def indicators_of(hist: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The chart's indicators over a recorded history (``Recorder.arrays``), replayed by
    :func:`systems.indicators.replay_indicators`: arrays [T, S] (currency or index points),
    NaN where not ready."""
    from systems.indicators import replay_indicators

    bars = np.stack([hist["last"], hist["high"], hist["low"]], axis=1)  # [T, 3, S] units
    return replay_indicators(CHART_INDICATORS["bollinger"], CHART_INDICATORS["rsi"], CHART_INDICATORS["macd"], bars)


def write_agents_table(path: Path, initial: WorldState, sim: Simulation, rec: Recorder) -> None:
    """One CSV row per agent: kind, P&L, risk statistics, trades, cash and positions."""
    import csv

    from qtg.reports.portfolio import portfolio_columns
    from systems.measure import equity
    from systems.risk import risk_metrics

    static, state = sim.static, sim.state
    m = jax.tree.map(np.asarray, risk_metrics(static.risk, state.risk))
    cash0 = np.asarray(initial.wallet.cash)
    eq0 = cash0 + np.asarray(initial.wallet.position) @ np.asarray(initial.market.last, np.float64)
    eq1 = np.asarray(equity(state))
    cash1, pos1 = np.asarray(state.wallet.cash), np.asarray(state.wallet.position)
    kind_of = np.empty(static.n_agents, object)
    for k in static.kinds:
        kind_of[k.start : k.stop] = k.name
    cols = portfolio_columns(static, state)  # beta, exposures (currency, shorts negative)
    fees = np.asarray(state.wallet.fees)
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["agent", "kind", "pnl", "equity", "cash", "trades", "sharpe", "max_drawdown",
                    "var", "borrow_fees", *cols, *(f"position_{s}" for s in static.symbols)])
        for i in range(static.n_agents):
            w.writerow([i, kind_of[i], f"{(eq1[i] - eq0[i]) / SCALE:.4f}", f"{eq1[i] / SCALE:.4f}",
                        f"{cash1[i] / SCALE:.4f}", int(rec.trades[i]),
                        f"{m.sharpe[i]:.6g}" if m.sharpe_ready[i] else "",
                        f"{m.max_drawdown[i]:.6g}", f"{m.var[i]:.6g}" if m.var_ready[i] else "",
                        f"{fees[i] / SCALE:.4f}",
                        *(f"{c[i]:.6g}" if np.isfinite(c[i]) else "" for c in cols.values()),
                        *(int(x) for x in pos1[i])])
