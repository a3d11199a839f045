"""qtg.rl.market_making: the learners quote as quoter agents made from the learner entry,
the summed reward is the change of the wallet's equity with the inventory and closing
penalties, the quotes never take the position past its limits, Avellaneda–Stoikov's
levels follow its formulas, sigma is the mids' volatility, bad task settings are one line,
and the evaluation's rows are the policy and the two baselines."""

import math

import jax
import numpy as np
import pytest

from components.money import SCALE
from qtg.core.config import ConfigError
from qtg.rl.market_making import AS, HOLD, POLICY, SPEC, SYMMETRIC, MarketMakingEnv
from systems import measure
from systems.strategies import quoter
from tests.support import make_config

pytestmark = pytest.mark.slow  # the environment compiles the device tick

TINY = {"market.symbols": ["ACME"], "market.sectors": [], "population.market_maker.count": 2,
        "population.noise.count": 10, "population.learner.count": 1, "population.learner.max_position": [150, 150],
        "population.learner.max_short": 100, "engine.capacity": 64}
"""One symbol, two makers, ten noise traders and the learner (150 long, 100 short at most)."""
WARMUP, EPISODE, SIZE, INVENTORY, CLOSE = 12, 10, 40, 0.5, 5.0
KEYS = jax.random.split(jax.random.key(1), 4)
"""Every run's four episodes (one compiled program)."""


@pytest.fixture(scope="module")
def env():
    return MarketMakingEnv(make_config(**TINY), warmup=WARMUP, episode=EPISODE, quote_size=SIZE, levels=4,
                           step_bps=2.0, inventory_bps=INVENTORY, close_bps=CLOSE, as_gamma=5.0, as_k=5000.0)


def constant(action: int, actions: int = 25):
    """A policy that takes ``action`` wherever it looks."""
    return [(np.zeros((SPEC.size, actions), np.float32), np.eye(actions, dtype=np.float32)[action])]


def test_the_learner_quotes_as_a_quoter_made_from_the_learner_entry(env):
    params = env.default_params
    assert env.kind.name == "quoter" and env.kind.count == 1 and env.num_actions == 25
    p = params.world.kinds["quoter"]
    assert int(p.trade.size[0]) == SIZE and int(p.trade.max_position[0]) == 150 and int(p.levels[0]) == 4
    assert float(p.step[0]) == pytest.approx(2e-4) and int(params.world.max_short[env.kind.start]) == 100
    assert env.hold_action == 0 and [int(x[0]) for x in quoter.sides(p, jax.numpy.zeros(1, "int32"))] == [0, 0]
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (SPEC.size,) == (10,) and SPEC.names[-1] == "time_left" and float(obs[-1]) == 1.0
    assert env.observation_space(params).contains(obs) and env.action_space(params).n == 25
    mark = float(measure.marks(params.opening)[0]) / SCALE
    assert float(state.notional[0]) == pytest.approx(SIZE * mark)
    obs, state, *_ = env.step(jax.random.key(1), state, 0, params)
    assert float(obs[-1]) == pytest.approx(1 - 1 / EPISODE)


def _equity(world, row):
    """Cash plus shares at the marks, currency, per episode."""
    marks = np.asarray(measure.marks(world))[..., 0] / SCALE if world.wallet.cash.ndim == 1 else \
        np.asarray(jax.vmap(measure.marks)(world))[:, 0] / SCALE
    return np.asarray(world.wallet.cash)[..., row] / SCALE + np.asarray(world.wallet.position)[..., row, 0] * marks


