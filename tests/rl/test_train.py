"""qtg.rl.trainer and qtg.rl.ppo: PPO on a tiny market improves its return over its first
updates, writes its files, and a training resumed from a checkpoint ends bit for bit
where the uninterrupted one did; qtg.export's ONNX model is the policy to 1e-5 on
recorded market observations; the rl_policy kind trades in a run exactly as the learner
it replaces does when the policy sets its actions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from qtg.core.config import ConfigError, config_dict
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.rl import checkpoint as ckpt
from qtg.rl import ppo
from qtg.rl.config import load
from systems import policy as pol
from systems.features import SPEC, features
from systems.observe import observe_market
from systems.strategies import learner
from tests.support import make_config

pytestmark = pytest.mark.slow  # PPO's program and two host worlds compile

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["population.noise.count=10", "engine.capacity=64", "env.warmup=0", "env.episode=16",
         "reward.cost_bps=50", "train.seeds=2", "train.num_envs=8", "train.num_steps=16", "train.minibatches=2",
         "train.epochs=2", "train.hidden=[16,16]", "train.chunk=4", "train.lr=0.01", "seed=3"]
"""A 14-agent ACME market (2 makers, 10 noise traders, the learner), two seeds of eight
markets, 16-step rollouts, episodes from the opening itself (no warm-up to compile): PPO's
program compiles in seconds. The reward charges 50 bp on the value traded, so trading at
random costs far more than the market moves: a policy that learns anything learns to
trade less, and its return rises within a few updates."""
UPDATES = 12


def _train(*overrides, out):
    """``python -m qtg.train`` (a process of its own: it runs XLA on one CPU thread,
    ``qtg.rl.one_cpu_thread``, which a test worker's JAX, already started, cannot)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-m", "qtg.train", *TRAIN, *overrides, f"hydra.run.dir={out}"],
                          cwd=out.parent, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("qtg.train: ") and f"outputs in {out}" in done.stdout
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The training of 12 updates, keeping its checkpoint of every 4; and the same
    training resumed from its checkpoint at update 4."""
    root = tmp_path_factory.mktemp("train")
    full = _train(f"train.updates={UPDATES}", "train.keep=true", out=root / "full")
    at4 = root / "full" / "checkpoints" / "update_000004.npz"
    resumed = _train(f"train.updates={UPDATES}", f"train.resume={at4}", out=root / "resumed")
    return root, full, resumed


def test_the_return_improves_over_the_first_updates(runs):
    root, full, _ = runs
    ret = np.array(json.loads((root / "full" / "metrics.json").read_text())["episode_return"], dtype=float)
    assert ret.shape == (2, UPDATES) and np.isfinite(ret).all()  # 8 markets x 16 steps: episodes end every update
    first, last = ret[:, :3].mean(axis=1), ret[:, -3:].mean(axis=1)
    assert (last > first + 0.1).all(), (first, last)  # each seed
    assert full["updates"] == UPDATES and full["env_steps"] == UPDATES * 2 * 8 * 16


def test_the_run_directory_has_every_file(runs):
    root, full, _ = runs
    out = root / "full"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "update,seed,env_steps," + ",".join(ppo.METRICS)
    assert len(rows) == 1 + UPDATES * 2 and rows[-1].startswith(f"{UPDATES},1,{UPDATES * 256},")
    assert json.loads((out / "observation_spec.json").read_text()) == SPEC.to_dict()
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"update_{u:06d}.npz" for u in (4, 8, 12)]
    layers, meta = pol.read_policy(out)
    assert [w.shape for w, _ in layers] == [(SPEC.size, 16), (16, 16), (16, 5)]
    assert meta["actions"] == 5 and meta["seed"] == full["best_seed"] and meta["updates"] == UPDATES
    # the market it trained in, for an evaluation to rebuild: the overrides but train.* (and hydra.*)
    assert meta["overrides"] == [o for o in TRAIN if not o.startswith("train.")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["train"]["updates"] == UPDATES and summary["env_steps_per_s"] > 0


def test_a_resumed_training_ends_bit_for_bit_where_the_uninterrupted_one_did(runs):
    root, _, resumed = runs
    assert resumed["updates"] == UPDATES
    with np.load(root / "full" / "checkpoint.npz") as a, np.load(root / "resumed" / "checkpoint.npz") as b:
        names = [n for n in a.files if n != "meta"]
        assert names == [n for n in b.files if n != "meta"] and len(names) > 50
        for n in names:
            assert a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n], equal_nan=True), n
        assert json.loads(str(b["meta"]))["updates"] == UPDATES
    # The checkpoint it resumed from differs (4 updates): the comparison above can fail.
    with np.load(root / "full" / "checkpoints" / "update_000004.npz") as p, \
            np.load(root / "full" / "checkpoint.npz") as a:
        assert not np.array_equal(p["leaf_0"], a["leaf_0"])


def test_a_checkpoint_of_another_config_is_refused_with_one_line(runs):
    root, *_ = runs
    cfg = load([*TRAIN, "train.lr=0.001", f"train.resume={root / 'full'}"])
    with pytest.raises(ckpt.CheckpointError, match=r"^train.resume: .* was trained with train.lr=0.01, this config "
                                                   r"has 0.001; resume with the same config"):
        ckpt.check_config(ckpt.read_meta(cfg.train.resume)["config"], config_dict(cfg), cfg.train.resume)
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint there"):
        ckpt.read_meta(root / "nowhere")


# -- the policy as an agent, and as ONNX ----------------------------------------------------

WORLD = {"market.symbols": ["ACME"], "market.sectors": [], "population.market_maker.count": 2,
         "population.noise.count": 10, "engine.capacity": 64}
AGENTS = 8
TICKS = 125  # 8 agents x 125 ticks: 1,000 observations


def _policy_file(path):
    """A policy that acts on what it sees: it buys below half its position limit and
    sells above it (feature ``position``), leaning with the fast trend and the book's
    imbalance in between."""
    names = list(SPEC.names)
    w1, b1 = np.zeros((SPEC.size, 3)), np.array([-2.5, 0.0, 0.0])
    w1[names.index("position"), 0], w1[names.index("trend_fast"), 1], w1[names.index("imbalance"), 2] = 5.0, 1.0, 3.0
    w2 = np.zeros((3, 5))
    w2[0, 0], w2[0, 4], w2[1, 0], w2[1, 4] = 2.0, -2.0, 1.0, -1.0  # sell when long or rising; buy when short or falling
    w2[2, 1], w2[2, 3] = 1.0, -1.0
    return ckpt.write_policy(path, [(w1, b1), (w2, np.zeros(5))], pol.meta_for("trading", 5, levels=2))


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    """The learners' world with the policy setting their actions each tick (the host loop,
    observations as the environment builds them), next to the rl_policy world."""
    path = _policy_file(tmp_path_factory.mktemp("policy") / "policy.npz")
    layers, _ = pol.read_policy(path)
    both = {"size": [50, 50], "shares": 100, "max_position": [300, 300]}
    cfg_l = make_config(**WORLD, **{"population.learner.count": AGENTS},
                        **{f"population.learner.{k}": v for k, v in both.items()})
    cfg_p = make_config(**WORLD, **{"population.rl_policy.count": AGENTS, "population.rl_policy.policy": str(path)},
                        **{f"population.rl_policy.{k}": v for k, v in both.items()})
    wl, wp = build_world(cfg_l), build_world(cfg_p)
    sim_l = Simulation(wl.static, wl.params, wl.state, make_engine_for(cfg_l, wl.static))
    sim_p = Simulation(wp.static, wp.params, wp.state, make_engine_for(cfg_p, wp.static))
    kind = wl.static.kind(learner.KIND)
    rows = kind.start + jnp.arange(kind.count)
    trade = wl.params.kinds[learner.KIND].trade

    @jax.jit
    def observe(state):
        _, frame = observe_market(wl.static, wl.params, state, Frame(), jax.random.key(0))
        return features(state, frame, rows, trade.symbol, trade.max_position)

    observed, actions, mismatches = [], [], []
    for t in range(TICKS):
        obs = observe(sim_l.state)
        action = pol.act(layers, obs)
        observed.append(np.asarray(obs))
        actions.append(np.asarray(action))
        sim_l.state = learner.with_actions(sim_l.state, action)
        sim_l.step()
        sim_p.step()
        if not (np.array_equal(np.asarray(sim_l.state.wallet.cash), np.asarray(sim_p.state.wallet.cash))
                and np.array_equal(np.asarray(sim_l.state.wallet.position), np.asarray(sim_p.state.wallet.position))
                and np.array_equal(np.asarray(sim_p.state.kinds["rl_policy"].action), np.asarray(action))):
            mismatches.append(t)
    return {"path": path, "layers": layers, "wl": wl, "wp": wp, "sim_l": sim_l, "sim_p": sim_p, "kind": kind,
            "obs": np.concatenate(observed), "actions": np.stack(actions), "mismatches": mismatches}


def test_rl_policy_trades_as_the_learner_it_replaces_with_the_policy_acting(policy_run):
    r = policy_run
    k_l, k_p = r["kind"], r["wp"].static.kind("rl_policy")
    assert (k_p.start, k_p.count, k_p.batch_start) == (k_l.start, k_l.count, k_l.batch_start)  # the learner's place in the layout
    assert r["mismatches"] == []  # cash, shares and the action, every tick
    acts = r["actions"]
    assert len(np.unique(acts)) >= 3  # the policy buys, sells and holds: the comparison has teeth
    start = np.asarray(r["wl"].state.wallet.position)[k_l.start:k_l.start + AGENTS, 0]
    end = np.asarray(r["sim_p"].state.wallet.position)[k_p.start:k_p.start + AGENTS, 0]
    assert (start == 100).all() and not np.array_equal(start, end)


def test_the_onnx_model_is_the_policy_on_1000_recorded_observations(policy_run, tmp_path):
    from qtg.export import compare, run_onnx, write_onnx

    r = policy_run
    obs = r["obs"]
    assert obs.shape == (AGENTS * TICKS, SPEC.size) and np.abs(obs).max() > 0.5
    _, meta = pol.read_policy(r["path"])
    path = write_onnx(r["layers"], meta, tmp_path / "policy.onnx")
    report = compare(r["layers"], path, obs)
    assert report["observations"] == 1000 and report["max_abs_diff"] <= 1e-5 and report["actions_differ"] == 0
    _, action = run_onnx(path, obs)
    assert np.array_equal(action, r["actions"].reshape(-1))
    # The ONNX file is a policy file too: same layers, same meta.
    layers, meta2 = pol.read_policy(path)
    assert meta2 == meta and all(np.array_equal(a, b) for (a, _), (b, _) in zip(layers, r["layers"]))


def test_a_policy_of_another_observation_spec_is_refused_with_one_line(tmp_path):
    layers, meta = [(np.zeros((SPEC.size, 5)), np.zeros(5))], pol.meta_for("trading", 5)
    meta["spec"]["version"] = SPEC.version + 1
    path = ckpt.write_policy(tmp_path / "old.npz", layers, meta)
    with pytest.raises(ConfigError, match=rf"^population.rl_policy.policy: .*old.npz: observation spec version "
                                          rf"{SPEC.version + 1} does not match this qtg's version {SPEC.version}"):
        make_config(**WORLD, **{"population.rl_policy.count": 1, "population.rl_policy.policy": str(path)})
    with pytest.raises(ConfigError, match=r"^population.rl_policy.policy: a trained policy is needed"):
        make_config(**WORLD, **{"population.rl_policy.count": 1})
    with pytest.raises(ConfigError, match=r"^population.rl_policy.policy: .*nope.npz: no such policy file"):
        make_config(**WORLD, **{"population.rl_policy.count": 1, "population.rl_policy.policy": str(tmp_path / "nope.npz")})
