"""Throughput of the whole tick on the device (``qtg.core.rollout``): market-ticks per
second of one jitted ``vmap`` over markets of a ``lax.scan`` over ticks.

    python -m qtg.bench --only rollout
    python -m qtg.bench.rollout --markets 1 64 1024 --market small default --ticks 50
    python -m qtg.bench.rollout --split --market small --markets 1024 --ticks 20   # the match's share

Markets: ``small`` is one symbol and 32 agents (2 market makers, 30 noise traders, book
capacity 32 per side); ``default`` is ``python -m qtg.run``'s market (50 market makers and 100
noise traders on 10 symbols, with news and shorts; capacity 256). Every market of a call has its own seed
(:func:`qtg.core.rollout.replicate`). Reported per market and market count: market-ticks/s
(markets x ticks / seconds, the median of ``repeats`` timed calls after one compiling
call), the compile time (the first call less a timed one), bytes of state per market, and
the orders refused for a full book side (0: the same trades as ``engine=fast``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

MARKETS = {
    "small": (["population.market_maker.count=2", "population.noise.count=30", "market.symbols=[ACME]"], 32),
    "default": ([], 256),
}
"""Market name -> (``python -m qtg.run`` overrides, book capacity per side)."""


def market_world(name: str):
    """The world of market ``name`` (composed as ``python -m qtg.run`` composes it) and its
    state with empty books."""
    from qtg.core import rollout as ro
    from qtg.core.compose import load_config
    from qtg.core.world import build_world

    overrides, capacity = MARKETS[name]
    world = build_world(load_config(overrides))
    return world, ro.with_books(world.state, world.static, capacity)


def bench_rollout(markets=(1, 64, 1024), names=("small", "default"), ticks: int = 50, repeats: int = 3,
                  seed: int = 0) -> list[dict]:
    """One row per (market, count): ``market_ticks_per_s``, ``compile_s``, ``bytes_per_market``,
    ``ms_per_tick`` (one tick of all the markets), ``fills_per_market_tick`` and ``book_full``."""
    import jax
    import numpy as np

    from qtg.core import rollout as ro
    from qtg.core import schedule as sch

    run = jax.jit(ro.rollout_markets, static_argnums=(0, 3, 4), compiler_options=sch.compiler_options())
    rows = []
    for name in names:
        world, state = market_world(name)
        per_market = sum(np.asarray(a).nbytes for a in jax.tree.leaves(state) if hasattr(a, "dtype")
                         and not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key))
        for n in markets:
            params, states = ro.replicate(world.params, state, range(seed, seed + n))
            t0 = time.perf_counter()
            jax.block_until_ready(run(world.static, params, states, ticks, 0))
            first = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                _, out = jax.block_until_ready(run(world.static, params, states, ticks, 0))
                times.append(time.perf_counter() - t0)
            sec = float(np.median(times))
            print(f"  {name} market x {n}: {n * ticks / sec:,.0f} market-ticks/s", file=sys.stderr)
            rows.append({
                "market": name, "agents": world.static.n_agents, "symbols": world.static.n_symbols,
                "capacity": state.books.capacity, "markets": n, "ticks": ticks,
                "market_ticks_per_s": round(n * ticks / sec), "ms_per_tick": round(sec / ticks * 1e3, 3),
                "compile_s": round(first - sec, 2), "bytes_per_market": int(per_market),
                "fills_per_market_tick": round(float(np.asarray(out.fills).mean()), 2),
                "book_full": int(np.asarray(out.book_full).sum()),
            })
    return rows


def _without_match(static, params, states, ticks):
    """The rollout of the same markets with a match stage that fills nothing (the rest of
    the tick alone): the final states."""
    import jax
    import jax.numpy as jnp

    from components.frame import Frame
    from components.orders import Status
    from qtg.core import rollout as ro
    from qtg.core import schedule as sch

    def nothing(static, params, state, frame, key):
        del params, key
        s = static.n_symbols
        return state, frame.replace(fills=jnp.zeros((6, 1), jnp.int64), updates=jnp.full((4, 1), -1, jnp.int64),
                                    book=jnp.zeros((4, s), jnp.int64), status=jnp.zeros((len(Status),), jnp.int64))

    schedule = tuple(sch.Stage("match", nothing) if st.name == "match" else st for st in ro.device_schedule(0))
    tick = sch.tick_function(schedule, tuple(range(len(schedule))))

    def one(p, s):
        return jax.lax.scan(lambda st, _: (tick(static, p, st, Frame())[0], None), s, None, length=ticks)[0]

    return jax.vmap(one)(params, states)


def bench_split(name: str = "small", markets: int = 1024, ticks: int = 20) -> dict:
    """Microseconds per market-tick of the whole tick and of the tick without its match
    (a match stage that fills nothing), ``markets`` markets of ``name``; each the better of
    two timed calls after a compiling one."""
    import jax

    from qtg.core import rollout as ro
    from qtg.core import schedule as sch

    world, state = market_world(name)
    params, states = ro.replicate(world.params, state, range(markets))
    full = jax.jit(ro.rollout_markets, static_argnums=(0, 3, 4), compiler_options=sch.compiler_options())
    bare = jax.jit(_without_match, static_argnums=(0, 3), compiler_options=sch.compiler_options())
    out = {"market": name, "markets": markets, "ticks": ticks}
    for label, call in (("us_per_market_tick", lambda: full(world.static, params, states, ticks, 0)),
                        ("us_per_market_tick_without_match", lambda: bare(world.static, params, states, ticks))):
        jax.block_until_ready(call())
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            jax.block_until_ready(call())
            best = min(best, time.perf_counter() - t0)
        out[label] = round(best / (markets * ticks) * 1e6, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.rollout", description=__doc__.split("\n\n")[0])
    ap.add_argument("--markets", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--market", nargs="+", choices=sorted(MARKETS), default=["small", "default"])
    ap.add_argument("--ticks", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--split", action="store_true",
                    help="instead: us per market-tick with and without the match, at the first --markets count")
    args = ap.parse_args(argv)
    import qtg  # noqa: F401
    from qtg.bench import machine

    if args.split:
        rows = [bench_split(m, args.markets[0], args.ticks) for m in args.market]
        print(json.dumps({"machine": machine(), "split": rows}, indent=2))
        return 0
    rows = bench_rollout(tuple(args.markets), tuple(args.market), args.ticks, args.repeats)
    print(json.dumps({"machine": machine(), "rollout": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
