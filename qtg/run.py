"""``python -m qtg.run [overrides]``: run a simulation from the Hydra config.

Examples::

    python -m qtg.run
    python -m qtg.run population.noise.count=500 run.ticks=2000 seed=7
    python -m qtg.run engine=exact market.symbols=[ACME,BOLT]
    python -m qtg.run +experiment=large
    python -m qtg.run ui=tui                       # watch it live in the terminal
    python -m qtg.run snapshot.every=500 run.ticks=5000
    python -m qtg.run resume=outputs/.../snapshots/tick_0000500.qtgsnap

A bad override stops before anything runs with one line on stderr and exit code 2.
Outputs go to Hydra's run directory: ``summary.json``, ``chart.png``, ``config.json``, and
the hooks' files (``qtg.sqlite``, ``metrics.json``). A resumed run continues in the
snapshot's run directory when it still exists.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.compose import CONF_DIR, load_config
from qtg.core.config import Config, ConfigError, register, to_config

EXIT_CONFIG = 2
log = logging.getLogger("qtg")
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--shell-completion", "-sc"}


def run_job(cfg: Config, out_dir: Path) -> dict:
    """Build (or resume) the world, run it with the configured hooks, write the run
    directory: summary.json, prices.csv, events.csv, agents.csv, config.json and the charts."""
    from qtg.core.config import config_dict
    from qtg.core.sim import Simulation
    from qtg.core.snapshot import Snapshotter, read_snapshot
    from qtg.core.world import build_world, make_engine_for
    from qtg.hooks import HookContext, Recorder, make_hooks
    from qtg.reports import analysis
    from qtg.reports.impact import ImpactRecorder
    from qtg.reports.portfolio import plot_correlation
    from qtg.reports.summary import (
        chart,
        summarize,
        table,
        write_agents_table,
        write_events,
        write_prices,
        write_summary,
    )

    snap = None
    if cfg.resume:
        snap = read_snapshot(cfg.resume)  # SnapshotError: a clear one-line refusal
        cfg = snap.merged_config(cfg)
        if snap.run_dir is not None and snap.run_dir.is_dir():
            out_dir = snap.run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    world = build_world(cfg)
    engine = make_engine_for(cfg, world.static)
    if snap is not None:
        sim = snap.restore(world, engine)
        log.info("resumed %s at tick %d in %s", cfg.resume, sim.tick, out_dir)
    else:
        sim = Simulation(world.static, world.params, world.state, engine)
    tui = cfg.ui.name == "tui" or "tui" in cfg.hooks
    names = [n for n in cfg.hooks if not (tui and n == "progress")]  # a bar would garble the screen
    if tui and "tui" not in names:
        names.append("tui")
    rec, impact = Recorder(), ImpactRecorder()
    hooks = [rec, impact, *make_hooks(names, HookContext(cfg, out_dir))]
    snapshots = Snapshotter(out_dir / cfg.snapshot.dir, cfg, hooks, every=cfg.snapshot.every,
                            at_end=cfg.snapshot.at_end, keep=cfg.snapshot.keep, run_dir=out_dir)
    hooks.append(snapshots)  # last: it records every other hook's cursor after the tick
    if snap is not None:
        snap.load_hooks(hooks)
    remaining = max(0, cfg.run.ticks - sim.tick)
    t0 = time.perf_counter()
    if tui:
        from qtg.hooks.tui import run_tui

        ran = run_tui(sim, hooks, remaining, cfg.ui, snapshot=snapshots.request)
    else:
        ran = sim.run(remaining, hooks=hooks)
    elapsed = time.perf_counter() - t0
    if sim.stop_reason:
        log.warning("run stopped at tick %d of %d: %s", sim.tick, cfg.run.ticks, sim.stop_reason)
    summary = summarize(cfg, world.state, sim, rec, elapsed)
    summary["run"].update({"ticks_this_process": ran, "stopped": sim.stop_reason,
                           "resumed_from": cfg.resume or None, "snapshots": [str(p) for p in snapshots.written]})
    summary["market_impact"] = impact.summary()
    for h in hooks:
        extra = getattr(h, "summary", None)
        if extra is not None and getattr(h, "name", None) in ("metrics", "storage"):
            summary[h.name] = extra()
    impact.write_csv(out_dir / "impact.csv")
    write_prices(out_dir / "prices.csv", sim, rec)
    write_events(out_dir / "events.csv", rec)
    events_table = ""
    if rec.events:
        prices, events = analysis.load_prices(out_dir), analysis.load_events(out_dir)
        response = analysis.event_response(prices, events)
        summary["event_response"] = response
        events_table = analysis.format_event_table(response)
        if cfg.run.chart:
            analysis.plot_event_study(prices, events, out_dir / "events.png")
    write_summary(out_dir / "summary.json", summary)
    if cfg.run.agents_table:
        write_agents_table(out_dir / "agents.csv", world.state, sim, rec)
    (out_dir / "config.json").write_text(json.dumps(config_dict(cfg), indent=2) + "\n")
    if cfg.run.chart:
        chart(out_dir / "chart.png", sim, rec)
        plot_correlation(sim.static, sim.state, out_dir / "correlation.png")
        impact.plot(out_dir / "impact.png")
    if cfg.run.table:
        print(table(summary))
        if events_table:
            print("\nnews events and the market's response:\n" + events_table)
        if sim.stop_reason:
            print(f"\nstopped at tick {sim.tick} of {cfg.run.ticks}: {sim.stop_reason}; "
                  "everything up to it is saved")
        print(f"\nrun directory: {out_dir}")
    return summary


def _hydra_entry() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(dcfg) -> None:
        # Hydra logs INFO to the console; JAX's backend probing is noise there.
        logging.getLogger("jax").setLevel(logging.WARNING)
        try:
            cfg = to_config({k: v for k, v in dcfg.items() if k != "hydra"})
        except ConfigError as e:
            print(f"qtg: config error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        from qtg.core.snapshot import SnapshotError
        from qtg.hooks.storage import StorageError

        try:
            run_job(cfg, Path(HydraConfig.get().runtime.output_dir))
        except SnapshotError as e:
            print(f"qtg: snapshot error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        except StorageError as e:
            print(f"qtg: storage error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None

    task()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    if not flags & (_INFO_FLAGS | {"-m", "--multirun"}):
        # Validate before Hydra makes a run directory. Hydra checks its own hydra.* keys;
        # a sweep value (an experiment may switch to multirun) is checked in each job.
        app = [a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")]
        try:
            load_config(app)
        except ConfigError as e:
            if "--multirun" not in str(e):
                print(f"qtg: config error: {e}", file=sys.stderr)
                return EXIT_CONFIG
    sys.argv = [sys.argv[0], *argv]
    _hydra_entry()
    return 0


if __name__ == "__main__":
    sys.exit(main())
