"""Where the tick's time goes, per line of the project's source.

    python -m qtg.bench.profile_tick --agents 100000 --ticks 50 --top 25

Runs a world like ``qtg.bench.world``'s (``--mix tiers --market default`` is the seed_100k mix
scaled to ``--agents``), warms it up, then traces ``--ticks`` ticks with the JAX profiler.
On the CPU the tick's two jitted phases are compiled with XLA's per-op trace events, so
every op XLA runs (a fusion, a copy, a scatter) is timed; each op is charged to the
innermost line of the project that produced it (from the compiled program's source
metadata). Printed: per phase, the wall span of the program, the summed op time and the
op count; then the costliest lines with their ms and ops per tick and the code on them.
``--json`` writes the whole table.

Op times are the time each op held a thread: an op split over both cores that waits for
its other half counts its wait too, so per-line figures are for finding hot spots, and
A/B timings of whole ticks decide whether a change helps. On an accelerator XLA emits no
per-op CPU events; the tool then says so and prints nothing per line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import glob
import gzip
import json
import linecache
import os
import re
import sys
import tempfile
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[2]
"""The project root: only frames in files below it are charged."""

TRACE_OPTION = "xla_cpu_enable_xprof_traceme"
"""XLA's CPU option that makes every op of a program emit a trace event."""

_SKIP = ("qtg/core/schedule.py", "qtg/core/sim.py", "qtg/bench/profile_tick.py", "systems/fusion.py")
"""Project files that only run the stages or wrap a value (charging them would hide the
line that computes it)."""


@dataclasses.dataclass(frozen=True)
class Frame:
    file: str  # relative to ROOT
    line: int
    function: str


def hlo_frames(text: str) -> dict[str, list[Frame]]:
    """Each instruction of an HLO module's text -> its project stack frames, innermost
    first (empty when it has no source metadata or none of its frames is the project's)."""
    files: dict[int, str] = {}
    functions: dict[int, str] = {}
    locations: dict[int, tuple[int, int, int]] = {}
    parents: dict[int, tuple[int, int]] = {}
    section = None
    frame_of: dict[str, int] = {}
    for raw in text.splitlines():
        if raw in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = raw
            continue
        if section is not None:
            if not raw.strip():
                section = None
                continue
            if section == "FileNames" or section == "FunctionNames":
                m = re.match(r'(\d+) "(.*)"$', raw)
                if m:
                    (files if section == "FileNames" else functions)[int(m[1])] = m[2]
            elif section == "FileLocations":
                m = re.match(r"(\d+) \{file_name_id=(\d+) function_name_id=(\d+) line=(\d+)", raw)
                if m:
                    locations[int(m[1])] = (int(m[2]), int(m[3]), int(m[4]))
            else:
                m = re.match(r"(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)", raw)
                if m:
                    # XLA prints the parent as its id + 1: 1 is the root (no parent).
                    parents[int(m[1])] = (int(m[2]), int(m[3]) - 1)
            continue
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*stack_frame_id=(\d+)", raw)
        if m:
            frame_of[m[1]] = int(m[2])

    root = str(ROOT) + os.sep
    cache: dict[int, list[Frame]] = {}

    def chain(fid: int) -> list[Frame]:
        if fid in cache:
            return cache[fid]
        out, seen = [], set()
        f = fid
        while f in parents and f not in seen:
            seen.add(f)
            loc, parent = parents[f]
            file_id, function_id, line = locations.get(loc, (0, 0, 0))
            path = files.get(file_id, "")
            if path.startswith(root):
                rel = path[len(root):].replace(os.sep, "/")
                if rel not in _SKIP:
                    out.append(Frame(rel, line, functions.get(function_id, "?")))
            f = parent
        cache[fid] = out
        return out

    return {name: chain(fid) for name, fid in frame_of.items()}


def _phase_label(module: str) -> str:
    # "jit_segment_observe_decide_admit_arrive" -> "observe+decide+admit+arrive"
    return module.removeprefix("jit_").removeprefix("segment_").replace("_", "+")


