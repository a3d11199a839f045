"""qtg.rl.env: the trading environment is the market (its ticks are the host loop's, the
learner's orders included), pure and jit/vmap-able with gymnax's auto-reset, and its
reward is the learner's change of equity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.rl.env import TradingEnv
from systems.features import SPEC, features
from systems.observe import observe_market
from systems.strategies import learner
from tests.core.test_rollout import same_state
from tests.support import make_config

pytestmark = pytest.mark.slow  # the module's environment compiles the device tick; the host loop compiles its own

TINY = {"market.symbols": ["ACME"], "market.sectors": [], "population.market_maker.count": 2,
        "population.noise.count": 10, "population.learner.count": 1, "engine.capacity": 64}
"""One symbol, two makers, ten noise traders and the learner, 64 orders a book side (no
side fills in these runs): an environment that compiles in seconds."""
EPISODE = 6


@pytest.fixture(scope="module")
def env():
    return TradingEnv(make_config(**TINY), warmup=12, episode=EPISODE)


def test_the_spaces_and_the_first_observation(env):
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.shape == (SPEC.size,) and obs.dtype == jnp.float32
    assert env.observation_space(params).contains(obs)
    assert env.num_actions == 2 * 2 + 1 and env.action_space(params).n == env.num_actions
    assert int(state.time) == 0 and int(state.world.tick) == 12
    # The market is open: both sides quote after the warm-up.
    assert int(state.world.market.bid[0]) > 0 and int(state.world.market.ask[0]) > 0


def test_buying_selling_and_holding_move_the_learners_position_as_asked(env):
    params = env.default_params
    row = env.kind.start
    _, state = env.reset(jax.random.key(1), params)
    held = []
    for action in (4, 4, 2, 0, 2):  # buy the full size twice, hold, sell the full size, hold
        _, state, *_ = env.step(jax.random.key(2), state, action, params)
        held.append(int(state.world.wallet.position[row, 0]))
    assert held[0] > 0 and held[1] > held[0]  # each buy filled (up to the order's 50 shares)
    assert held[0] <= 50 and held[1] <= 100
    assert held[2] == held[1]  # hold: no order
    assert held[3] < held[2]
    assert held[4] == held[3]


def test_the_reward_is_the_change_of_equity_in_percent_of_the_opening(env):
    params = env.default_params
    _, state = env.reset(jax.random.key(3), params)
    opening = float(state.opening_equity[0])
    before = float(state.equity[0])
    _, state, reward, _, _, info = env.step(jax.random.key(4), state, 4, params)
    after = float(state.equity[0])
    w, row = state.world.wallet, env.kind.start
    from systems.measure import marks

    assert after == pytest.approx((int(w.cash[row]) + int(w.position[row, 0]) * float(marks(state.world)[0])) / 10_000)
    assert float(reward) == pytest.approx((after - before) / opening * 100, rel=1e-6)
    assert float(info["equity"]) == pytest.approx(after)


def test_an_episode_ends_after_its_ticks_and_starts_again(env):
    params = env.default_params
    _, state = env.reset(jax.random.key(5), params)
    dones = []
    for t in range(EPISODE + 2):
        _, state, _, terminated, truncated, _ = env.step(jax.random.key(6 + t), state, t % 5, params)
        assert not terminated
        dones.append(bool(truncated))
    assert dones == [False] * (EPISODE - 1) + [True] + [False, False]
    assert int(state.time) == 2  # two steps into the episode after the auto-reset
    assert int(state.world.tick) == 12 + 2


def test_the_environments_ticks_are_the_host_loops_with_the_same_actions(env):
    """The host loop (engine=fast) runs the environment's world from its build: the warm-up
    with the learner on hold gives the episodes' opening, bit for bit (the books order for
    order); then, with the reset key as its key and the learner's action set before each
    tick, the same state after every tick."""
    from tests.core.test_rollout import resting, resting_of

    cfg = make_config(**TINY)
    params = env.default_params.replace(max_steps_in_episode=50)  # a longer episode: no recompilation
    key = jax.random.key(11)
    _, state = env.reset(key, params)
    world = build_world(cfg)
    host = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    host.fast_paths = False  # the exact admission only, as on the device
    host.run(12)
    assert same_state(host.state, params.opening) == [] and resting(params.opening.books) == resting_of(host.engine)
    host.state = host.state.replace(key=key)
    fills = 0
    for t, action in enumerate([2, 4, 4, 0, 2, 3, 1, 4, 0, 0]):
        _, state, *_, info = env.step(jax.random.key(t), state, action, params)
        assert int(info["book_full"]) == 0
        host.state = learner.with_actions(host.state, action)
        fills += len(host.step().fills)
        assert same_state(host.state, state.world) == [], t
        assert resting(state.world.books) == resting_of(host.engine), t
    assert fills > 10


def test_the_observation_is_the_feature_contract_of_the_learner(env):
    params = env.default_params
    obs, state = env.reset(jax.random.key(9), params)
    _, frame = observe_market(env.static, params.world, state.world, Frame(), jax.random.key(0))
    p = params.world.kinds[learner.KIND]
    want = features(state.world, frame, jnp.asarray([env.kind.start]), p.trade.symbol, p.trade.max_position)[0]
    assert np.array_equal(np.asarray(obs), np.asarray(want))
    assert np.abs(np.asarray(obs)).max() > 0


def test_the_gymnasium_wrapper_passes_gymnasiums_checker_and_repeats_a_seeded_episode(env):
    from gymnasium.utils.env_checker import check_env

    from qtg.rl.gym import GymnasiumEnv

    g = GymnasiumEnv(env)
    check_env(g, skip_render_check=True)

    def episode(seed):
        obs, info = g.reset(seed=seed)
        seen, ends = [obs], []
        for t in range(EPISODE):
            obs, reward, terminated, truncated, info = g.step(t % env.num_actions)
            assert isinstance(reward, float) and not terminated and obs.dtype == np.float32
            seen.append(obs)
            ends.append(truncated)
        assert ends == [False] * (EPISODE - 1) + [True] and info["tick"] == 12 + EPISODE
        return np.stack(seen)

    a, b, c = episode(5), episode(5), episode(6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match=r"action: an integer in \[0, 4\], got 7"):
        g.step(7)


def test_the_vector_env_steps_each_market_as_the_single_env_and_resets_in_the_same_step(env):
    from qtg.rl.gym import GymnasiumEnv, GymnasiumVectorEnv

    single, vec = GymnasiumEnv(env), GymnasiumVectorEnv(env, 3)
    assert vec.metadata["autoreset_mode"].value == "SameStep"
    actions = np.array([[t % env.num_actions, (t + 2) % env.num_actions, t % env.num_actions] for t in range(EPISODE)])

    def alone(seed, column):
        obs, _ = single.reset(seed=seed)
        seen, rewards = [obs], []
        for t in range(EPISODE):
            obs, reward, _, _, _ = single.step(int(actions[t, column]))
            seen.append(obs)
            rewards.append(reward)
        return np.stack(seen), np.array(rewards)

    obs, info = vec.reset(seed=[5, 6, 5])
    assert obs.shape == (3, SPEC.size) and obs.dtype == np.float32 and vec.observation_space.contains(obs)
    seen, rewards = [obs], []
    for t in range(EPISODE):
        if t == EPISODE - 1:
            wallets = vec._state.world.wallet  # the markets' last state before the auto-reset
        obs, reward, terminated, truncated, info = vec.step(actions[t])
        assert not terminated.any() and truncated.tolist() == [t == EPISODE - 1] * 3
        rewards.append(reward)
        seen.append(np.stack(info["final_obs"]) if truncated.any() else obs)
    seen, rewards = np.stack(seen, 1), np.stack(rewards, 1)
    for i, (seed, column) in enumerate([(5, 0), (6, 1), (5, 2)]):
        single.reset(seed=seed)
        for t in range(EPISODE - 1):
            single.step(int(actions[t, column]))
        assert np.array_equal(np.asarray(wallets.cash[i]), np.asarray(single._state.world.wallet.cash))
        assert np.array_equal(np.asarray(wallets.position[i]), np.asarray(single._state.world.wallet.position))
        want_obs, want_rewards = alone(seed, column)
        assert np.array_equal(seen[i], want_obs) and np.allclose(rewards[i], want_rewards, rtol=1e-6)
    assert not np.array_equal(seen[0], seen[1])
    # markets 0 and 2: the same seed and actions, side by side in the batch, the same market
    assert np.array_equal(np.asarray(wallets.position[0]), np.asarray(wallets.position[2]))
    # The ended markets already started their next episode: its first observation is the opening's.
    first, _ = single.reset(seed=9)
    assert np.array_equal(obs, np.stack([first] * 3)) and info["_final_obs"].all()
    with pytest.raises(ValueError, match=r"actions: 3 actions, each an integer in \[0, 4\]"):
        vec.step([0, 1, 9])


def test_reward_mark_fair_values_the_shares_at_fair_value(env):
    """``reward.mark=fair``: equity (what the reward differences) values the learner's shares
    at the fundamentals' fair value, the opening's too; the step's code is the same."""
    from qtg.rl.config import RewardConfig
    from systems.measure import marks

    fair_env = env.with_reward(RewardConfig(mark="fair"))
    row = env.kind.start

    def at(world, price):
        w = world.wallet
        return (int(w.cash[row]) + int(w.position[row, 0]) * price) / 10_000

    opening = env.default_params.opening
    assert float(fair_env.default_params.opening_equity[0]) == pytest.approx(
        at(opening, float(opening.fundamentals.fair[0])), rel=1e-12)
    _, state = env.reset(jax.random.key(3), env.default_params)
    _, state, *_ = env.step(jax.random.key(4), state, 4, env.default_params)
    world = state.world
    assert int(world.wallet.position[row, 0]) != 0
    fair, mark = float(world.fundamentals.fair[0]), float(marks(world)[0])
    assert float(fair_env._value(world)[0]) == pytest.approx(at(world, fair), rel=1e-12)
    assert float(env._value(world)[0]) == pytest.approx(at(world, mark), rel=1e-12) and fair != mark


