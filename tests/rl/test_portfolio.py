"""qtg.rl.portfolio and systems.strategies.allocator: the learner holds every symbol at
target weights within its limits and the market's short rules, cash and shares are
conserved, the observation is systems.features of every symbol, the summed reward is the
return, the baselines and the evaluation's rows, Gymnasium's checker with Box actions,
PPO's Gaussian policy, and bad settings are one line."""

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.money import SCALE
from qtg.bench.soak import check_world, opening_totals
from qtg.core.config import ConfigError
from qtg.rl.portfolio import EQUAL, HOLD, POLICY, VALUE, PortfolioEnv
from systems import measure
from systems.features import SPEC, features
from systems.observe import observe_market
from systems.policy import PolicyError, check_meta, meta_for, spec_for
from tests.support import make_config

pytestmark = pytest.mark.slow  # the environment compiles the device tick

TINY = {"market.symbols": ["ACME", "BOLT"], "market.sectors": [], "population.market_maker.count": 2,
        "population.noise.count": 8, "population.learner.count": 1, "population.learner.cash": 20_000.0,
        "population.learner.size": [60, 60], "population.learner.max_position": [150, 150],
        "population.learner.max_short": 40, "engine.capacity": 64}
"""Two symbols, a maker each, eight noise traders and the learner: 20,000 of cash, 60
shares a symbol and tick, 150 long and 40 short at most per symbol."""
WARMUP, EPISODE = 12, 10
KEYS = jax.random.split(jax.random.key(1), 4)


@pytest.fixture(scope="module")
def env():
    return PortfolioEnv(make_config(**TINY), warmup=WARMUP, episode=EPISODE, gross=1.0, band=0.0)


def test_the_learner_allocates_as_an_allocator_made_from_the_learner_entry(env):
    params = env.default_params
    assert env.kind.name == "allocator" and env.kind.count == 1 and env.num_actions == 2
    p = params.world.kinds["allocator"]
    assert int(p.trade.size[0]) == 60 and int(p.trade.max_position[0]) == 150 and float(p.gross[0]) == 1.0
    assert int(params.world.max_short[env.kind.start]) == 40
    assert env.OBSERVATION.size == 2 * SPEC.size and env.OBSERVATION.names[SPEC.size] == "value_gap_1"
    space = env.action_space(params)
    assert space.shape == (2,) and float(space.low) == -1.0 and float(space.high) == 1.0


def test_the_observation_is_the_features_of_every_symbol_in_order(env):
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, *_ = env.step(jax.random.key(1), state, np.float32([0.4, 0.3]), params)
    row = jnp.asarray([env.kind.start])

    @jax.jit
    def one(world, symbol):  # one symbol's features, as the trading task computes them (compiled: fast)
        _, frame = observe_market(env.static, params.world, world, Frame(), jax.random.key(0))
        return features(world, frame, row, jnp.asarray([symbol], jnp.int32), jnp.asarray([150]))[0]

    for s in range(2):
        assert np.array_equal(np.asarray(obs[s * SPEC.size:(s + 1) * SPEC.size]), np.asarray(one(state.world, s)))
    assert float(obs[SPEC.names.index("position")]) > 0 and env.observation_space(params).contains(obs)


def test_weights_trade_toward_their_targets_within_the_limits_and_conserve_cash_and_shares(env):
    params = env.default_params
    _, state = env.reset(jax.random.key(3), params)
    totals = opening_totals(state.world)
    row = env.kind.start
    seen = []
    for t in range(EPISODE - 1):  # the last step's state is the next episode's (auto-reset)
        before = np.asarray(state.world.wallet.position[row])
        _, state, *_ = env.step(jax.random.key(t), state, np.float32([0.45, -1.0]), params)
        check_world(SimpleNamespace(state=state.world, params=params.world), totals)
        after = np.asarray(state.world.wallet.position[row])
        assert (np.abs(after - before) <= 60).all()  # size: 60 shares a symbol and tick
        seen.append(after)
    seen = np.stack(seen)
    assert seen[:, 1].min() == -40  # the short side stops at max_short
    assert seen[:, 0].max() <= 150 and seen[-1, 0] > 0
    # the long side at its target: 0.45 / 1.45 of the equity at the reference (one tick's drift)
    world = state.world
    equity = float(measure.equity(world)[row]) / SCALE
    mark = float(measure.marks(world)[0]) / SCALE
    assert abs(seen[-1, 0] - min(150, 0.45 / 1.45 * equity / mark)) <= 3


