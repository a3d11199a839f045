"""Does the terminal view slow the simulation? ``python -m qtg.bench.tui [--quick]``.

The same world runs N ticks at a time, alternating between three modes, after a warm-up
(compilation, and one short run of each mode):

* ``plain``: ``sim.run`` with no hook;
* ``hook``: with the :class:`qtg.hooks.tui.hook.TuiHook` alone (its per-tick ring and ``ui.fps``
  frames a second, no screen);
* ``tui``: the whole view, ``run_tui`` headless (Textual's headless driver still lays out
  and renders every frame at ``ui.fps``; only the terminal write is skipped).

Ticks per second are timed inside the run by a hook (the first 10% of each run's ticks,
and those of its first half second, are left out, so the app's start does not count);
each mode's figure is the median over the rounds. Prints JSON: per world the rates; the
slowdown in percent of ``hook`` and ``tui`` against ``plain`` (the target is at most 10%),
of the medians and as the median of each round's ratio (steadier on a machine shared with
other work); and the process CPU time per tick (all threads)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import qtg  # noqa: F401  (x64)


class _Clock:
    """Wall and process CPU time at every tick, to time the steady part of a run."""

    def on_start(self, sim) -> None:
        self.times = [(time.perf_counter(), time.process_time())]

    def on_tick(self, sim, r) -> None:
        self.times.append((time.perf_counter(), time.process_time()))

    def on_end(self, sim) -> None:
        pass

    def rates(self, skip: float = 0.1, settle: float = 0.5) -> tuple[float, float]:
        """Ticks per second of wall time, and process CPU milliseconds per tick (every
        thread: the simulation's, XLA's and the screen's), leaving out the first ``skip``
        of the ticks and those of the first ``settle`` seconds (the app's start)."""
        t = self.times
        k = max(int(len(t) * skip), next((i for i, x in enumerate(t) if x[0] - t[0][0] >= settle), 0))
        k = min(k, len(t) - 2)
        n = len(t) - 1 - k
        return n / (t[-1][0] - t[k][0]), 1000 * (t[-1][1] - t[k][1]) / n


def measure(name: str, overrides: list[str], ticks: int, rounds: int, fps: float, warmup: int) -> dict:
    """Ticks per second of one world in each mode; see the module doc."""
    from qtg.core.compose import load_config
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for
    from qtg.hooks.tui.app import run_tui
    from qtg.hooks.tui.hook import TuiHook

    cfg = load_config([*overrides, "hooks=[]", "ui=tui", f"ui.fps={fps}"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))

    def plain(n: int) -> float:
        clock = _Clock()
        sim.run(n, hooks=[clock])
        return clock.rates()

    def hook(n: int) -> float:
        clock = _Clock()
        sim.run(n, hooks=[clock, TuiHook(cfg.ui)])
        return clock.rates()

    def tui(n: int) -> float:
        clock = _Clock()
        ran = run_tui(sim, [clock, TuiHook(cfg.ui)], n, cfg.ui, exit_at_end=True, headless=True,
                      size=(160, 48))
        assert ran == n, f"the view ran {ran} of {n} ticks"
        return clock.rates()

    modes = {"plain": plain, "hook": hook, "tui": tui}
    t0 = time.perf_counter()
    sim.run(warmup)
    for run in modes.values():
        run(warmup)
    warm_s = time.perf_counter() - t0
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))  # cancel slow drifts
        for m in order:
            rate, ms = modes[m](ticks)
            rates[m].append(rate)
            cpu[m].append(ms)
    med = {m: statistics.median(v) for m, v in rates.items()}
    cpu_med = {m: statistics.median(v) for m, v in cpu.items()}
    # Runs next to each other share the machine's mood: the median of the per-round ratios
    # is the steadier figure on a shared machine.
    paired = {m: statistics.median(1 - a / b for a, b in zip(rates[m], rates["plain"]))
              for m in ("hook", "tui")}
    return {
        "world": name,
        "agents": sim.static.n_agents,
        "symbols": sim.static.n_symbols,
        "ticks_per_run": ticks,
        "rounds": rounds,
        "fps": fps,
        "warmup_s": round(warm_s, 1),
        "ticks_per_s": {m: round(v, 1) for m, v in med.items()},
        "ticks_per_s_rounds": {m: [round(x, 1) for x in v] for m, v in rates.items()},
        "slowdown_pct": {m: round(100 * (1 - med[m] / med["plain"]), 1) for m in ("hook", "tui")},
        "slowdown_pct_paired": {m: round(100 * v, 1) for m, v in paired.items()},
        "cpu_ms_per_tick": {m: round(v, 3) for m, v in cpu_med.items()},
        "extra_cpu_pct": {m: round(100 * (cpu_med[m] / cpu_med["plain"] - 1), 1) for m in ("hook", "tui")},
    }


WORLDS = {
    "small": ([], 2000),  # the default population: 120 agents, 10 symbols
    "seed_100k": (["population=seed_100k"], 150),
}
"""World name -> (config overrides, ticks per run)."""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--ticks", type=int, default=0, help="ticks per run (0: the world's default)")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="the small world only, short runs")
    args = p.parse_args(argv)
    worlds = ["small"] if args.quick else args.worlds
    out = {
        "bench": "tui",
        "backend": __import__("jax").default_backend(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "results": [],
    }
    for name in worlds:
        overrides, ticks = WORLDS[name]
        ticks = args.ticks or (ticks // 3 if args.quick else ticks)
        out["results"].append(measure(name, overrides, ticks, args.rounds, args.fps, warmup=min(ticks, 200)))
        print(json.dumps(out["results"][-1]), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
