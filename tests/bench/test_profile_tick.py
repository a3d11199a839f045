"""qtg.bench.profile_tick: XLA's per-op trace charged to project lines, without changing the run."""

import jax
import numpy as np
import pytest

from qtg.bench.profile_tick import ROOT, Frame, hlo_frames, profile
from qtg.bench.world import world_config
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for

HLO = f"""HloModule m

FileNames
1 "{ROOT}/qtg/core/schedule.py"
2 "{ROOT}/systems/settle.py"
3 "{ROOT}/components/money.py"
4 "/elsewhere/site-packages/jax/_src/numpy.py"

FunctionNames
1 "run"
2 "settle_fills"
3 "apply_rate"
4 "where"

FileLocations
1 {{file_name_id=1 function_name_id=1 line=157 end_line=157 column=1 end_column=2}}
2 {{file_name_id=2 function_name_id=2 line=48 end_line=48 column=1 end_column=2}}
3 {{file_name_id=3 function_name_id=3 line=59 end_line=59 column=1 end_column=2}}
4 {{file_name_id=4 function_name_id=4 line=7 end_line=7 column=1 end_column=2}}

StackFrames
1 {{file_location_id=1 parent_frame_id=1}}
2 {{file_location_id=2 parent_frame_id=2}}
3 {{file_location_id=3 parent_frame_id=3}}
4 {{file_location_id=4 parent_frame_id=4}}

ENTRY %main (p: s64[4]) -> s64[4] {{
  %p = s64[4]{{0}} parameter(0)
  %add_fusion.3 = s64[4]{{0}} fusion(%p), kind=kLoop, calls=%f, metadata={{op_name="x" stack_frame_id=4}}
  ROOT %copy.1 = s64[4]{{0}} copy(%add_fusion.3)
}}
"""


def test_hlo_frames_walk_the_parents_and_keep_only_the_projects_frames():
    frames = hlo_frames(HLO)
    # Frame 4 (jax's where) -> 3 (money.py:59) -> 2 (settle.py:48) -> 1 (the schedule's run):
    # the parent is printed as its id + 1, jax's own frame and the schedule's are skipped.
    assert frames["add_fusion.3"] == [
        Frame("components/money.py", 59, "apply_rate"),
        Frame("systems/settle.py", 48, "settle_fills"),
    ]
    assert "copy.1" not in frames  # no source metadata


@pytest.fixture(scope="module")
def profiled():
    cfg = world_config(60, 40, "fast", "basic", "two")

    def make():
        w = build_world(cfg)
        return Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))

    sim, reference = make(), make()
    for _ in range(3):
        sim.step()
    report = profile(sim, ticks=3)
    for _ in range(3 + 1 + 3):  # warm-up, the compiling step, the traced ticks
        reference.step()
    return sim, reference, report


@pytest.mark.slow
def test_profiling_does_not_change_the_run(profiled):
    sim, reference, _ = profiled
    assert int(sim.state.tick) == int(reference.state.tick) == 7
    def host(x):
        return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    for a, b in zip(jax.tree.leaves(sim.state), jax.tree.leaves(reference.state)):
        assert np.array_equal(host(a), host(b))
    # The simulation's own segments are back (not the traced copies).
    assert sim.segments == reference.segments
    assert sim.step().tick == reference.step().tick


@pytest.mark.slow
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="per-op events are the CPU backend's")
def test_the_report_charges_every_op_to_a_phase_and_to_real_project_lines(profiled):
    _, _, report = profiled
    phases = {p["phase"]: p for p in report["phases"]}
    assert set(phases) == {"observe+decide+admit+arrive",
                           "settle+commit+fundamentals+background+measure+indicators+equity"}
    for p in phases.values():
        assert p["runs"] == 3 and p["ops"] > 10 and 0 < p["op_ms"] and 0 < p["span_ms"]
    # Lines and phases are the same events, grouped two ways.
    for name, p in phases.items():
        by_line = sum(r["ms_per_tick"] for r in report["lines"] if r["phase"] == name)
        assert by_line == pytest.approx(p["op_ms"], abs=5e-3)
        ops = sum(r["ops_per_tick"] for r in report["lines"] if r["phase"] == name)
        assert ops == pytest.approx(p["ops"], abs=0.1)
    files = set()
    for row in report["lines"]:
        if row["line"].startswith("("):
            continue
        file, line = row["line"].split(":")
        text = (ROOT / file).read_text().splitlines()
        assert 1 <= int(line) <= len(text) and row["code"] == text[int(line) - 1].strip()
        files.add(file)
    assert "systems/admission.py" in files and "systems/settle.py" in files
