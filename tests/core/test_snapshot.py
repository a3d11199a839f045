"""Snapshots: the whole world saved at a tick boundary resumes bit-identically, damaged or
foreign snapshots are refused with one clear line, and the Snapshotter hook writes when
it should (qtg/core/snapshot.py, the engines' state_dict, the hooks' cursors)."""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import struct

import jax
import numpy as np
import pytest

import qtg
from components.orders import STP
from qtg.core.compose import load_config
from qtg.core.config import config_dict
from qtg.core.schedule import DeviceSegment
from qtg.core.sim import Simulation
from qtg.core.snapshot import (
    FORMAT_VERSION,
    MAGIC,
    SnapshotError,
    Snapshotter,
    read_snapshot,
    save_snapshot,
)
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Metrics, Recorder
from qtg.hooks.storage import Storage
from qtg.reports.impact import ImpactRecorder
from qtg.run import run_job, stop_on_signals
from systems.matching import make_engine
from systems.matching.stream import mixed_stream

TICKS, AT = 80, 35
WORLD = [
    "market.symbols=[ACME,BOLT]",
    "population.market_maker.count=8",  # queues of several orders at a price: priority matters
    "population.noise.count=60",
    "population.threshold_trader.count=5",  # tier 2: wake conditions in state.kinds
    "population.stop_loss.count=5",
    "population.trend_follower.count=4",
    "population.trend_follower.latency=2",  # a latency ring in state.delayed
    "population.background.count=1000",  # tier 3: the pool's ring of resting ids
    "news.earnings.rate=0.05",  # news in the first ticks (fundamentals, sentiment, events)
    "news.earnings.min_interval=10",
    "news.sector.rate=0.05",
    "news.sector.min_interval=10",
    "storage.candles=[10,25,60]",  # candles still open at the snapshot
    "storage.portfolio_every=10",
    "storage.batch_ticks=20",
]
FILL_FIELDS = ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty")
STORED = {  # storage tables and their key order
    "trades": "tick, seq", "ticks": "tick, symbol", "candles": "interval, symbol, start_tick",
    "events": "tick, seq", "portfolio_snapshots": "tick, agent", "portfolio_positions": "tick, agent, symbol",
}



class Fills:
    """Every fill of the run, with its tick."""

    def on_start(self, sim):
        self.ticks, self.cols = [], {f: [] for f in FILL_FIELDS}

    def on_tick(self, sim, r):
        self.ticks.append(np.full(len(r.fills), r.tick, np.int64))
        for f in FILL_FIELDS:
            self.cols[f].append(np.array(getattr(r.fills, f)))

    def on_end(self, sim):
        pass

    def since(self, tick: int) -> dict[str, np.ndarray]:
        t = np.concatenate(self.ticks)
        out = {f: np.concatenate(c)[t >= tick] for f, c in self.cols.items()}
        out["tick"] = t[t >= tick]
        return out


def leaves(tree) -> dict[str, np.ndarray]:
    """Every leaf of a pytree as a host array (PRNG keys as their key data)."""
    out = {}
    for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(p)] = np.array(leaf)
    return out