def test_the_summed_reward_is_the_return_and_all_cash_never_trades(env):
    params = env.default_params
    equal = env.episodes(params, KEYS, EQUAL)
    assert np.allclose(equal["reward"], equal["total_return"], rtol=1e-4, atol=1e-5)
    assert (equal["turnover"] > 0.5).all() and (equal["max_drawdown"] >= 0).all()
    cash = env.episodes(params, KEYS, HOLD)
    for m in ("total_return", "sharpe", "max_drawdown", "turnover", "reward"):
        assert (cash[m] == 0).all(), m
    ticks, _ = env.trajectories(params, KEYS, VALUE)
    assert ticks["action"].shape == (4, EPISODE, 2) and (ticks["action"] >= 0).all()
    assert (ticks["action"] <= 0.5).all()  # at most 1 / n_symbols each


def test_a_policy_trades_its_clipped_outputs(env):
    params = env.default_params
    # zero weights and a bias of 2 / -3: clipped to +1 / -1, the same as the action [1, -1] given directly
    layers = [(np.zeros((env.OBSERVATION.size, 2), np.float32), np.asarray([2.0, -3.0], np.float32))]
    ticks, _ = env.trajectories(params, KEYS, POLICY, layers)
    assert (ticks["action"] == np.asarray([1.0, -1.0], np.float32)).all()
    assert np.array_equal(env.episodes(params, KEYS, HOLD, layers)["total_return"], np.zeros(4))


def test_the_portfolio_spec_names_every_symbols_features_and_a_policy_of_another_market_is_refused():
    spec = spec_for("portfolio", 3)
    assert spec.size == 3 * SPEC.size and spec.names[:2] == ("value_gap_0", "spread_0")
    assert spec.names[-1] == "cash_share_2" and spec.version == SPEC.version
    meta = meta_for("portfolio", 3, symbols=3)
    assert meta["symbols"] == 3 and check_meta(meta, "p") == spec
    with pytest.raises(PolicyError, match="observation features"):
        check_meta({**meta, "symbols": 2}, "p")


def test_the_gymnasium_wrappers_take_box_actions(env):
    from gymnasium.utils.env_checker import check_env

    from qtg.rl.gym import GymnasiumEnv, GymnasiumVectorEnv

    g = GymnasiumEnv(env)
    check_env(g, skip_render_check=True)
    g.reset(seed=1)
    obs, reward, _, _, info = g.step(np.asarray([0.5, 0.5], np.float32))
    assert obs.shape == (2 * SPEC.size,) and isinstance(reward, float) and info["traded"] > 0
    with pytest.raises(ValueError, match=r"action: 2 floats in \[-1, 1\]"):
        g.step(np.asarray([2.0, 0.0], np.float32))
    vec = GymnasiumVectorEnv(env, 2)
    vec.reset(seed=[1, 2])
    obs, reward, *_ = vec.step(np.asarray([[0.5, 0.5], [0.0, 0.0]], np.float32))
    assert obs.shape == (2, 2 * SPEC.size) and abs(reward[1]) < 1e-9 and reward[0] != 0.0  # all cash: no change


def test_the_pettingzoo_wrapper_takes_every_agents_weights(env):
    from pettingzoo.test import parallel_api_test

    from qtg.rl.multi import ParallelMarketEnv

    par = ParallelMarketEnv(env)
    assert par.action_space("learner_0").shape == (2,) and par.observation_space("learner_0").shape == (2 * SPEC.size,)
    parallel_api_test(par, num_cycles=EPISODE + 2)
    par.reset(seed=1)
    with pytest.raises(ValueError, match=r"every agent's weights are needed, missing \['learner_0'\]"):
        par.step({})
    obs, rewards, *_ = par.step({"learner_0": np.float32([0.5, 0.5])})
    assert obs["learner_0"].shape == (2 * SPEC.size,) and rewards["learner_0"] != 0.0


def test_ppo_trains_a_gaussian_policy_on_the_portfolio_task(env):
    from qtg.rl import ppo
    from qtg.rl.config import TrainConfig

    mean, log_std, a = jnp.asarray([[0.1, -0.2]]), jnp.asarray([-0.5, 0.3]), jnp.asarray([[0.4, 0.0]])
    sd = np.exp(np.asarray(log_std))
    want = sum(-0.5 * ((float(a[0, i]) - float(mean[0, i])) / sd[i]) ** 2 - math.log(sd[i]) - 0.5 * math.log(2 * math.pi)
               for i in range(2))
    assert float(ppo.Gaussian.log_prob(mean, log_std, a)[0]) == pytest.approx(want, rel=1e-6)
    assert float(ppo.Gaussian.entropy(mean, log_std)[0]) == pytest.approx(
        float(np.sum(np.log(sd) + 0.5 * math.log(2 * math.pi * math.e))), rel=1e-6)
    t = TrainConfig(num_envs=4, num_steps=8, updates=2, epochs=1, minibatches=2, hidden=[8])
    init, run, _, _ = ppo.make(env, env.default_params, t)
    runner, metrics = run(init(jnp.stack([jax.random.key(0)])), 2)
    assert runner.params["params"]["log_std"].shape == (1, 2)
    assert all(np.isfinite(np.asarray(metrics[m])).all() for m in ("reward", "policy_loss", "value_loss", "entropy"))
    # the log std moved from its start: the policy learnt
    assert not np.allclose(np.asarray(runner.params["params"]["log_std"]), ppo.LOG_STD)


