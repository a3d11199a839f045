"""``python -m qtg.bench.soak``: a long run of a small market with its invariants checked.

    python -m qtg.bench.soak                          # 1,000,000 ticks, checks every 1,000
    python -m qtg.bench.soak --ticks 20000 --every 500 --shadow
    python -m qtg.bench.soak --engine exact --ticks 5000

Runs the default market (10 symbols, 20 market makers, 100 noise traders, news on) for
``--ticks`` ticks and, every ``--every`` ticks, checks:

* conservation: every agent's cash plus the lender's fees is the opening total, to the
  unit; every symbol's shares held plus the lender's unlent float is its outstanding;
* the borrow ledger: the lender's ``lent`` is the agents' borrows, within the claims and
  the pool; every short is borrowed; no cash below zero;
* the books: no symbol crossed (best bid < best ask); each side's resting orders in price
  priority (bids from the highest, asks from the lowest); every live order slot of an
  agent is a resting order of that agent, symbol, side, price and size, and every resting
  order is one agent's live slot;
* with ``--shadow``: a second engine of the other kind is fed the same order batches every
  tick; its fills must equal the run's, fill for fill, and its books (every resting order,
  FIFO within each level: time priority) must equal the run's at each check.

Prints one JSON object: ticks, seconds, ms per tick, checks passed, fills, orders, the
first violation (``null`` when none) and the machine. Exit code 1 on a violation. Not part
of the test suite (``tests/bench/test_soak.py`` runs it for a few thousand ticks).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from components.orders import Side


class Violation(AssertionError):
    """An invariant of the market did not hold."""


def opening_totals(state) -> dict:
    """What ``check_world`` holds a world to: its total cash in units (the agents', the
    lender's and the background pool's) and its shares held per symbol."""
    bg = state.background
    return {
        "cash": int(np.asarray(state.wallet.cash).sum()) + int(state.lender.cash) + (int(bg.cash) if bg is not None else 0),
        "shares": np.asarray(state.wallet.position).sum(axis=0) + (np.asarray(bg.position) if bg is not None else 0),
    }


def check_world(sim, totals: dict) -> None:
    """Conservation of cash and shares against ``opening_totals``, the borrow ledger, no
    short without its borrow, no negative cash. Raises Violation. The sums cannot wrap:
    config validation keeps the economy's cash within ``components.money.ECONOMY_MAX``."""
    import jax

    w = jax.tree.map(np.asarray, sim.state.wallet)
    lender = jax.tree.map(np.asarray, sim.state.lender)
    now = opening_totals(sim.state)
    if now["cash"] != totals["cash"]:
        raise Violation(f"cash not conserved: {now['cash']} != {totals['cash']}")
    if not (now["shares"] == totals["shares"]).all():
        raise Violation(f"shares not conserved: {now['shares'].tolist()} != {totals['shares'].tolist()}")
    lent = w.borrowed.sum(axis=0)
    if not (lender.lent == lent).all():
        raise Violation(f"borrow ledger out of step: lent {lender.lent.tolist()}, borrowed {lent.tolist()}")
    if not ((lent <= lender.claimed).all() and (lender.claimed <= np.asarray(sim.params.pool)).all()):
        raise Violation("borrows beyond the claims or the pool")
    if not (w.borrowed >= np.maximum(-w.position, 0)).all():
        raise Violation("a short without its borrow")
    if w.cash.min() < 0:
        raise Violation(f"negative cash: agent {int(w.cash.argmin())} has {int(w.cash.min())}")


def check_books(sim) -> None:
    """No crossed book, price priority per side, and the books equal the agents' live slots.
    Raises Violation."""
    from components.agents import NO_ORDER

    book = sim.engine.resting_orders()
    tob = sim.engine.top_of_book()
    for s in range(sim.static.n_symbols):
        bid, ask = int(tob.bid_price[s]), int(tob.ask_price[s])
        if bid and ask and bid >= ask:
            raise Violation(f"symbol {s} crossed: bid {bid} >= ask {ask}")
    check_priority(book)
    slots = sim.state.slots
    sid, ssym, sprice, srem = (np.asarray(a) for a in (slots.id, slots.symbol, slots.price, slots.remaining))
    live = sid != NO_ORDER
    agent, side = np.nonzero(live)
    want = sorted(zip(sid[live].tolist(), agent.tolist(), ssym[live].tolist(), side.tolist(),
                      sprice[live].tolist(), srem[live].tolist()))
    have = sorted(zip(*(book[k].tolist() for k in ("id", "agent", "symbol", "side", "price", "qty"))))
    if want != have:
        extra, missing = set(have) - set(want), set(want) - set(have)
        raise Violation(f"books and slots differ: {len(extra)} resting orders without a slot "
                        f"(e.g. {sorted(extra)[:1]}), {len(missing)} slots not resting (e.g. {sorted(missing)[:1]})")