def assert_bitwise_equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what} {k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"{what} {k} differs"


def stored(db) -> dict[str, list]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY run_id, {key}").fetchall() for t, key in STORED.items()}
    finally:
        con.close()


def run_hooks(cfg, db, fills):
    return [Recorder(), ImpactRecorder(capacity=40), Metrics(None),
            Storage(db, cfg.storage, config_dict(cfg), cfg.seed), fills]


def programs(sim: Simulation) -> int:
    """Programs compiled so far by the jitted segments ``sim`` runs (shared by every
    simulation of its schedule in this process)."""
    return sum(f._cache_size() for seg in sim.segments if isinstance(seg, DeviceSegment)
               for f in (seg.call, seg.fast) if f is not None)


@dataclasses.dataclass
class Case:
    cfg: object
    straight: Simulation
    resumed: Simulation
    a: list  # the straight run's hooks (recorder, impact, metrics, storage, fills)
    b: list  # the resumed run's
    loaded: list
    tables_a: dict
    tables_b: dict
    snapshots: list
    tick_after_restore: int
    compiled: int  # programs the resumed run compiled (the straight run had compiled its shapes)


def resume_case(engine: str, tmp) -> Case:
    """A straight run of TICKS ticks writing a snapshot every AT ticks, and a run resumed
    from the first one (fresh world and engine, fresh hooks) to the same end."""
    cfg = load_config(WORLD + [f"engine={engine}", f"run.ticks={TICKS}"])
    db = tmp / "qtg.sqlite"
    world = build_world(cfg)
    straight = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    a = run_hooks(cfg, db, Fills())
    snaps = Snapshotter(tmp / "snapshots", cfg, a, every=AT, run_dir=tmp)
    straight.run(TICKS, [*a, snaps])
    tables_a = stored(db)

    snap = read_snapshot(snaps.written[0])
    before = programs(straight)
    rcfg = snap.merged_config(cfg)
    fresh = build_world(rcfg)
    resumed = snap.restore(fresh, make_engine_for(rcfg, fresh.static))
    tick_after_restore = resumed.tick
    b = run_hooks(rcfg, db, Fills())
    loaded = snap.load_hooks(b)
    resumed.run(TICKS - AT, b)
    return Case(cfg, straight, resumed, a, b, loaded, tables_a, stored(db), list(snaps.written), tick_after_restore,
                programs(resumed) - before)


@pytest.fixture(scope="module", params=["fast", "exact"])
def case(request, tmp_path_factory) -> Case:
    return resume_case(request.param, tmp_path_factory.mktemp(f"resume_{request.param}"))


@pytest.fixture(scope="module")
def fast_case(tmp_path_factory) -> Case:
    return resume_case("fast", tmp_path_factory.mktemp("resume_fast_files"))


# ---------------------------------------------------------------------- resume == straight
@pytest.mark.slow  # the module's two resumed runs (one per engine)
def test_resume_starts_at_the_snapshot_tick(case):
    assert [p.name for p in case.snapshots] == [f"tick_{AT:07d}.qtgsnap", f"tick_{2 * AT:07d}.qtgsnap"]
    assert case.tick_after_restore == AT
    assert sorted(case.loaded) == ["impact", "metrics", "recorder", "storage"]
    assert case.straight.tick == case.resumed.tick == TICKS
    assert case.compiled == 0  # restored params and state are committed like built ones: the same programs


@pytest.mark.slow  # the module's two resumed runs (one per engine)
def test_resume_gives_the_same_fills(case):
    a, b = case.a[-1].since(AT), case.b[-1].since(AT)
    assert len(b["tick"]) > 50 and set(b["tick"]) <= set(range(AT, TICKS))
    assert_bitwise_equal(a, b, "fills")


@pytest.mark.slow  # the module's two resumed runs (one per engine)
def test_resume_gives_the_same_state_wallets_and_books(case):
    sa, sb = case.straight.state, case.resumed.state
    for field in ("cash", "position", "borrowed"):
        np.testing.assert_array_equal(np.asarray(getattr(sa.wallet, field)), np.asarray(getattr(sb.wallet, field)))
    assert_bitwise_equal(leaves(sa), leaves(sb), "state")
    assert_bitwise_equal(leaves(case.straight.params), leaves(case.resumed.params), "params")
    assert_bitwise_equal(case.straight.engine.resting_orders(), case.resumed.engine.resting_orders(), "resting")
    assert case.straight.engine.stats() == case.resumed.engine.stats()
    assert case.resumed.engine.n_resting() > 0


@pytest.mark.slow  # the module's two resumed runs (one per engine)
def test_resume_gives_the_same_hook_results(case):
    ra, rb = case.a[0], case.b[0]
    assert ra.fill_hash == rb.fill_hash
    ha, hb = ra.arrays(), rb.arrays()
    del ha["seconds"], hb["seconds"]
    assert_bitwise_equal(ha, hb, "recorder")
    assert ha["last"].shape == (TICKS, 2)
    assert ra.events == rb.events and len(ra.events) > 0
    assert (ra.submitted, ra.accepted) == (rb.submitted, rb.accepted)
    for name in ("rejects", "status", "notional", "trades"):
        np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name))
    ia, ib = case.a[1], case.b[1]
    assert ia.n > ia.capacity  # the reservoir sampled (with its generator) on both sides of the cut
    assert ia.summary() == ib.summary()
    assert ia.records().tobytes() == ib.records().tobytes()
    ma, mb = case.a[2], case.b[2]
    assert (ma.orders, ma.fills, len(ma.seconds)) == (mb.orders, mb.fills, len(mb.seconds))


