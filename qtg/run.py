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
Hydra's. Outputs go to Hydra's run directory: ``summary.json``, ``chart.png``,
``config.json``, the hooks' files (``qtg.sqlite``, ``metrics.json``) and ``run.log`` (the
run's log lines; the console shows only warnings, on stderr). A resumed run continues in
the run directory that holds its snapshot (``<run dir>/snapshots/tick_N.qtgsnap``).
``ui=tui`` without a terminal falls back to the progress bar.

Errors (docs/reliability.md, "Runs, resume, faults and signals"):

* a user error (a bad key or value, a world that cannot be built, a snapshot or database
  that cannot be resumed, a run directory that cannot be written) is refused before the
  first tick with one line on stderr naming the key or path, the value and what is
  allowed, exit code 2, and the run directory removed if this process created it;
* a failure while the run goes (disk full) prints one line, exit code 1, and keeps the
  run directory, whose database stays consistent up to its last committed tick;
* SIGINT (Ctrl-C) or SIGTERM stops at the next tick boundary, writes every output (and a
  snapshot when snapshots are on), marks summary.json ``run.interrupted``, prints one
  line and exits 130 or 143; a second signal stops at once;
* anything else is a bug in qtg and shows its traceback.

:func:`run_job` reads as its steps: build or resume the world, choose the hooks, run,
write the outputs, print the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.compose import CONF_DIR, load_config, run_experiments
from qtg.core.config import Config, ConfigError, register, to_config

EXIT_CONFIG = 2
"""Exit code of a user error (refused before the first tick)."""
EXIT_FAILED = 1
"""Exit code of a run that failed while it went (disk full): one line, run directory kept."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run at the next tick boundary; the exit code is 128 + the signal."""
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
class RunState:
    """What the entry point needs to know after a job: whether its first tick began (an
    error before it is a refusal) and the signal that stopped it, if any."""

    started: bool = False
    signal: int | None = None
    stopped: str = ""  # after a signal: where the run stopped and what it wrote, one line
    error: BaseException | None = None  # the job's error, raised again by main


class Refused(Exception):
    """A user error found before the run starts, other than a ConfigError, SnapshotError or
    StorageError (a run directory that cannot be written); the message is one line."""


@dataclasses.dataclass
class Observers:
    """The run's hooks: the recorders behind the outputs, the snapshotter, and the
    configured hooks, in calling order (``hooks`` holds them all)."""

    rec: Any  # qtg.hooks.Recorder
    impact: Any  # qtg.reports.impact.ImpactRecorder
    snapshots: Any  # qtg.core.snapshot.Snapshotter
    hooks: list
    tui: bool  # the terminal view runs the loop


def run_job(cfg: Config, out_dir: Path, overrides: Sequence[str] | None = None,
            state: RunState | None = None) -> dict:
    """Build (or resume) the world, run it with the configured hooks, write the run
    directory: summary.json, prices.csv, events.csv, agents.csv, config.json and the charts.

    ``overrides``: the keys given on the command line (``key=value`` strings); a resume
    refuses those that would change the snapshot's world. None (a caller with a whole
    config) compares every world key. ``state`` records for the caller whether the first
    tick began and which signal stopped the run.
    """
    state = state if state is not None else RunState()
    job = build_or_resume(cfg, out_dir, overrides)
    obs = choose_hooks(job)
    snapshots_on = job.cfg.snapshot.every > 0 or job.cfg.snapshot.at_end
    with stop_on_signals(job.sim, obs.snapshots, state, snapshot_at_stop=snapshots_on):
        ran, elapsed = run_world(job, obs, state)
        summary = write_outputs(job, obs, ran, elapsed, state)
    if state.signal is not None:
        state.stopped = stopped_line(job, obs, state)
    print_report(job, summary)
    return summary


def stopped_line(job: Job, obs: Observers, state: RunState) -> str:
    """After a signal: which one, the tick the run stopped at, where its outputs and
    its snapshot went (one line)."""
    sim = job.sim
    name = signal.Signals(state.signal).name
    line = f"interrupted ({name}) at tick {sim.tick} of {job.cfg.run.ticks}; outputs written in {job.out_dir}"
    snap = obs.snapshots.path_for(sim.tick)
    if snap in obs.snapshots.written:
        line += f"; resume with resume={snap}"
    return line