def profile(sim, ticks: int, trace_dir: str | None = None) -> dict:
    """Trace ``ticks`` ticks of ``sim`` (already warmed up) and charge XLA's op time to
    project lines. Returns ``{"phases": [...], "lines": [...], "ticks": n}``: ms and ops per
    run of each phase's program (one run a tick, two on a tick whose read phase reruns).

    The simulation's device segments are swapped for copies compiled with per-op trace
    events (same program, same results); the engine and the state carry on as they were.
    """
    from qtg.core.schedule import compile_schedule

    original = sim.segments
    traced = compile_schedule(sim.schedule, ((TRACE_OPTION, True),)) if jax.default_backend() == "cpu" else original
    # Each traced call's argument shapes, in call order: a phase may run more than one
    # program (the write phase's padded fills grow by powers of two), and each run's ops
    # are named by its own program.
    calls: dict[tuple, list] = collections.defaultdict(list)
    specs: dict[tuple, dict] = collections.defaultdict(dict)
    recording = [False]
    segments = []
    for seg in traced:
        if seg.host:
            segments.append(seg)
            continue

        def record(*args, _seg=seg, _variant="call"):
            if recording[0]:
                leaves, tree = jax.tree.flatten(args[1:])
                sig = (_variant, tree, tuple((jax.numpy.shape(x), jax.numpy.result_type(x)) for x in leaves))
                calls[_seg.names].append(sig)
                if sig not in specs[_seg.names]:
                    specs[_seg.names][sig] = (args[0],) + jax.tree.map(
                        lambda x: jax.ShapeDtypeStruct(jax.numpy.shape(x), jax.numpy.result_type(x)), args[1:]
                    )
            return getattr(_seg, _variant)(*args)

        fast = None if seg.fast is None else functools.partial(record, _variant="fast")
        segments.append(dataclasses.replace(seg, call=record, fast=fast))
    sim.segments = tuple(segments)
    with contextlib.ExitStack() as stack:
        where = trace_dir or stack.enter_context(tempfile.TemporaryDirectory())
        try:
            sim.step()  # compiles the traced copies
            recording[0] = True
            with jax.profiler.trace(where, create_perfetto_trace=True):
                for _ in range(ticks):
                    sim.step()
        finally:
            sim.segments = original
        paths = sorted(glob.glob(os.path.join(where, "**", "perfetto_trace.json.gz"), recursive=True))
        events = []
        if paths:
            with gzip.open(paths[-1]) as f:
                data = json.load(f)
            events = data["traceEvents"] if isinstance(data, dict) else data
    frames: dict[str, list[dict[str, list[Frame]]]] = {}
    for seg in traced:
        if seg.host or seg.names not in calls:
            continue
        texts = {
            sig: hlo_frames(getattr(seg, sig[0]).lower(*spec).compile().as_text())
            for sig, spec in specs[seg.names].items()
        }
        frames["jit_segment_" + "_".join(seg.names)] = [texts[sig] for sig in calls[seg.names]]
    return summarise(events, frames, ticks)