@pytest.mark.parametrize("which", [SYMMETRIC, AS])
def test_the_summed_reward_is_the_equity_change_less_the_penalties(env, which):
    params = env.calibrate(env.default_params, jax.random.key(6), episodes=len(KEYS))
    ticks, last = env.trajectories(params, KEYS, which)
    row = env.kind.start
    opening = float(_equity(params.opening, row))
    notional = SIZE * float(measure.marks(params.opening)[0]) / SCALE
    pnl = (_equity(last.world, row) - opening) / notional * 1e4
    quotes = np.abs(ticks["inventory"]) / SIZE
    want = pnl - INVENTORY * quotes.sum(axis=1) - CLOSE * quotes[:, -1]
    np.testing.assert_allclose(ticks["reward"].astype(np.float64).sum(axis=1), want, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(ticks["pnl_bps"].sum(axis=1), pnl, rtol=1e-9, atol=1e-6)
    assert (ticks["traded"] > 0).any()  # quotes were filled
    assert (ticks["inventory"] <= 150).all() and (ticks["inventory"] >= -100).all()


def test_without_quotes_nothing_trades_and_nothing_is_earned(env):
    ticks, _ = env.trajectories(env.default_params, KEYS, HOLD)
    assert (ticks["inventory"] == 0).all() and (ticks["traded"] == 0).all() and (ticks["reward"] == 0).all()


def test_a_one_sided_policy_runs_into_its_limit_and_stays_there(env):
    only_bid = int(quoter.action_of(env.default_params.world.kinds["quoter"], np.array([1]), np.array([0]))[0])
    ticks, _ = env.trajectories(env.default_params, KEYS, POLICY, constant(only_bid))
    inv = ticks["inventory"]
    assert (np.diff(inv, axis=1) >= 0).all() and (inv <= 150).all() and (inv[:, -1] > 0).all()


def _as_levels(env, params, held, t):
    """Avellaneda–Stoikov's levels from the module doc's formulas, in Python floats."""
    q, tau, g, s2 = held / SIZE, EPISODE - t, env.as_gamma, float(params.sigma) ** 2
    half = g * s2 * tau / 2 + math.log(1 + g / env.as_k) / g
    skew = q * g * s2 * tau

    def level(d):
        return int(min(max(round(d / 2e-4), 1), 4))

    return level(half + skew), level(half - skew)


def test_avellaneda_stoikov_quotes_at_its_reservation_price_and_spread(env):
    params = env.default_params.replace(sigma=np.float64(0.0015))
    _, state = env.reset(jax.random.key(0), params)
    row, p = env.kind.start, params.world.kinds["quoter"]
    seen = set()
    for held in (-100, -40, 0, 40, 120):
        for t in (0, 5, 9):
            world = state.world.replace(wallet=state.world.wallet.replace(
                position=state.world.wallet.position.at[row, 0].set(held)))
            s = state.replace(world=world, time=np.int32(t))
            bid, ask = (int(x[0]) for x in quoter.sides(p, env.avellaneda_stoikov(s, params)[None]))
            assert (bid, ask) == _as_levels(env, params, held, t)
            seen.add((bid, ask))
    assert len(seen) >= 4  # inventory and time move the quotes
    assert [int(x[0]) for x in quoter.sides(p, env.symmetric(state, params)[None])] == [2, 2]


def test_sigma_is_the_volatility_of_the_mids_without_quotes(env):
    params = env.calibrate(env.default_params, jax.random.key(6), episodes=len(KEYS))
    ticks, _ = env.trajectories(env.default_params, jax.random.split(jax.random.key(6), len(KEYS)), HOLD)
    mid = (ticks["bid"].astype(np.float64) + ticks["ask"]) / 2
    ok = (ticks["bid"][:, 1:] > 0) & (ticks["ask"][:, 1:] > 0) & (ticks["bid"][:, :-1] > 0) & (ticks["ask"][:, :-1] > 0)
    assert float(params.sigma) == pytest.approx(np.std(np.log(mid[:, 1:] / mid[:, :-1])[ok]), rel=1e-9)
    assert float(params.sigma) > 0


def test_the_evaluation_compares_the_policy_with_both_baselines_paired_by_seed(env, tmp_path, capsys):
    """``python -m qtg.evaluate`` on a market-making policy file: the task's environment
    from the policy's settings, the policy, the symmetric quoter and Avellaneda–Stoikov
    over the same held-out episodes, paired by seed."""
    import json

    from qtg.evaluate import main
    from qtg.rl.checkpoint import write_policy
    from systems import policy as pol

    symmetric = int(env.symmetric(None, env.default_params))
    task = {"warmup": WARMUP, "episode": EPISODE, "quote_size": SIZE, "levels": 4, "step_bps": 2.0,
            "inventory_bps": INVENTORY, "close_bps": CLOSE}
    path = write_policy(tmp_path / "policy.npz", constant(symmetric), pol.meta_for("market_making", 25, env=task))
    market = ["population.noise.count=10", "population.learner.max_position=[150,150]",
              "population.learner.max_short=100", "engine.capacity=64"]
    assert main([str(path), *market, "--seeds", "2", "--episodes", "2", "--out", str(tmp_path / "eval")]) == 0
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert (tmp_path / "eval" / "evaluation.png").stat().st_size > 0
    per_seed = result["per_seed"]
    assert [list(s) for s in per_seed] == [["policy", "symmetric", "avellaneda_stoikov"]] * 2
    for s in per_seed:  # the policy quotes as the symmetric baseline does: the same episodes, the same figures
        assert s["policy"] == s["symmetric"]
    assert result["setup"]["task"] == "market_making" and result["setup"]["seeds"] == [1000, 1001]
    assert result["setup"]["env"]["quote_size"] == SIZE and result["setup"]["sigma"] > 0
    versus = {v["versus"]: v for v in result["versus"]}
    assert versus["symmetric"]["advantage_bps"] == 0 and not versus["symmetric"]["beats"]
    diffs = [s["policy"]["reward"] - s["avellaneda_stoikov"]["reward"] for s in per_seed]
    assert versus["avellaneda_stoikov"]["advantage_bps"] == pytest.approx(np.mean(diffs))
    lines = text.splitlines()
    assert lines[1].startswith("policy") and any(x.lstrip().startswith("avellaneda_stoikov") for x in lines[-4:])


def test_the_gymnasium_wrapper_serves_the_task_and_passes_gymnasiums_checker(env):
    from gymnasium.utils.env_checker import check_env

    from qtg.rl.gym import GymnasiumEnv

    g = GymnasiumEnv(env)
    check_env(g, skip_render_check=True)
    assert g.observation_space.shape == (SPEC.size,) and g.action_space.n == 25
    g.reset(seed=1)
    for _ in range(EPISODE):
        _, _, terminated, truncated, info = g.step(12)  # (2, 2)
    assert truncated and not terminated and set(info) >= {"pnl_bps", "inventory", "traded", "volume", "tick"}


@pytest.mark.parametrize("overrides, line", [
    (["env.quote_size=0"], "env.quote_size: must be"),
    (["env.levels=3"], "env.levels: must be even"),
    (["env.step_bps=0"], "env.step_bps: must be"),
    (["env.as_gamma=0"], "env.as_gamma: must be"),
    (["population.learner.count=0"], "population.learner.count: training needs at least one learner, got 0"),
])
def test_a_bad_task_setting_is_one_line(overrides, line):
    from qtg.rl.config import load

    with pytest.raises(ConfigError) as e:
        load(["env=market_making", *overrides])
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


def test_the_pettingzoo_wrapper_declares_the_tasks_observation_and_actions(env):
    from pettingzoo.test import parallel_api_test

    from qtg.rl.multi import ParallelMarketEnv

    par = ParallelMarketEnv(env)
    assert par.observation_space("learner_0").shape == (SPEC.size,) and par.action_space("learner_0").n == 25
    parallel_api_test(par, num_cycles=EPISODE + 2)
    par.reset(seed=2)
    *_, infos = par.step({})  # no action: the hold action, no quotes
    assert int(par.env_state.world.kinds["quoter"].action[0]) == 0 and infos["learner_0"]["tick"] == WARMUP + 1


def test_the_task_and_its_experiment_compose():
    from qtg.rl.config import load

    cfg = load(["+experiment=rl_market_making"])
    assert cfg.env.task == "market_making" and cfg.train.seeds >= 1 and cfg.population["learner"].count == 1


def test_a_market_making_policy_is_refused_as_a_trading_agent(tmp_path):
    from qtg.evaluate import policy_task
    from qtg.rl.checkpoint import write_policy
    from systems import policy as pol

    layers = [(np.zeros((SPEC.size, 25), np.float32), np.zeros(25, np.float32))]
    path = write_policy(tmp_path / "policy.npz", layers, pol.meta_for("market_making", 25, env={"quote_size": SIZE}))
    assert policy_task(str(path)) == "market_making"
    with pytest.raises(ConfigError, match=r"a policy of the market_making task, not a trading one"):
        make_config(**{**TINY, "population.learner.count": 0, "population.rl_policy.count": 1,
                       "population.rl_policy.policy": str(path)})
