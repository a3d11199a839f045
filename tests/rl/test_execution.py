"""qtg.rl.execution: the learner sells (buys) exactly the order's quantity and never more,
the summed reward is the implementation shortfall of its wallet against the arrival price
with the penalty for what is left, TWAP trades the order at its pace, VWAP follows the
market's volume, vmapped episodes are the episodes alone, bad task settings are one line,
and the evaluation's rows are the policy, TWAP and VWAP."""

import jax
import numpy as np
import pytest

from components.money import SCALE
from qtg.core.config import ConfigError
from qtg.rl.env import compare
from qtg.rl.execution import HOLD, METRICS, POLICY, ROWS, SPEC, STRATEGIES, TWAP, VWAP, ExecutionEnv, aggregate, table
from systems import measure
from tests.support import make_config

pytestmark = pytest.mark.slow  # each environment compiles the device tick

TINY = {"market.symbols": ["ACME"], "market.sectors": [], "population.market_maker.count": 2,
        "population.noise.count": 10, "population.learner.count": 1, "engine.capacity": 64}
"""One symbol, two makers, ten noise traders and the learner, 64 orders a book side."""
WARMUP, EPISODE, QUANTITY, PENALTY = 12, 8, 80, 500.0
"""Episodes of 8 ticks, an order of 80 shares: a TWAP slice of 10, the largest action 20."""


def _env(side):
    return ExecutionEnv(make_config(**TINY), warmup=WARMUP, episode=EPISODE, side=side, quantity=QUANTITY, levels=4,
                        penalty_bps=PENALTY)


@pytest.fixture(scope="module")
def seller():
    return _env("sell")


@pytest.fixture(scope="module")
def buyer():
    return _env("buy")


KEYS = jax.random.split(jax.random.key(1), 4)
"""Every run's four episodes (one compiled program per environment)."""


def constant(action: int):
    """A policy that takes ``action`` wherever it looks."""
    return [(np.zeros((SPEC.size, 5), np.float32), np.eye(5, dtype=np.float32)[action])]


def _run(env, which, layers=None, params=None, keys=KEYS):
    """``(ticks, last)`` of the episodes, and each episode's shares held from the opening
    on [E, T + 1] and its cash at the opening and at the end (units)."""
    params = env.default_params if params is None else params
    ticks, last = env.trajectories(params, keys, which, layers)
    row = env.kind.start
    opening = params.opening.wallet
    held = np.concatenate([np.full((len(keys), 1), int(opening.position[row, 0])), ticks["held"]], axis=1)
    cash = (int(opening.cash[row]), np.asarray(last.world.wallet.cash[:, row]))
    return ticks, last, held, cash


def _liquid(ticks):
    """The episodes whose book quoted both sides after every tick (in some, a sweep empties one)."""
    return ((ticks["bid"] > 0) & (ticks["ask"] > 0)).all(axis=1)


def test_the_learner_is_set_up_from_the_task(seller, buyer):
    env = seller
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (SPEC.size,) == (11,) and env.observation_space(params).contains(obs)
    assert SPEC.names[-2:] == ("remaining", "time_left") and obs[-2:].tolist() == [1.0, 1.0]
    assert env.num_actions == 5 and env.action_space(params).n == 5
    row, trade = env.kind.start, params.world.kinds["learner"].trade
    assert int(state.world.wallet.position[row, 0]) == QUANTITY and int(params.world.max_short[row]) == 0
    assert int(trade.size[0]) == 2 * QUANTITY // EPISODE and int(trade.max_position[0]) == QUANTITY
    assert float(params.arrival[0]) == float(measure.marks(params.opening)[0]) / SCALE > 0
    b = buyer.default_params
    assert int(b.opening.wallet.position[row, 0]) == 0 and int(b.world.kinds["learner"].trade.max_position[0]) == QUANTITY
    assert int(b.opening.wallet.cash[row]) > 2 * QUANTITY * float(b.arrival[0]) * SCALE


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_the_summed_reward_is_the_shortfall_of_the_wallet_with_the_penalty(seller, buyer, side):
    env = seller if side == "sell" else buyer
    ticks, last, held, (cash0, cash1) = _run(env, POLICY, constant(1))  # a quarter of TWAP's pace
    arrival = float(env.default_params.arrival[0])
    traded = held[:, -1] - held[:, 0]
    left = QUANTITY - np.abs(traded)
    assert (np.sign(traded) == (1 if side == "buy" else -1)).all() and (left > 0).all()
    shortfall = ((cash1 - cash0) / SCALE + traded * arrival) / (QUANTITY * arrival) * 1e4
    np.testing.assert_allclose(ticks["reward"].astype(np.float64).sum(axis=1), shortfall - PENALTY * left / QUANTITY,
                               rtol=1e-5, atol=1e-3)
    penalty = ticks["penalty_bps"]
    assert (penalty[:, :-1] == 0).all() and np.allclose(penalty[:, -1], PENALTY * left / QUANTITY)
    assert all(env.is_truncated(jax.tree.map(lambda x, i=i: x[i], last), env.default_params) for i in range(4))


