"""``python -m qtg.run [overrides]``: run a simulation from the Hydra config.

Examples::

    python -m qtg.run
    python -m qtg.run population.noise.count=500 run.ticks=2000 seed=7
    python -m qtg.run engine=exact market.symbols=[ACME,BOLT]
    python -m qtg.run +experiment=large
    python -m qtg.run ui=tui                       # watch it live in the terminal
    python -m qtg.run snapshot.every=500 run.ticks=5000
    python -m qtg.run resume=outputs/.../snapshots/tick_0000500.qtgsnap

``--help`` (``-h``) prints qtg's usage (groups, common keys, experiments, presets), then
Hydra's. A bad override stops before anything runs with one line on stderr and exit code 2.
Outputs go to Hydra's run directory: ``summary.json``, ``chart.png``, ``config.json``, the
hooks' files (``qtg.sqlite``, ``metrics.json``) and ``run.log`` (the run's log lines; the
console shows only warnings, on stderr). A resumed run continues in the snapshot's run
directory when it still exists. ``ui=tui`` without a terminal falls back to the progress bar.

:func:`run_job` reads as its steps: build or resume the world, choose the hooks, run,
write the outputs, print the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.compose import CONF_DIR, load_config
from qtg.core.config import Config, ConfigError, register, to_config

EXIT_CONFIG = 2
log = logging.getLogger("qtg")
CONSOLE = {"console": True}
"""``extra=`` for an INFO line that the console shows too (run.log has every line)."""
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--shell-completion", "-sc"}


@dataclasses.dataclass
class Job:
    """A world ready to run: the config in force (a resume merges the snapshot's), the run
    directory, the simulation, the world's opening state and the snapshot resumed from."""

    cfg: Config
    out_dir: Path
    sim: Any  # qtg.core.sim.Simulation
    initial: Any  # components.world.WorldState at tick 0 (P&L is measured from it)
    snap: Any = None  # qtg.core.snapshot.Snapshot when resuming


@dataclasses.dataclass
class Observers:
    """The run's hooks: the recorders behind the outputs, the snapshotter, and the
    configured hooks, in calling order (``hooks`` holds them all)."""

    rec: Any  # qtg.hooks.Recorder
    impact: Any  # qtg.reports.impact.ImpactRecorder
    snapshots: Any  # qtg.core.snapshot.Snapshotter
    hooks: list
    tui: bool  # the terminal view runs the loop


def run_job(cfg: Config, out_dir: Path) -> dict:
    """Build (or resume) the world, run it with the configured hooks, write the run
    directory: summary.json, prices.csv, events.csv, agents.csv, config.json and the charts."""
    job = build_or_resume(cfg, out_dir)
    obs = choose_hooks(job)
    ran, elapsed = run_world(job, obs)
    summary = write_outputs(job, obs, ran, elapsed)
    print_report(job, summary)
    return summary


def build_or_resume(cfg: Config, out_dir: Path) -> Job:
    """The world of ``cfg``, or the snapshot's world at its tick when ``cfg.resume`` names
    one (the run then continues in the snapshot's run directory when it still exists)."""
    from qtg.core.sim import Simulation
    from qtg.core.snapshot import read_snapshot
    from qtg.core.world import build_world, make_engine_for

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
        log.info("resumed %s at tick %d in %s", cfg.resume, sim.tick, out_dir, extra=CONSOLE)
    else:
        sim = Simulation(world.static, world.params, world.state, engine)
    log.info("run in %s: %s agents with rows%s, %d symbols, %d ticks, engine=%s, seed=%d",
             out_dir, f"{world.static.n_agents:,}", _pool_text(world.static), world.static.n_symbols,
             cfg.run.ticks, cfg.engine.name, cfg.seed)
    return Job(cfg, out_dir, sim, world.state, snap)


def _pool_text(static) -> str:
    members = static.background.members if static.background is not None else 0
    return f" and {members:,} in the background pool" if members else ""


def has_terminal() -> bool:
    """Whether the terminal view can run: stdin and stdout are both a terminal."""
    return all(f is not None and f.isatty() for f in (sys.stdin, sys.stdout))


def choose_hooks(job: Job) -> Observers:
    """The recorders, the configured hooks and the snapshotter (last). ``ui=tui`` (or the
    ``tui`` hook) replaces the progress bar with the terminal view; without a terminal it
    falls back to the progress bar, with one warning."""
    from qtg.core.snapshot import Snapshotter
    from qtg.hooks import HookContext, Recorder, make_hooks
    from qtg.reports.impact import ImpactRecorder

    cfg, out_dir = job.cfg, job.out_dir
    tui = cfg.ui.name == "tui" or "tui" in cfg.hooks
    if tui and not has_terminal():
        log.warning("ui=tui needs a terminal on stdin and stdout; showing the progress bar instead")
        tui = False
        names = [n for n in cfg.hooks if n != "tui"]
        names = names if "progress" in names else ["progress", *names]
    else:
        names = [n for n in cfg.hooks if not (tui and n == "progress")]  # a bar would garble the screen
        if tui and "tui" not in names:
            names.append("tui")
    rec, impact = Recorder(), ImpactRecorder()
    hooks = [rec, impact, *make_hooks(names, HookContext(cfg, out_dir))]
    snapshots = Snapshotter(out_dir / cfg.snapshot.dir, cfg, hooks, every=cfg.snapshot.every,
                            at_end=cfg.snapshot.at_end, keep=cfg.snapshot.keep, run_dir=out_dir)
    hooks.append(snapshots)  # last: it records every other hook's cursor after the tick
    if job.snap is not None:
        job.snap.load_hooks(hooks)
    return Observers(rec, impact, snapshots, hooks, tui)


def run_world(job: Job, obs: Observers) -> tuple[int, float]:
    """Run the world up to ``run.ticks`` in all; return the ticks run and the seconds taken."""
    cfg, sim = job.cfg, job.sim
    remaining = max(0, cfg.run.ticks - sim.tick)
    t0 = time.perf_counter()
    if obs.tui:
        from qtg.hooks.tui.app import run_tui

        ran = run_tui(sim, obs.hooks, remaining, cfg.ui, snapshot=obs.snapshots.request)
    else:
        ran = sim.run(remaining, hooks=obs.hooks)
    elapsed = time.perf_counter() - t0
    if sim.stop_reason:
        log.warning("run stopped at tick %d of %d: %s", sim.tick, cfg.run.ticks, sim.stop_reason)
    else:
        log.info("ran %d ticks in %.1f s; the world is at tick %d", ran, elapsed, sim.tick)
    return ran, elapsed


def write_outputs(job: Job, obs: Observers, ran: int, elapsed: float) -> dict:
    """Every file of the run directory; returns the summary (as written to summary.json)."""
    from qtg.reports.summary import write_summary

    summary = build_summary(job, obs, ran, elapsed)
    written = write_tables(job, obs)
    written += study_events(job, obs, summary)
    write_summary(job.out_dir / "summary.json", summary)
    written += ["summary.json", *write_config(job)]
    if job.cfg.run.chart:
        written += write_charts(job, obs)
    log.info("wrote %s in %s", ", ".join(written), job.out_dir)
    return summary


def build_summary(job: Job, obs: Observers, ran: int, elapsed: float) -> dict:
    """summary.json's content: the run's summary, how this process ran it, market impact
    and the metrics and storage hooks' own summaries."""
    from qtg.reports.summary import summarize

    cfg, sim = job.cfg, job.sim
    summary = summarize(cfg, job.initial, sim, obs.rec, elapsed)
    summary["run"].update({"ticks_this_process": ran, "stopped": sim.stop_reason,
                           "resumed_from": cfg.resume or None,
                           "snapshots": [str(p) for p in obs.snapshots.written]})
    summary["market_impact"] = obs.impact.summary()
    for h in obs.hooks:
        extra = getattr(h, "summary", None)
        if extra is not None and getattr(h, "name", None) in ("metrics", "storage"):
            summary[h.name] = extra()
    return summary


def write_tables(job: Job, obs: Observers) -> list[str]:
    """The CSV files: impact.csv, prices.csv, events.csv and (``run.agents_table``) agents.csv."""
    from qtg.reports.summary import write_agents_table, write_events, write_prices

    out, sim, rec = job.out_dir, job.sim, obs.rec
    obs.impact.write_csv(out / "impact.csv")
    write_prices(out / "prices.csv", sim, rec)
    write_events(out / "events.csv", rec)
    written = ["impact.csv", "prices.csv", "events.csv"]
    if job.cfg.run.agents_table:
        write_agents_table(out / "agents.csv", job.initial, sim, rec)
        written.append("agents.csv")
    return written


def study_events(job: Job, obs: Observers, summary: dict) -> list[str]:
    """The market's response to the news (from prices.csv and events.csv): into the
    summary as ``event_response``, and as events.png when charts are on."""
    from qtg.reports import analysis

    if not obs.rec.events:
        return []
    prices, events = analysis.load_prices(job.out_dir), analysis.load_events(job.out_dir)
    summary["event_response"] = analysis.event_response(prices, events)
    if not job.cfg.run.chart:
        return []
    analysis.plot_event_study(prices, events, job.out_dir / "events.png")
    return ["events.png"]


def write_config(job: Job) -> list[str]:
    """config.json: the config in force, as plain JSON."""
    from qtg.core.config import config_dict

    (job.out_dir / "config.json").write_text(json.dumps(config_dict(job.cfg), indent=2) + "\n")
    return ["config.json"]


def write_charts(job: Job, obs: Observers) -> list[str]:
    """chart.png (prices, indicators, P&L), correlation.png and impact.png."""
    from qtg.reports.chart import chart
    from qtg.reports.portfolio import plot_correlation

    out, sim = job.out_dir, job.sim
    chart(out / "chart.png", sim, obs.rec)
    plot_correlation(sim.static, sim.state, out / "correlation.png")
    obs.impact.plot(out / "impact.png")
    return ["chart.png", "correlation.png", "impact.png"]


def print_report(job: Job, summary: dict) -> None:
    """The end-of-run table on stdout (``run.table``), with the news events' response."""
    from qtg.reports import analysis
    from qtg.reports.summary import table

    cfg, sim = job.cfg, job.sim
    if not cfg.run.table:
        return
    print(table(summary))
    events_table = analysis.format_event_table(summary["event_response"]) if "event_response" in summary else ""
    if events_table:
        print("\nnews events and the market's response:\n" + events_table)
    if sim.stop_reason:
        print(f"\nstopped at tick {sim.tick} of {cfg.run.ticks}: {sim.stop_reason}; "
              "everything up to it is saved")
    print(f"\nrun directory: {job.out_dir}")


GROUPS = ("population", "engine", "ui", "experiment")
"""The config groups with options (folders of conf/), in the order the usage lists them."""

COMMON_KEYS = (
    ("run.ticks", "ticks to simulate"),
    ("seed", "random seed: same config and seed, same trades"),
    ("market.symbols", "one order book per symbol (set market.sectors to match, or [])"),
    ("population.noise.count", "noise traders"),
    ("population.market_maker.count", "market makers"),
    ("engine.name", "matching engine: fast or exact (or engine=exact)"),
    ("ui.name", "none (progress bar) or tui (terminal view; or ui=tui)"),
    ("hooks", "observers of the run"),
    ("run.chart", "write chart.png and the other plots"),
    ("snapshot.every", "ticks between snapshots; 0 = on demand only"),
)
"""The ten keys a newcomer changes first; their defaults are read from :class:`Config`."""

EXAMPLES = (
    ("python -m qtg.run", "the default market: 10 symbols, 120 agents, 1,000 ticks"),
    ("python -m qtg.run run.ticks=2000 population.noise.count=500 seed=7", "change any key"),
    ("python -m qtg.run population=seed_100k", "a preset population (100,000 agents)"),
    ("python -m qtg.run +experiment=sector_shock", "an experiment (note the +)"),
    ("python -m qtg.run ui=tui", "watch it live in the terminal"),
    ("python -m qtg.run engine=exact market.symbols=[ACME,BOLT] market.sectors=[]", "two symbols"),
    ("python -m qtg.run snapshot.every=500 run.ticks=5000", "save points of the whole world"),
    ("python -m qtg.run resume=outputs/.../snapshots/tick_0000500.qtgsnap", "continue a run"),
    ("python -m qtg.run seed=0,1,2 --multirun", "one job per seed"),
    ("python -m qtg.run --cfg job", "print the composed config and stop"),
)


def _key_default(cfg: Config, key: str) -> str:
    """The value of ``key`` in ``cfg``, written as on the command line (``[a,b]``, ``true``)."""
    value: Any = cfg
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _first_comment(path: Path) -> str:
    """The first comment line of a YAML file that is not a Hydra directive (``# @package``)."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") and not text.lstrip("# ").startswith("@"):
            return text.lstrip("# ").strip()
    return ""


def usage(conf_dir: Path = CONF_DIR) -> str:
    """qtg's own help: what a run does and writes, the config groups and their options, the
    most used keys with their defaults, the experiments and population presets, examples."""
    defaults = Config()
    lines = [
        "usage: python -m qtg.run [key=value ...] [group=option ...] [+experiment=NAME] [--multirun]",
        "",
        "Runs an agent-based stock market: agents trade the symbols through limit order books,",
        "tick by tick, while fundamentals and news move fair values. A run writes into its run",
        "directory (outputs/DATE/TIME, or hydra.run.dir=PATH): summary.json, prices.csv,",
        "events.csv, agents.csv, impact.csv, config.json, chart.png, correlation.png, impact.png,",
        "events.png (when there is news), qtg.sqlite (storage hook), metrics.json(l) (metrics",
        "hook), run.log and snapshots/; and prints a summary table. A bad key or value stops",
        "before anything runs, with one line naming it (exit code 2).",
        "",
        "config groups (group=option; conf/<group>/<option>.yaml):",
    ]
    for group in GROUPS:
        options = ", ".join(sorted(p.stem for p in (conf_dir / group).glob("*.yaml")))
        prefix = "+" if group == "experiment" else ""
        lines.append(f"  {prefix + group:<14}{options}")
    sections = [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(getattr(defaults, f.name))]
    lines += ["", "config sections (section.key=value; every default in qtg/core/config.py):",
              "  " + ", ".join(sections)]
    lines += ["", "most used keys (key=value; default):"]
    for key, text in COMMON_KEYS:
        lines.append(f"  {key:<31}{text}; default {_key_default(defaults, key)}")
    for title, group in (("experiments (+experiment=NAME)", "experiment"),
                         ("population presets (population=NAME)", "population")):
        lines += ["", f"{title}:"]
        for path in sorted((conf_dir / group).glob("*.yaml")):
            lines.append(f"  {path.stem:<22}{_first_comment(path)}")
    lines += ["", "examples:"]
    for command, text in EXAMPLES:
        lines.append(f"  {command}\n      {text}")
    lines += ["", "Every key, its default and its meaning: qtg/core/config.py. Hydra's help follows.", ""]
    return "\n".join(lines)


def _console_shows(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or getattr(record, "console", False)


def console_logging() -> None:
    """Hydra's job logging writes every INFO line to run.log and to the console (stdout).
    Keep run.log whole; on the console show warnings and the lines marked :data:`CONSOLE`,
    on stderr, so stdout carries only the summary table."""
    for h in logging.getLogger().handlers:
        if type(h) is logging.StreamHandler:  # the console; run.log is a FileHandler
            h.setStream(sys.stderr)
            h.addFilter(_console_shows)


def _hydra_entry() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(dcfg) -> None:
        # JAX's backend probing is noise in the log.
        logging.getLogger("jax").setLevel(logging.WARNING)
        console_logging()
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
    if flags & {"--help", "-h"}:
        print(usage())
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