def test_reward_mark_edge_pays_only_what_the_trades_made_against_fair_value(env):
    """``reward.mark=edge``: a step's reward is its cash change plus the shares it traded at
    the fair value after it (percent of the opening equity); the shares held are not marked
    again, so a step that trades nothing pays 0 while the fair value moves. (The module's
    compiled step moves the market; ``settle`` values each step as the edge reward does.)"""
    from qtg.rl.config import RewardConfig

    edge_env = env.with_reward(RewardConfig(mark="edge"))
    params, row = env.default_params, env.kind.start
    _, state = env.reset(jax.random.key(3), params)
    base = float(state.opening_equity[0]) / 100.0
    fairs, paid = [], []
    for action in (4, 2, 2, 0, 2):  # buy the most, hold twice, sell the most, hold
        _, after, *_ = env.step(jax.random.key(0), state, action, params)
        settled, reward, _ = edge_env.settle(state, after.world, params)
        before, now, fair = state.world.wallet, after.world.wallet, float(after.world.fundamentals.fair[0])
        cash = (int(now.cash[row]) - int(before.cash[row])) / 10_000
        traded = int(now.position[row, 0]) - int(before.position[row, 0])
        assert float(reward[0]) == pytest.approx((cash + traded * fair / 10_000) / base, rel=1e-5, abs=1e-9)
        if traded == 0:
            assert abs(float(reward[0])) < 1e-12  # 0 but for the rounding of two equal f64 sums
        fairs.append(fair)
        paid.append(traded)
        state = settled
    assert paid[0] > 0 and paid[3] < 0 and paid[1] == paid[2] == 0 and len(set(fairs[:3])) > 1