def summarise(events: list, frames: dict[str, list[dict[str, list[Frame]]]], ticks: int) -> dict:
    """Per phase and per project line, from the trace's per-op events (see :func:`profile`).

    ``frames[module]`` holds one op -> frames map per run of the module, in run order (a
    single map serves every run when the counts differ)."""
    events = [e for e in events if e.get("ph") == "X" and (e.get("args") or {}).get("hlo_module") in frames
              and (e.get("args") or {}).get("hlo_op") is not None]
    first: dict[tuple, float] = {}
    for e in events:
        key = (e["args"]["hlo_module"], e["args"].get("run_id"))
        first[key] = min(first.get(key, e["ts"]), e["ts"])
    order = sorted(first, key=first.get)
    program: dict[tuple, dict] = {}
    for module, maps in frames.items():
        mine = [k for k in order if k[0] == module]
        for i, key in enumerate(mine):
            program[key] = maps[i] if len(maps) == len(mine) else maps[0]
    runs: dict[tuple, list] = collections.defaultdict(list)
    cost: dict[tuple, float] = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()
    system: dict[tuple, str] = {}
    for e in events:
        a = e["args"]
        module, op = a["hlo_module"], a["hlo_op"]
        if op.startswith("while"):
            continue  # a while op's time is its body's ops, counted one by one
        runs[(module, a.get("run_id"))].append((e["ts"], e["dur"]))
        chain = program[(module, a.get("run_id"))].get(op) or []
        # An op without a project line (a copy XLA inserted, the tree of a large reduction,
        # library code) is charged to its kind: "(xla: copy)", "(xla: wrapped_reduce-window)".
        where = f"{chain[0].file}:{chain[0].line}" if chain else f"(xla: {re.sub(r'[.][0-9]+$', '', op)})"
        key = (module, where)
        cost[key] += e["dur"]
        count[key] += 1
        if chain:
            system.setdefault(key, chain[-1].file)
    phases = []
    for module in frames:
        spans = [(max(t + d for t, d in r) - min(t for t, _ in r), sum(d for _, d in r), len(r))
                 for (m, _), r in runs.items() if m == module]
        if not spans:
            continue
        n = len(spans)
        phases.append({
            "phase": _phase_label(module),
            "runs": n,
            "span_ms": round(sum(s for s, _, _ in spans) / n / 1e3, 4),
            "op_ms": round(sum(o for _, o, _ in spans) / n / 1e3, 4),
            "ops": round(sum(c for _, _, c in spans) / n, 1),
        })
    # Per run of the line's program, counted in the trace (a read phase runs twice on a
    # tick whose borrow pools overflow).
    n_runs = collections.Counter(m for m, _ in runs)
    lines = []
    for (module, loc), us in sorted(cost.items(), key=lambda kv: -kv[1] / n_runs[kv[0][0]]):
        file, _, line = loc.partition(":")
        code = linecache.getline(str(ROOT / file), int(line)).strip() if line.isdigit() else ""
        lines.append({
            "phase": _phase_label(module),
            "line": loc,
            "system": system.get((module, loc), ""),
            "ms_per_tick": round(us / n_runs[module] / 1e3, 4),
            "ops_per_tick": round(count[(module, loc)] / n_runs[module], 2),
            "code": code,
        })
    return {"ticks": ticks, "phases": phases, "lines": lines}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.profile_tick", description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--mix", choices=["basic", "all", "default", "tiers"], default="tiers",
                    help="population mix, as in qtg.bench.world (default tiers: the seed_100k mix)")
    ap.add_argument("--market", choices=["two", "default"], default="default")
    ap.add_argument("--ticks", type=int, default=50, help="traced ticks (default 50)")
    ap.add_argument("--warmup", type=int, default=100, help="ticks run before tracing (default 100)")
    ap.add_argument("--top", type=int, default=25, help="lines printed (default 25)")
    ap.add_argument("--json", help="write the full table to this file")
    args = ap.parse_args(argv)
    if args.agents < 1 or args.ticks < 1 or args.warmup < 0 or args.top < 0:
        ap.error("--agents and --ticks must be >= 1, --warmup and --top >= 0")

    from qtg.bench.world import world_config
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for

    cfg = world_config(args.agents, args.warmup + args.ticks + 1, "fast", args.mix, args.market)
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    del world
    print(f"warming up: {args.warmup} ticks at {args.agents:,} agents ...", file=sys.stderr)
    for _ in range(args.warmup):
        sim.step()
    print(f"tracing {args.ticks} ticks ...", file=sys.stderr)
    report = profile(sim, args.ticks)
    report.update(agents=args.agents, mix=args.mix, market=args.market, backend=jax.default_backend())
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if not report["phases"]:
        print("no per-op events in the trace: per-op timing needs the CPU backend "
              f"(this run used {jax.default_backend()})")
        return 0
    print(f"{'phase':58s} {'span ms':>8s} {'op ms':>8s} {'ops':>7s}")
    for p in report["phases"]:
        print(f"{p['phase'][:58]:58s} {p['span_ms']:8.3f} {p['op_ms']:8.3f} {p['ops']:7.1f}")
    print(f"\n{'ms/tick':>8s} {'ops':>6s}  {'phase':8s} line")
    for row in report["lines"][: args.top]:
        phase = row["phase"].split("+")[0]
        print(f"{row['ms_per_tick']:8.3f} {row['ops_per_tick']:6.1f}  {phase:8s} {row['line']:34s} {row['code'][:64]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