def build_or_resume(cfg: Config, out_dir: Path, overrides: Sequence[str] | None = None) -> Job:
    """The world of ``cfg``, or the snapshot's world at its tick when ``cfg.resume`` names
    one (see :func:`check_resume`; the run then continues in the run directory holding
    the snapshot). Refuses, before writing anything, a run directory it cannot write and
    a world that cannot be built (ConfigError naming the key)."""
    from qtg.core.sim import make_simulation
    from qtg.core.snapshot import read_snapshot
    from qtg.core.world import build_world, make_engine_for

    snap = None
    if cfg.resume:
        snap = read_snapshot(cfg.resume)  # SnapshotError: a clear one-line refusal
        out_dir = snap.location_run_dir() or out_dir
        check_resume(snap, cfg, out_dir, overrides)
        cfg = snap.merged_config(cfg)
    check_writable(out_dir, resuming=snap is not None)
    try:
        world = build_world(cfg)
    except ValueError as e:  # "key: problem" from a world-build check is the user's
        if not _names_a_key(str(e)):
            raise
        raise ConfigError(str(e)) from None
    engine = make_engine_for(cfg, world.static)
    if snap is not None:
        sim = snap.restore(world, engine)
        log.info("resumed %s at tick %d in %s", cfg.resume, sim.tick, out_dir, extra=CONSOLE)
    else:
        sim = make_simulation(world.static, world.params, world.state, engine)
    log.info("run in %s: %s agents with rows%s, %d symbols, %d ticks, engine=%s, seed=%d",
             out_dir, f"{world.static.n_agents:,}", _pool_text(world.static), world.static.n_symbols,
             cfg.run.ticks, cfg.engine.name, cfg.seed)
    return Job(cfg, out_dir, sim, world.state, snap)


_SECTIONS = ("market", "fundamentals", "news", "population", "engine", "risk", "run", "storage", "snapshot",
             "metrics", "ui", "seed", "hooks", "resume")


def _names_a_key(message: str) -> bool:
    """Whether an error message starts with a config key (``market.x: ...``)."""
    return re.match(rf"({'|'.join(_SECTIONS)})([.\[:]|$)", message) is not None