def check_priority(book: dict) -> None:
    """Each (symbol, side) run of ``resting_orders()`` is in price priority: bids from the
    highest price down, asks from the lowest up. Raises Violation."""
    sym, side, price = book["symbol"], book["side"], book["price"]
    for i in range(1, len(price)):
        if sym[i] != sym[i - 1] or side[i] != side[i - 1]:
            continue
        worse = price[i] > price[i - 1] if side[i] == Side.BUY else price[i] < price[i - 1]
        if worse:
            raise Violation(f"price priority broken on symbol {sym[i]} side {side[i]}: "
                            f"{price[i - 1]} then {price[i]}")


class Shadow:
    """A hook feeding a second engine the run's order batches; its fills must equal the
    run's every tick, and its books the run's at each check."""

    name = "shadow"

    def __init__(self, engine) -> None:
        self.engine = engine

    def on_start(self, sim) -> None:
        pass

    def on_tick(self, sim, r) -> None:
        res = self.engine.process(r.orders)
        mine, theirs = np.asarray(res.fills.price), np.asarray(r.fills.price)
        same = len(mine) == len(theirs) and all(
            np.array_equal(np.asarray(getattr(res.fills, f)), np.asarray(getattr(r.fills, f)))
            for f in ("taker_id", "maker_id", "symbol", "price", "qty"))
        if not same:
            raise Violation(f"tick {r.tick}: the shadow engine's fills differ ({len(mine)} against {len(theirs)})")

    def check(self, sim) -> None:
        a, b = self.engine.resting_orders(), sim.engine.resting_orders()
        if not all(np.array_equal(a[k], b[k]) for k in a):
            raise Violation("the shadow engine's books differ (price-time priority)")

    def on_end(self, sim) -> None:
        pass


def soak(ticks: int, every: int, engine: str = "fast", shadow: bool = False, seed: int = 0,
         progress: bool = True) -> dict:
    """Run the default market for ``ticks`` ticks, checking every ``every``; the result."""
    import qtg  # noqa: F401
    from qtg.bench import machine
    from qtg.core.config import to_config
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for
    from systems.matching import make_engine

    cfg = to_config({"engine": {"name": engine}, "seed": seed, "hooks": [], "run": {"ticks": ticks}})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    hooks = []
    twin = None
    if shadow:
        from components.orders import STP

        other = "exact" if engine == "fast" else "fast"
        twin = Shadow(make_engine(other, cfg.market.ticks(), int(STP[cfg.engine.stp.upper()])))
        hooks.append(twin)
    totals = opening_totals(world.state)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=ticks, unit="tick", dynamic_ncols=True, mininterval=1.0, file=sys.stderr)
    checks, violation, orders, fills = 0, None, 0, 0
    counter = _Counter()
    t0 = time.perf_counter()
    try:
        while sim.tick < ticks:
            n = min(every, ticks - sim.tick)
            sim.run(n, hooks=[*hooks, counter])
            check_world(sim, totals)
            check_books(sim)
            if twin is not None:
                twin.check(sim)
            checks += 1
            if bar is not None:
                bar.update(n)
                bar.set_postfix_str(f"checks={checks} fills={counter.fills:,}", refresh=False)
    except Violation as e:
        violation = f"tick {sim.tick}: {e}"
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    orders, fills = counter.orders, counter.fills
    return {
        "benchmark": "soak", "ticks": sim.tick, "every": every, "engine": engine, "shadow": shadow,
        "seed": seed, "agents": world.static.n_agents, "symbols": world.static.n_symbols,
        "seconds": round(seconds, 1), "ms_per_tick": round(1000 * seconds / max(sim.tick, 1), 3),
        "checks_passed": checks, "orders": orders, "fills": fills, "violation": violation,
        "last_prices": [int(x) / 10_000 for x in np.asarray(sim.state.market.last)],
        "machine": machine(),
    }


class _Counter:
    name = "counter"

    def __init__(self) -> None:
        self.orders = self.fills = 0

    def on_start(self, sim) -> None:
        pass

    def on_tick(self, sim, r) -> None:
        self.orders += int(r.accepted)
        self.fills += len(r.fills)

    def on_end(self, sim) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=1_000, help="ticks between checks (default 1000)")
    ap.add_argument("--engine", choices=["fast", "exact"], default="fast")
    ap.add_argument("--shadow", action="store_true", help="feed the other engine the same batches and compare")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the JSON to this file")
    args = ap.parse_args(argv)
    if args.ticks < 1 or args.every < 1:
        print("qtg: --ticks and --every must be >= 1", file=sys.stderr)
        return 2
    result = soak(args.ticks, args.every, args.engine, args.shadow, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")
    return 1 if result["violation"] else 0


if __name__ == "__main__":
    sys.exit(main())