@pytest.mark.slow  # the module's two resumed runs (one per engine)
def test_resume_gives_the_same_database(case):
    assert len(case.tables_a["trades"]) > 100 and len(case.tables_a["candles"]) > 0
    for table in STORED:
        assert case.tables_a[table] == case.tables_b[table], table


def test_comparisons_see_a_changed_world(fast_case, tmp_path):
    """Control: the same resume with another PRNG key trades differently."""
    snap = read_snapshot(fast_case.snapshots[0])
    snap.arrays["state.key"][-1] ^= 1
    world = build_world(fast_case.cfg)
    sim = snap.restore(world, make_engine_for(fast_case.cfg, world.static))
    fills = Fills()
    sim.run(10, [fills])
    a = {k: v[: len(fills.since(AT)["tick"])] for k, v in fast_case.a[-1].since(AT).items()}
    assert any(a[k].tobytes() != v.tobytes() for k, v in fills.since(AT).items())


# ---------------------------------------------------------------------- engines
@pytest.mark.parametrize("name", ["fast", "exact", "device"])
@pytest.mark.parametrize("stp", list(STP), ids=lambda s: s.name.lower())
def test_engine_state_round_trip(name, stp):
    """An engine loaded with another's state_dict matches every later batch exactly
    (the fast engine starts tiny, so its capacities grew before the save)."""
    tick = [100, 50]
    small = {"order_capacity": 4, "level_capacity": 2, "side_capacity": 1} if name == "fast" else {}
    a = make_engine(name, tick, stp, **small)
    batches = [mixed_stream(300, 2, seed=s, tick=tick, first_id=1 + 1000 * s, n_levels=8) for s in range(6)]
    for batch in batches[:3]:
        a.process(batch)
    b = make_engine(name, tick, stp)
    b.load_state_dict(a.state_dict())
    assert_bitwise_equal(a.resting_orders(), b.resting_orders(), "resting")
    for batch in batches[3:]:
        ra, rb = a.process(batch), b.process(batch)
        for part in ("outcomes", "fills", "updates"):
            pa, pb = getattr(ra, part), getattr(rb, part)
            assert_bitwise_equal({f.name: getattr(pa, f.name) for f in dataclasses.fields(pa)},
                                 {f.name: getattr(pb, f.name) for f in dataclasses.fields(pb)}, part)
        assert len(ra.fills) > 0
    assert_bitwise_equal(a.resting_orders(), b.resting_orders(), "resting")
    assert a.stats() == b.stats()
    if name == "fast":
        assert all(v > 0 for v in a.stats()["grows"].values())


def test_engine_state_is_a_copy_and_checked():
    a = make_engine("fast", [100])
    a.process(mixed_stream(200, 1, seed=1))
    d = a.state_dict()
    before = a.resting_orders()
    d["bk_qty"][:] = -1  # editing the dict leaves the engine alone
    assert_bitwise_equal(before, a.resting_orders(), "resting")
    with pytest.raises(ValueError, match="tick sizes"):
        make_engine("fast", [50]).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="engine 'fast', not 'exact'"):
        make_engine("exact", [100]).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="STP mode"):
        make_engine("fast", [100], STP.CANCEL_MAKER).load_state_dict(a.state_dict())
    e = make_engine("exact", [100])
    e.process(mixed_stream(200, 1, seed=1))
    bad = e.state_dict()
    bad["orders"]["id"][1] = bad["orders"]["id"][0]
    with pytest.raises(ValueError, match="rests twice"):
        make_engine("exact", [100]).load_state_dict(bad)