def test_waiting_pays_the_whole_penalty_at_the_last_tick_only(seller):
    ticks, _, held, _ = _run(seller, HOLD)
    assert (ticks["reward"][:, :-1] == 0).all() and (ticks["reward"][:, -1] == -PENALTY).all()
    assert (held == QUANTITY).all() and (ticks["executed"] == 0).all()


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_twap_trades_the_slice_every_tick_and_the_whole_order(seller, buyer, side):
    env = seller if side == "sell" else buyer
    ticks, _, held, _ = _run(env, TWAP)
    liquid = _liquid(ticks)
    assert liquid.sum() >= 2
    sign = 1 if side == "buy" else -1
    assert (np.diff(held[liquid], axis=1) == sign * QUANTITY // EPISODE).all(), held
    assert (held[liquid, -1] == (QUANTITY if side == "buy" else 0)).all()
    assert (ticks["action"][liquid] == 2).all()  # the TWAP pace is levels / 2
    assert np.allclose(ticks["executed"][liquid, -1], 1.0) and (ticks["penalty_bps"][liquid] == 0).all()
    assert (np.abs(ticks["reward"][liquid].sum(axis=1)) < 100).all()  # the spread's order, no penalty


@pytest.mark.parametrize("side", ["sell", "buy"])
def test_the_learner_never_trades_more_than_the_order(seller, buyer, side):
    env = seller if side == "sell" else buyer
    ticks, _, held, _ = _run(env, POLICY, constant(4))  # the largest action every tick
    done = np.abs(held - held[:, :1])
    assert (done <= QUANTITY).all() and (done[:, -1] == QUANTITY).all(), held
    assert (np.abs(np.diff(held, axis=1)) <= 2 * QUANTITY // EPISODE).all()  # twice the slice a tick at most
    assert (ticks["reward"][:, -1] > -PENALTY / 10).all()  # all done: no penalty


def _vwap_actions(env, params, ticks, held):
    """The VWAP rule of the module doc, recomputed from each tick's recorded state."""
    v, size, unit = float(params.expected_volume[0]), env.size, env.size / env.levels
    before = np.concatenate([np.zeros((len(held), 1)), ticks["volume"][:, :-1]], axis=1)  # the volume before each tick
    t = np.arange(EPISODE)
    frac = np.minimum((before + v) / (v * EPISODE), 1.0) if v > 0 else np.broadcast_to((t + 1) / EPISODE, before.shape)
    target = np.maximum(np.floor(QUANTITY * frac), QUANTITY - (EPISODE - t - 1) * size)
    want = np.maximum(target - (QUANTITY - held[:, :-1]), 0)
    return np.clip(np.round(want / unit), 0, env.levels).astype(int)


def test_vwap_follows_the_markets_volume_within_what_can_still_be_finished(seller):
    env = seller
    params = env.default_params
    twap = _run(env, TWAP)
    vwap = _run(env, VWAP)  # no volume profile yet: TWAP's line
    assert np.array_equal(vwap[0]["action"], twap[0]["action"]) and np.array_equal(vwap[2], twap[2])
    busy = params.replace(expected_volume=params.expected_volume + 1e9)  # a market far busier than this one
    ticks, _, held, _ = _run(env, VWAP, params=busy)
    # It keeps to the first tick's share of the volume, then trades at the largest action just in time.
    assert (held[_liquid(ticks)] == [QUANTITY, 70, 70, 70, 70, 60, 40, 20, 0]).all(), held
    calibrated = env.calibrate(params, jax.random.key(6), episodes=len(KEYS))
    assert float(calibrated.expected_volume[0]) > 2 * QUANTITY // EPISODE
    ticks, _, held, _ = _run(env, VWAP, params=calibrated)
    assert np.array_equal(ticks["action"], _vwap_actions(env, calibrated, ticks, held))
    assert not np.array_equal(ticks["action"], twap[0]["action"])


def test_the_gymnasium_wrapper_serves_the_task_and_passes_gymnasiums_checker(seller):
    from gymnasium.utils.env_checker import check_env

    from qtg.rl.gym import GymnasiumEnv

    g = GymnasiumEnv(seller)
    check_env(g, skip_render_check=True)
    assert g.observation_space.shape == (SPEC.size,) and g.action_space.n == seller.num_actions
    obs, _ = g.reset(seed=1)
    assert obs[-2:].tolist() == [1.0, 1.0]  # the whole order left, the whole episode
    for t in range(EPISODE):
        obs, reward, terminated, truncated, info = g.step(seller.levels)  # twice the TWAP pace
    assert truncated and not terminated and set(info) >= {"executed", "penalty_bps", "volume", "fills", "tick"}
    assert 0.0 < info["executed"] <= 1.0


def test_vmapped_episodes_are_each_its_keys_alone(seller):
    """Each market of a batch is its own key's, wherever it sits in the batch."""
    params = seller.calibrate(seller.default_params, jax.random.key(6), episodes=len(KEYS))
    ticks, _, held, _ = _run(seller, VWAP, params=params)
    again, _, held_again, _ = _run(seller, VWAP, params=params, keys=KEYS[::-1])
    for name in ticks:
        assert np.array_equal(ticks[name], again[name][::-1]), name
    assert np.array_equal(held, held_again[::-1])
    assert len({round(float(r), 6) for r in ticks["reward"].sum(axis=1)}) == len(KEYS)  # each its own future


def test_the_evaluation_compares_the_policy_with_twap_and_vwap_paired_by_seed(seller):
    env = seller
    layers = constant(1)  # a quarter of the TWAP pace: half the order left
    per_seed = compare(env, env.default_params, layers, 2, 1000, len(KEYS) // 2, STRATEGIES, METRICS)
    assert len(per_seed) == 2 and all(list(s) == list(ROWS) for s in per_seed)
    result = aggregate(per_seed)
    assert [r["row"] for r in result["rows"]] == ["policy", "twap", "vwap"]
    policy = result["rows"][0]
    assert policy["executed"] == pytest.approx(0.5, abs=0.02) and policy["penalty_bps"] == pytest.approx(PENALTY / 2, abs=10)
    assert policy["shortfall_bps_low"] <= policy["shortfall_bps"] <= policy["shortfall_bps_high"]
    versus = {v["versus"]: v for v in result["versus"]}
    twap = [s["twap"]["shortfall_bps"] - s["policy"]["shortfall_bps"] for s in per_seed]
    assert versus["twap"]["saving_bps"] == pytest.approx(np.mean(twap)) and not versus["twap"]["beats"]
    assert versus["twap"]["saving_bps"] < -PENALTY / 4  # leaving half the order costs far more than TWAP's spread
    text = table(result)
    assert text.splitlines()[1].startswith("policy") and text.splitlines()[-2].lstrip().startswith("twap")


@pytest.mark.parametrize("overrides, line", [
    (["env.side=hold"], "env.side: unknown side 'hold'; allowed: sell, buy"),
    (["env.quantity=0"], "env.quantity: must be"),
    (["env.levels=3"], "env.levels: must be even (levels / 2 is the TWAP pace, or the symmetric quotes), got 3"),
    (["env.penalty_bps=-1"], "env.penalty_bps: must be"),
    (["population.learner.count=2"], "population.learner.count: the execution task has exactly one learner, got 2"),
])
def test_a_bad_task_setting_is_one_line(overrides, line):
    from qtg.rl.config import load

    with pytest.raises(ConfigError) as e:
        load(["env=execution", *overrides])
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


def test_the_task_and_its_experiment_compose():
    from qtg.rl.config import load

    cfg = load(["+experiment=rl_execution"])
    assert (cfg.env.task, cfg.env.side, cfg.env.quantity, cfg.env.episode) == ("execution", "sell", 5000, 50)
    assert cfg.train.seeds >= 1 and cfg.population["learner"].count == 1


def test_an_execution_policy_is_read_with_its_spec_and_refused_as_a_trading_agent(tmp_path):
    from qtg.evaluate import policy_task
    from qtg.rl.checkpoint import write_policy
    from systems import policy as pol

    layers = [(np.zeros((SPEC.size, 5), np.float32), np.zeros(5, np.float32))]
    path = write_policy(tmp_path / "policy.npz", layers, pol.meta_for("execution", 5, env={"side": "sell"}))
    _, meta = pol.read_policy(path)
    assert meta["task"] == "execution" and policy_task(str(path)) == "execution"
    assert [f["name"] for f in meta["spec"]["features"]] == list(SPEC.names)
    with pytest.raises(ConfigError, match=r"^population.rl_policy.policy: .*policy.npz: a policy of the execution "
                                          r"task, not a trading one"):
        make_config(**{**TINY, "population.learner.count": 0, "population.rl_policy.count": 1,
                       "population.rl_policy.policy": str(path)})
    wrong = write_policy(tmp_path / "wrong.npz", layers, pol.meta_for("trading", 5))
    with pytest.raises(pol.PolicyError, match=r"the network's input is 11 wide, the observation has 9 features"):
        pol.read_policy(wrong)
