"""qtg.rl.multi: several learners trade the same market through PettingZoo's parallel API,
every one acting in the same tick, and the wrapper's answers are the environment's."""

import jax
import numpy as np
import pytest

from qtg.rl.env import TradingEnv
from qtg.rl.multi import ParallelMarketEnv
from systems.features import SPEC
from systems.strategies import learner
from tests.rl.test_env import TINY
from tests.support import make_config

pytestmark = pytest.mark.slow  # the wrapper compiles the environment's reset and tick

LEARNERS = 3
SHARES = 100  # each learner starts with shares of its symbol, so that a sell can fill
EPISODE = 6
WARMUP = 12
AGENTS = [f"learner_{i}" for i in range(LEARNERS)]


@pytest.fixture(scope="module")
def env():
    cfg = make_config(**TINY | {"population.learner.count": LEARNERS, "population.learner.shares": SHARES})
    return ParallelMarketEnv(TradingEnv(cfg, warmup=WARMUP, episode=EPISODE))


def positions(env):
    """Each learner's shares of its own symbol. list[int]"""
    state, kind = env.env_state, env.env.kind
    symbols = np.asarray(env.params.world.kinds[learner.KIND].trade.symbol)
    return [int(state.world.wallet.position[kind.start + i, symbols[i]]) for i in range(LEARNERS)]


def test_the_agents_and_their_spaces(env):
    assert env.possible_agents == AGENTS and env.metadata["name"] == "qtg_parallel_market_v0"
    for agent in AGENTS:
        space = env.observation_space(agent)
        assert space is env.observation_space(agent) and env.action_space(agent) is env.action_space(agent)
        assert space.shape == (SPEC.size,) and space.dtype == np.float32
        assert np.array_equal(space.high, np.broadcast_to(SPEC.high, (SPEC.size,)).astype(np.float32))
        assert env.action_space(agent).n == 2 * 2 + 1
    obs, infos = env.reset(seed=0)
    assert env.agents == AGENTS and list(obs) == AGENTS and infos == {a: {"tick": WARMUP} for a in AGENTS}
    for agent in AGENTS:
        assert obs[agent].dtype == np.float32 and env.observation_space(agent).contains(obs[agent])


def test_pettingzoos_parallel_api_test_passes(env):
    from pettingzoo.test import parallel_api_test

    parallel_api_test(env, num_cycles=EPISODE + 4)  # the episode ends inside the cycles
    assert env.agents == []


def test_the_wrappers_answers_are_the_environments_step_all(env):
    """Observations, rewards and equities for every agent, bit for bit, with the agent
    left out of the actions on hold."""
    tenv, params = env.env, env.params
    step_all = jax.jit(tenv.step_all)
    obs, _ = env.reset(seed=3)
    want_obs, _ = tenv.reset_all(jax.random.split(jax.random.key(3))[1], params)
    for i, agent in enumerate(AGENTS):
        assert np.array_equal(obs[agent], np.asarray(want_obs[i]))
    for actions in ({"learner_0": 4, "learner_1": 1, "learner_2": 0}, {"learner_0": 3, "learner_2": 1}):
        state = env.env_state
        act = np.asarray([actions.get(a, tenv.levels) for a in AGENTS], np.int32)
        want_obs, want_state, want_reward, want_info = step_all(state, act, params)
        obs, rewards, terminations, truncations, infos = env.step(actions)
        assert int(env.env_state.time) == int(want_state.time) and int(env.env_state.world.tick) == int(
            want_state.world.tick)
        assert np.array_equal(np.asarray(env.env_state.world.wallet.position), np.asarray(want_state.world.wallet.position))
        assert np.array_equal(np.asarray(env.env_state.world.wallet.cash), np.asarray(want_state.world.wallet.cash))
        for i, agent in enumerate(AGENTS):
            assert obs[agent].dtype == np.float32 and np.array_equal(obs[agent], np.asarray(want_obs[i]))
            assert type(rewards[agent]) is float and rewards[agent] == float(want_reward[i])
            assert infos[agent]["equity"] == float(want_info["equity"][i])
            assert infos[agent]["tick"] == int(want_state.world.tick)
        assert terminations == dict.fromkeys(AGENTS, False) and truncations == dict.fromkeys(AGENTS, False)
    # The agent left out held: its action in force is the hold, ``levels``.
    assert np.asarray(env.env_state.world.kinds[learner.KIND].action).tolist() == [3, tenv.levels, 1]


def test_learners_buying_holding_and_selling_move_their_positions_as_asked(env):
    """Each in the same ticks: the buyer's and the seller's full-size orders fill (the
    makers quote more than 50 shares a side), the holder's position stays."""
    env.reset(seed=7)
    assert np.asarray(env.params.world.kinds[learner.KIND].trade.size).tolist() == [50] * LEARNERS
    held = [positions(env)]
    for _ in range(2):
        env.step({"learner_0": 4, "learner_2": 0})  # learner_1 left out: it holds
        held.append(positions(env))
    assert held == [[100, 100, 100], [150, 100, 50], [200, 100, 0]]
    env.step({"learner_0": 0, "learner_1": 3, "learner_2": 2})  # the buyer sells; a half-size buy; hold
    assert positions(env) == [150, 125, 0]


def test_every_agent_is_truncated_when_the_episodes_ticks_are_up(env):
    env.reset(seed=9)
    ends = []
    for t in range(EPISODE):
        assert env.agents == AGENTS
        obs, rewards, terminations, truncations, infos = env.step({a: t % 5 for a in env.agents})
        assert list(obs) == list(rewards) == list(truncations) == list(infos) == AGENTS
        assert not any(terminations.values())
        assert len(set(truncations.values())) == 1
        ends.append(truncations["learner_0"])
    assert ends == [False] * (EPISODE - 1) + [True]
    assert env.agents == [] and int(env.env_state.time) == EPISODE
    assert infos["learner_0"]["tick"] == WARMUP + EPISODE
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step({})
    env.reset()
    assert env.agents == AGENTS


def test_a_seed_repeats_an_episode_and_resets_without_one_continue_the_sequence(env):
    def episode(seed=None):
        env.reset(seed=seed)
        seen = []
        for t in range(EPISODE):
            obs, *_ = env.step({a: (t + i) % 5 for i, a in enumerate(AGENTS)})
            seen.append(np.stack([obs[a] for a in AGENTS]))
        return np.stack(seen)

    a, b, c = episode(5), episode(5), episode(6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    episode(5)
    d = episode()  # the next key after seed 5's
    episode(5)
    assert np.array_equal(episode(), d) and not np.array_equal(d, a)


def test_bad_actions_are_refused(env):
    env.reset(seed=1)
    with pytest.raises(ValueError, match=r"actions\['learner_1'\]: an integer in \[0, 4\], got 5"):
        env.step({"learner_1": 5})
    with pytest.raises(ValueError, match=r"actions: no agent 'learner_3'"):
        env.step({"learner_3": 2})
    assert int(env.env_state.time) == 0  # nothing stepped