# ---------------------------------------------------------------------- refusals
def reseal(raw: bytes, *, header: dict | None = None, version: int | None = None) -> bytes:
    """Rewrite a snapshot following the documented layout (a valid checksum)."""
    _, v, reserved, _, _ = struct.unpack_from("<8sIIQ32s", raw)
    (hlen,) = struct.unpack_from("<Q", raw, 56)
    old = json.loads(raw[64 : 64 + hlen])
    data = raw[-(-(64 + hlen) // 64) * 64 :]
    text = json.dumps(header if header is not None else old, separators=(",", ":")).encode()
    body = struct.pack("<Q", len(text)) + text
    body += bytes(-(-(64 + len(text)) // 64) * 64 - 64 - len(text)) + data
    total = 56 + len(body)
    fixed = struct.pack("<IIQ", version if version is not None else v, reserved, total)
    digest = hashlib.sha256(fixed + body).digest()
    return MAGIC + fixed + digest + body


@pytest.fixture(scope="module")
def snap_bytes(fast_case) -> bytes:
    return fast_case.snapshots[0].read_bytes()


def refused(tmp_path, data: bytes) -> str:
    p = tmp_path / "x.qtgsnap"
    p.write_bytes(data)
    with pytest.raises(SnapshotError) as e:
        read_snapshot(p)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_reseal_follows_the_format(tmp_path, snap_bytes):
    assert snap_bytes[:8] == MAGIC and reseal(snap_bytes) == snap_bytes
    (tmp_path / "ok.qtgsnap").write_bytes(reseal(snap_bytes))
    snap = read_snapshot(tmp_path / "ok.qtgsnap")
    assert snap.tick == AT and snap.qtg_version == qtg.__version__
    assert snap.header["format"] == FORMAT_VERSION and snap.run_dir is not None


def test_refuses_truncated(tmp_path, snap_bytes):
    msg = refused(tmp_path, snap_bytes[: len(snap_bytes) // 2])
    assert "truncated" in msg and f"{len(snap_bytes):,}" in msg and "earlier snapshot" in msg
    assert "truncated" in refused(tmp_path, snap_bytes[:30])
    assert "truncated" in refused(tmp_path, b"")


def test_refuses_a_flipped_byte(tmp_path, snap_bytes):
    for at in (len(snap_bytes) - 100, 200, 10):  # data, header, version field
        data = bytearray(snap_bytes)
        data[at] ^= 0x01
        msg = refused(tmp_path, bytes(data))
        assert "corrupted" in msg and "checksum" in msg


def test_refuses_wrong_magic(tmp_path, snap_bytes):
    msg = refused(tmp_path, b"PK\x03\x04" + snap_bytes[4:])
    assert "not a qtg snapshot" in msg and "magic" in msg


def test_refuses_other_format_version(tmp_path, snap_bytes):
    msg = refused(tmp_path, reseal(snap_bytes, version=FORMAT_VERSION + 1))
    assert f"format version {FORMAT_VERSION + 1}" in msg and f"reads format version {FORMAT_VERSION}" in msg


def test_refuses_other_qtg_version(tmp_path, snap_bytes):
    (hlen,) = struct.unpack_from("<Q", snap_bytes, 56)
    header = json.loads(snap_bytes[64 : 64 + hlen])
    header["qtg_version"] = "9.9.9"
    msg = refused(tmp_path, reseal(snap_bytes, header=header))
    assert "written by qtg 9.9.9" in msg and f"this is qtg {qtg.__version__}" in msg


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(SnapshotError, match="no snapshot file at"):
        read_snapshot(tmp_path / "nope.qtgsnap")


def test_refuses_another_world_layout(fast_case):
    snap = read_snapshot(fast_case.snapshots[0])
    other = load_config(WORLD + ["population.noise.count=61"])
    world = build_world(other)
    n = world.static.n_agents
    with pytest.raises(SnapshotError, match=rf"another layout \(n_agents: snapshot {n - 1}, this world {n}"):
        snap.restore(world, make_engine_for(other, world.static))
    same = build_world(fast_case.cfg)
    with pytest.raises(SnapshotError, match="engine state does not fit"):
        snap.restore(same, make_engine("exact", fast_case.cfg.market.ticks(), STP.CANCEL_MAKER))


def test_merged_config_takes_the_world_from_the_snapshot(fast_case):
    path = str(fast_case.snapshots[0])
    cfg = load_config(WORLD + ["population.noise.count=7", "seed=5", "run.ticks=123", "metrics.every=3",
                               f"resume={path}"])
    merged = read_snapshot(path).merged_config(cfg)
    assert merged.population["noise"].count == 60 and merged.seed == fast_case.cfg.seed
    assert merged.market == fast_case.cfg.market and merged.news == fast_case.cfg.news
    assert (merged.run.ticks, merged.metrics.every, merged.resume) == (123, 3, path)


# ---------------------------------------------------------------------- Snapshotter
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_snapshotter_every_keep_request_signal_at_end(tmp_path, fast_case):
    cfg = fast_case.cfg
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    snaps = Snapshotter(tmp_path / "s", cfg, [], every=5, keep=2, at_end=True)
    old = signal.getsignal(signal.SIGUSR1)

    class Poke:
        def on_start(self, sim):
            pass

        def on_tick(self, sim, r):
            if r.tick == 6:
                snaps.request()
            if r.tick == 11:
                os.kill(os.getpid(), signal.SIGUSR1)  # handled by the Snapshotter, at this boundary

        def on_end(self, sim):
            pass

    with stop_on_signals(sim, snaps):  # python -m qtg.run's handlers: SIGUSR1 asks for a snapshot
        sim.run(23, [Poke(), snaps])
    names = lambda ticks: [f"tick_{t:07d}.qtgsnap" for t in ticks]  # noqa: E731
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == names([7, 12, 15, 20, 23])  # 5, 10 pruned
    assert [p.name for p in snaps.written] == names([7, 12, 15, 20, 23])
    assert signal.getsignal(signal.SIGUSR1) == old
    s7 = read_snapshot(tmp_path / "s" / names([7])[0])
    assert s7.tick == 7 and s7.hook_state("snapshot") == {"periodic": names([5])}
    assert read_snapshot(snaps.written[-1]).hook_state("snapshot") == {"periodic": names([15, 20])}
    assert snaps.failed == []


def test_snapshotter_every_zero_writes_only_on_request(tmp_path, fast_case):
    cfg = fast_case.cfg
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    snaps = Snapshotter(tmp_path / "s", cfg, [], every=0)
    sim.run(4, [snaps])
    assert snaps.written == [] and not (tmp_path / "s").exists()
    snaps.request()  # between runs: written at the next boundary, the end of the next run's first tick
    sim.run(2, [snaps])
    assert [p.name for p in snaps.written] == ["tick_0000005.qtgsnap"]
    save_snapshot(tmp_path / "direct.qtgsnap", sim, cfg)
    assert read_snapshot(tmp_path / "direct.qtgsnap").tick == 6


# ---------------------------------------------------------------------- end to end
def test_run_job_resume_matches_the_straight_run(tmp_path):
    base = WORLD + ["run.ticks=40", "run.chart=false", "run.table=false", "run.agents_table=false",
                    "hooks=[metrics,storage]", "snapshot.every=15"]
    run_dir = tmp_path / "run"
    straight = run_job(load_config(base), run_dir)
    files = {n: (run_dir / n).read_bytes() for n in ("prices.csv", "events.csv", "impact.csv")}
    trades = stored(run_dir / "qtg.sqlite")
    snaps = sorted((run_dir / "snapshots").glob("*.qtgsnap"))
    assert [p.name for p in snaps] == ["tick_0000015.qtgsnap", "tick_0000030.qtgsnap"]
    assert straight["run"]["snapshots"] == [str(p) for p in snaps]

    resumed = run_job(load_config(base + [f"resume={snaps[0]}"]), tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()  # it continued in the snapshot's run directory
    assert resumed["run"]["resumed_from"] == str(snaps[0]) and resumed["run"]["ticks_this_process"] == 40 - 15
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["fill_hash"] == resumed["fill_hash"] == straight["fill_hash"]
    timing = {"elapsed_s", "ms_per_tick_median", "ticks_this_process", "resumed_from", "snapshots"}
    for key in set(straight) - {"metrics", "storage"}:
        if key == "run":
            assert {k: v for k, v in straight[key].items() if k not in timing} == \
                   {k: v for k, v in resumed[key].items() if k not in timing}
        else:
            assert straight[key] == resumed[key], key
    for name, data in files.items():
        assert (run_dir / name).read_bytes() == data, name
    assert stored(run_dir / "qtg.sqlite") == trades
    shutil.rmtree(run_dir / "snapshots")