def test_episodes_start_from_openings_drawn_by_their_reset_keys():
    """``openings=3``: three warm-ups from the build, each with its own key; a reset key
    draws one, whose world, observation, equity and holdings the episode starts from, and
    gymnax's auto-reset does the same inside the jitted step."""
    env3 = TradingEnv(make_config(**TINY), warmup=12, episode=2, openings=3)
    params = env3.default_params
    worlds = [jax.tree.map(lambda x, i=i: x[i], params.opening) for i in range(3)]
    assert [int(w.tick) for w in worlds] == [12] * 3 and params.opening_obs.shape == (3, 1, SPEC.size)
    marks = {tuple(np.asarray(w.market.last).tolist()) + tuple(np.asarray(w.wallet.cash).tolist()) for w in worlds}
    assert len(marks) == 3  # three different markets
    drawn = set()
    reset_all, observe_all = jax.jit(env3.reset_all), jax.jit(env3.observe_all)  # compiled once, not op by op
    for k in range(12):
        key = jax.random.key(k)
        obs, state = reset_all(key, params)
        i = int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, 3))
        drawn.add(i)
        assert same_state(state.world, worlds[i].replace(key=key)) == []
        assert np.array_equal(np.asarray(obs), np.asarray(params.opening_obs[i]))
        assert np.array_equal(np.asarray(obs), np.asarray(observe_all(state, params)))
        assert float(state.equity[0]) == float(env3._equity(worlds[i])[0])
    assert drawn == {0, 1, 2}
    _, state = env3.reset(jax.random.key(0), params)
    for t in range(2):  # the second step ends the episode: the auto-reset draws an opening
        obs, state, _, _, truncated, _ = env3.step(jax.random.key(20 + t), state, 4, params)
    assert bool(truncated) and int(state.time) == 0 and int(state.world.tick) == 12
    assert any(np.array_equal(np.asarray(obs), np.asarray(params.opening_obs[i, 0])) for i in range(3))