def check_writable(out_dir: Path, resuming: bool = False) -> None:
    """Make the run directory and check that files can be created in it (a temporary file,
    removed at once). Raises :class:`Refused` naming the path."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".qtg-write-check-"):
            pass
    except OSError as e:
        hint = ("resume a copy of the run directory in a writable place" if resuming
                else "choose a writable one with hydra.run.dir=PATH")
        raise Refused(f"cannot write the run directory '{out_dir}': {e.strerror or e}; {hint}") from None


def check_resume(snap, cfg: Config, out_dir: Path, overrides: Sequence[str] | None) -> None:
    """Refuse a resume that would change the snapshot's world or lose recorded data:

    * ``run.ticks`` (ticks in all, counted from 0) must lie past the snapshot's tick;
    * it must not end the run before what its run directory already records (summary.json,
      the database), since the resumed run cuts the database back to the snapshot;
    * world keys given on the command line (``overrides``) must match the snapshot's
      (run-level keys: run.*, ui, hooks, storage, snapshot, metrics, may change).

    Raises ConfigError naming the key, its value and what is allowed.
    """
    from qtg.core.snapshot import WORLD_SECTIONS

    where = f"the snapshot '{snap.path}'"
    if cfg.run.ticks <= snap.tick:
        raise ConfigError(f"run.ticks: {cfg.run.ticks} does not go past {where}, taken at tick {snap.tick}; "
                          f"run.ticks counts every tick from 0, so resume with run.ticks > {snap.tick}")
    keys = None
    if overrides is not None:
        given = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
        keys = [k for k in given if k.split(".", 1)[0].split("[", 1)[0] in WORLD_SECTIONS]
        if any(k.split(".", 1)[0] == "experiment" for k in given):
            keys = None  # an experiment composes a world: compare all of it
    changes = snap.world_changes(cfg, keys)
    if changes:
        what = "; ".join(f"{k}={_value(b)} (the snapshot has {_value(a)})" for k, a, b in changes[:5])
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        raise ConfigError(f"{', '.join(k for k, _, _ in changes[:5])}{more}: a resumed run takes its world from "
                          f"{where}; these keys would change it: {what}{more}. Drop them (run-level keys such "
                          "as run.ticks, ui, hooks, storage, snapshot and metrics may change), or start a new run")
    held, source = recorded_ticks(out_dir, snap)
    if cfg.run.ticks < held:
        raise ConfigError(f"run.ticks: {cfg.run.ticks} would end the run before the {held} ticks its run directory "
                          f"'{out_dir}' already holds ({source}), and resuming cuts them back; resume with "
                          f"run.ticks >= {held}, or resume a copy of the run directory")


def _value(v: Any) -> str:
    """A config value as on the command line (``[ACME,BOLT]``, ``true``), cut to 60 characters."""
    if isinstance(v, list):
        text = "[" + ",".join(_value(x) for x in v) + "]"
    elif isinstance(v, (bool, dict)) or v is None:
        text = json.dumps(v)
    else:
        text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def recorded_ticks(out_dir: Path, snap) -> tuple[int, str]:
    """How many ticks the run directory already records for the snapshot's run, and where:
    summary.json's ``run.ticks`` and the database's last stored tick + 1 (0: nothing)."""
    import sqlite3

    from qtg.hooks.storage import RunDB, StorageError

    best, source = 0, ""
    try:
        ticks = int(json.loads((out_dir / "summary.json").read_text())["run"]["ticks"])
        if ticks > best:
            best, source = ticks, "summary.json"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    saved = snap.hook_state("storage")
    file = snap.config.get("storage", {}).get("file")
    if saved is not None and file and (out_dir / file).is_file():
        try:
            with RunDB(out_dir / file) as db:
                ticks = db.last_tick(int(saved["run_id"])) + 1
            if ticks > best:
                best, source = ticks, f"{file} through tick {ticks - 1}"
        except (StorageError, sqlite3.Error, KeyError, ValueError):
            pass  # not a database it can read: Storage.check refuses it with one line
    return best, source


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
    fallback = tui and not has_terminal()
    if fallback:
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
    for h in hooks:  # refusals (a database that is not one) before any hook writes a file
        check = getattr(h, "check", None)
        if callable(check):
            check()
    if fallback:
        log.warning("ui=tui needs a terminal on stdin and stdout; showing the progress bar instead")
    return Observers(rec, impact, snapshots, hooks, tui)


@contextlib.contextmanager
def stop_on_signals(sim, snapshots=None, state: RunState | None = None,
                    snapshot_at_stop: bool = False) -> Iterator[RunState]:
    """While the block runs (in the main thread): SIGINT (Ctrl-C) and SIGTERM ask ``sim`` to
    stop at the next tick boundary, the signal going into ``state.signal``; a second one
    gets the handler in force before (Ctrl-C: KeyboardInterrupt at once). With
    ``snapshots`` (the Snapshotter), SIGUSR1 asks for a snapshot at the next tick boundary,
    and with ``snapshot_at_stop`` so does a stopping signal. The previous handlers are
    restored when the block ends. Elsewhere than the main thread it does nothing (Python
    delivers signals to the main thread only)."""
    state = state if state is not None else RunState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: dict[int, Any] = {}

    def stop(signum, frame) -> None:
        signal.signal(signum, previous[signum])  # the next one acts at once
        if state.signal is None:
            state.signal = signum
        if snapshots is not None and snapshot_at_stop:
            snapshots.request()
        sim.request_stop(f"interrupted ({signal.Signals(signum).name})")

    def snapshot(signum, frame) -> None:
        snapshots.request()

    wanted = [(s, stop) for s in STOP_SIGNALS]
    if snapshots is not None and hasattr(signal, "SIGUSR1"):
        wanted.append((signal.SIGUSR1, snapshot))
    try:
        for s, handler in wanted:
            previous[s] = signal.signal(s, handler)
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_world(job: Job, obs: Observers, state: RunState | None = None) -> tuple[int, float]:
    """Run the world up to ``run.ticks`` in all; return the ticks run and the seconds taken
    (``state.started`` is set as the hooks start: errors from then on are failures, not
    refusals)."""
    cfg, sim = job.cfg, job.sim
    state = state if state is not None else RunState()
    remaining = max(0, cfg.run.ticks - sim.tick)
    t0 = time.perf_counter()
    state.started = True
    if obs.tui:
        from qtg.hooks.tui.app import run_tui

        ran = run_tui(sim, obs.hooks, remaining, cfg.ui, snapshot=obs.snapshots.request)
    else:
        ran = sim.run(remaining, hooks=obs.hooks)
    elapsed = time.perf_counter() - t0
    if state.signal is not None:  # the entry point prints the one line
        log.info("run stopped at tick %d of %d: %s", sim.tick, cfg.run.ticks, sim.stop_reason)
    elif sim.stop_reason:
        log.warning("run stopped at tick %d of %d: %s", sim.tick, cfg.run.ticks, sim.stop_reason)
    else:
        log.info("ran %d ticks in %.1f s; the world is at tick %d", ran, elapsed, sim.tick)
    return ran, elapsed


def write_outputs(job: Job, obs: Observers, ran: int, elapsed: float, state: RunState | None = None) -> dict:
    """Every file of the run directory, each written atomically; summary.json after the
    others, so it replaces the previous one (a resumed run's) only once everything else is
    written. Returns the summary (as written to summary.json)."""
    from qtg.reports.summary import write_summary

    summary = build_summary(job, obs, ran, elapsed, state)
    written = write_tables(job, obs)
    written += study_events(job, obs, summary)
    written += ["summary.json", *write_config(job)]
    if job.cfg.run.chart:
        written += write_charts(job, obs)
    write_summary(job.out_dir / "summary.json", summary)  # last: the run directory is complete
    log.info("wrote %s in %s", ", ".join(written), job.out_dir)
    return summary


def build_summary(job: Job, obs: Observers, ran: int, elapsed: float, state: RunState | None = None) -> dict:
    """summary.json's content: the run's summary, how this process ran it (``run.stopped``
    says why it ended early, ``run.interrupted`` whether a signal stopped it), market
    impact and the metrics and storage hooks' own summaries."""
    from qtg.reports.summary import summarize

    cfg, sim = job.cfg, job.sim
    interrupted = state is not None and state.signal is not None
    summary = summarize(cfg, job.initial, sim, obs.rec, elapsed)
    summary["run"].update({"ticks_this_process": ran, "stopped": sim.stop_reason, "interrupted": interrupted,
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
    from qtg.core.files import write_text

    write_text(job.out_dir / "config.json", json.dumps(config_dict(job.cfg), indent=2) + "\n")
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


GROUPS = ("population", "market", "engine", "ui", "experiment")
"""The config groups with options (folders of conf/), in the order the usage lists them."""

COMMON_KEYS = (
    ("run.ticks", "ticks to simulate"),
    ("seed", "random seed: same config and seed, same trades"),
    ("market.symbols", "one order book per symbol (set market.sectors to match, or [])"),
    ("population.noise.count", "noise traders"),
    ("population.market_maker.count", "market makers"),
    ("engine.name", "matching engine: fast, exact or device (the whole tick on the device; or engine=device)"),
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
        files = run_experiments(conf_dir) if group == "experiment" else sorted((conf_dir / group).glob("*.yaml"))
        options = ", ".join(p.stem for p in files)
        prefix = "+" if group == "experiment" else ""
        lines.append(f"  {prefix + group:<14}{options}")
    sections = [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(getattr(defaults, f.name))]
    lines += ["", "config sections (section.key=value; every default in qtg/core/config.py):",
              "  " + ", ".join(sections)]
    lines += ["", "most used keys (key=value; default):"]
    for key, text in COMMON_KEYS:
        lines.append(f"  {key:<31}{text}; default {_key_default(defaults, key)}")
    for title, group in (("experiments (+experiment=NAME)", "experiment"),
                         ("population presets (population=NAME)", "population"),
                         ("market presets (market=NAME)", "market")):
        lines += ["", f"{title}:"]
        for path in run_experiments(conf_dir) if group == "experiment" else sorted((conf_dir / group).glob("*.yaml")):
            lines.append(f"  {path.stem:<22}{_first_comment(path)}")
    lines += ["", "examples:"]
    for command, text in EXAMPLES:
        lines.append(f"  {command}\n      {text}")
    lines += ["", "Training a policy (groups env and reward, +experiment=rl_ppo): python -m qtg.train --help.",
              "Every key, its default and its meaning: qtg/core/config.py. Hydra's help follows.", ""]
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


def _hydra_entry(state: RunState) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(dcfg) -> None:
        # JAX's backend probing is noise in the log.
        logging.getLogger("jax").setLevel(logging.WARNING)
        console_logging()
        # Errors go to main in state.error, not through Hydra (which would print its own
        # "Error executing job" line before ours).
        hc = HydraConfig.get()
        try:
            cfg = to_config({k: v for k, v in dcfg.items() if k != "hydra"})
            run_job(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task), state)
        except (Exception, KeyboardInterrupt) as e:
            state.error = state.error or e
            if str(hc.mode).endswith("MULTIRUN"):
                raise _StopSweep from None  # a sweep stops at its first failed job

    task()


class _StopSweep(BaseException):
    """Leaves Hydra's launcher (which catches Exception) after a failed job of a sweep;
    the job's error is in ``RunState.error``."""


@contextlib.contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let exceptions leave ``hydra.main`` as they are (``HYDRA_FULL_ERROR``), so that
    :func:`main` reports a user error in one line instead of Hydra printing a traceback."""
    old = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = old


_SAFE_PATH = re.compile(r"[\w./+@%:-]+")


def pin_run_dir(argv: list[str]) -> tuple[list[str], Path | None]:
    """``argv`` with ``hydra.run.dir`` resolved once (``${now:...}`` included) and given
    to Hydra as a plain path, and that path: so this process knows its run directory
    before Hydra makes it, and can remove it after a refusal. ``(argv, None)`` for a
    multirun or a directory that does not resolve to a plain path."""
    from omegaconf import OmegaConf

    from qtg.core.compose import compose

    overrides = [a for a in argv if not a.startswith("-")]
    try:
        dcfg = compose(overrides, hydra=True)
        if str(OmegaConf.select(dcfg, "hydra.mode")).endswith("MULTIRUN"):
            return argv, None
        run_dir = str(OmegaConf.select(dcfg, "hydra.run.dir"))
    except Exception:  # noqa: BLE001 - Hydra reports its own errors when it runs
        return argv, None
    if not _SAFE_PATH.fullmatch(run_dir):
        if any(c in run_dir for c in "'\\$"):
            return argv, None
        value = f"'{run_dir}'"
    else:
        value = run_dir
    rest = [a for a in argv if not a.lstrip("+~").startswith("hydra.run.dir=")]
    return [*rest, f"hydra.run.dir={value}"], Path(run_dir)


def missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    out = []
    for d in (path, *path.parents):
        if d.exists():
            break
        out.append(d)
    return out


def remove_dirs(created: list[Path]) -> None:
    """Remove the run directory this process created (the first of ``created``) and
    then each parent it created, while empty (another run may share a parent)."""
    if not created:
        return
    shutil.rmtree(created[0], ignore_errors=True)
    for d in created[1:]:
        try:
            d.rmdir()
        except OSError:
            break


def error_line(e: BaseException, state: RunState) -> tuple[int, str] | None:
    """The exit code and the one line for an error that is not a bug in qtg; None for a
    bug (it keeps its traceback). Before the first tick: a refusal (exit 2); after: a
    failure (exit 1)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from qtg.core.compose import _hydra_line
    from qtg.core.snapshot import SnapshotError
    from qtg.hooks.storage import StorageError

    code = EXIT_FAILED if state.started else EXIT_CONFIG
    if isinstance(e, ValueError) and isinstance(e.__cause__, OSError) and "configure handler" in str(e):
        e = e.__cause__  # Hydra's log file (run.log) could not be opened
    if isinstance(e, ConfigError):
        return EXIT_CONFIG, f"qtg: config error: {e}"
    if isinstance(e, SnapshotError):
        return EXIT_CONFIG, f"qtg: snapshot error: {e}"
    if isinstance(e, Refused):
        return EXIT_CONFIG, f"qtg: {e}"
    if isinstance(e, StorageError):
        return code, f"qtg: storage error: {e}"
    if isinstance(e, OSError):
        what = f"'{e.filename}'" if e.filename else "a file"
        hint = "" if state.started else "; choose a writable run directory with hydra.run.dir=PATH"
        return code, f"qtg: cannot write {what}: {e.strerror or e}{hint}"
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return EXIT_CONFIG, f"qtg: config error: {_hydra_line(e)}"
    if isinstance(e, KeyboardInterrupt):
        where = "; the run stopped inside a tick, so its outputs were not written" if state.started else ""
        return 128 + signal.SIGINT, f"qtg: interrupted (SIGINT){where}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    if flags & {"--help", "-h"}:
        print(usage())
    created: list[Path] = []
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
        argv, run_dir = pin_run_dir(argv)
        created = missing_dirs(run_dir) if run_dir is not None else []
    state = RunState()
    sys.argv = [sys.argv[0], *argv]
    try:
        try:
            with _hydra_raises():
                _hydra_entry(state)
        except _StopSweep:
            pass
        if state.error is not None:
            raise state.error
    except SystemExit:
        raise
    except BaseException as e:
        reported = error_line(e, state)
        if reported is None:
            raise
        code, line = reported
        print(line, file=sys.stderr)
        if code == EXIT_CONFIG:
            remove_dirs(created)
        return code
    if state.signal is not None:
        print(f"qtg: {state.stopped}", file=sys.stderr)
        return 128 + state.signal
    return 0


if __name__ == "__main__":
    sys.exit(main())