def test_the_task_and_its_experiment_compose_and_a_portfolio_policy_is_not_a_trading_agent(tmp_path):
    from qtg.rl.checkpoint import write_policy
    from qtg.rl.config import load

    cfg = load(["+experiment=rl_portfolio"])
    assert cfg.env.task == "portfolio" and len(cfg.market.symbols) == 4 and cfg.env.gross == 1.0
    assert (cfg.reward.mark, cfg.reward.cost_bps, cfg.train.gamma, cfg.train.updates) == ("edge", 0.0, 0.95, 300)
    with pytest.raises(ConfigError, match=r"^env.band: .*got 2.0"):
        load(["env=portfolio", "env.band=2"])
    path = write_policy(tmp_path / "policy.npz", [(np.zeros((2 * SPEC.size, 2), np.float32), np.zeros(2, np.float32))],
                        meta_for("portfolio", 2, symbols=2))
    with pytest.raises(ConfigError, match=r"a policy of the portfolio task, not a trading one"):
        make_config(**{**TINY, "market.symbols": ["ACME"], "population.learner.count": 0,
                       "population.rl_policy.count": 1, "population.rl_policy.policy": str(path)})


def test_bad_portfolio_settings_are_one_line():
    # the bounds a config's env.gross and env.band are checked against, in the config checker's words
    with pytest.raises(ConfigError, match=r"^env.gross: must be in \[0.01, 4.0\], got 0.0$"):
        PortfolioEnv(make_config(**TINY), gross=0.0)
    with pytest.raises(ConfigError, match=r"^env.band: must be in \[0.0, 1.0\], got -0.1$"):
        PortfolioEnv(make_config(**TINY), band=-0.1)
    with pytest.raises(ConfigError, match="population.learner.count: the portfolio task needs at least one learner"):
        PortfolioEnv(make_config(**{**TINY, "population.learner.count": 0}))


def test_evaluate_a_portfolio_policy_end_to_end(tmp_path, capsys):
    import json

    from qtg.evaluate import main
    from qtg.rl.checkpoint import write_policy

    size = 2 * SPEC.size
    meta = meta_for("portfolio", 2, symbols=2, market_symbols=["ACME", "BOLT"],
                    env={"episode": EPISODE, "warmup": WARMUP, "band": 0.0})
    path = write_policy(tmp_path / "policy.npz", [(np.zeros((size, 2), np.float32), np.zeros(2, np.float32))], meta)
    overrides = ["population.noise.count=8", "engine.capacity=64"]
    code = main([str(path), *overrides, "--seeds", "2", "--episodes", "2", "--out", str(tmp_path / "ev")])
    assert code == 0
    out = capsys.readouterr().out
    assert "equal_weight" in out and "value" in out
    result = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    per_seed = result["per_seed"]
    # a zero policy holds all cash: exactly the cash row
    assert all(s["policy"] == s["cash"] for s in per_seed) and all(s["cash"]["total_return"] == 0 for s in per_seed)
    assert result["setup"]["task"] == "portfolio" and result["setup"]["env"]["episode"] == EPISODE
    assert (tmp_path / "ev" / "evaluation.png").is_file()


def test_a_portfolio_policy_exports_to_onnx_with_its_clipped_weights_as_the_action(tmp_path, capsys):
    import json

    from qtg.export import main, run_onnx
    from qtg.rl.checkpoint import write_policy
    from systems.policy import act_continuous, read_policy

    rng = np.random.default_rng(0)
    size = 2 * SPEC.size
    layers = [(rng.normal(0, 0.5, (size, 16)).astype(np.float32), rng.normal(0, 0.1, 16).astype(np.float32)),
              (rng.normal(0, 1.0, (16, 2)).astype(np.float32), np.asarray([0.5, -0.5], np.float32))]
    path = write_policy(tmp_path / "policy.npz", layers, meta_for("portfolio", 2, symbols=2))
    assert main([str(path), "--check", "500"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] <= 1e-5 and report["actions_differ"] == 0
    obs = rng.uniform(-spec_for("portfolio", 2).high, spec_for("portfolio", 2).high, (300, size)).astype(np.float32)
    _, action = run_onnx(tmp_path / "policy.onnx", obs)
    want = np.asarray(act_continuous(layers, obs))
    assert action.dtype == np.float32 and action.shape == (300, 2) and np.abs(action - want).max() <= 1e-5
    assert (np.abs(want) == 1.0).any() and (np.abs(want) < 1.0).any()  # both clipped and inner weights checked
    back, meta = read_policy(tmp_path / "policy.onnx")
    assert meta["task"] == "portfolio" and len(back) == 2
