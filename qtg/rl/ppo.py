"""PPO on the reactive market, fully jitted (the purejaxrl recipe): the environments are
vmapped on the device, a rollout is a ``lax.scan`` of their steps, GAE and the update
epochs over shuffled minibatches run inside the same compiled program, and independent
seeds are one more ``vmap`` (the learning; every seed's markets step as one flat batch).

:func:`make` returns ``(init, run)``: ``init(seeds) -> Runner`` (one per seed, stacked)
and ``run(runner, n) -> (runner, metrics)``, ``n`` updates compiled as one call (metrics
``[seeds, n]`` per name, :data:`METRICS`). A :class:`Runner` holds everything that
determines the rest of a training (the network's parameters, the optimiser's state with
its step count, every environment's state and observation, the running episode returns
and the PRNG key), so a training saved after any update and resumed continues bit for
bit (``qtg.rl.checkpoint``).

The network (:class:`ActorCritic`) is two MLPs of ``hidden`` tanh layers, the policy's
logits and the value; its actor is ``systems.policy``'s network, which is what a trained
policy exports and trades with. Truncated episodes are treated as ends (the value is not
bootstrapped across the automatic reset), as in purejaxrl.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.linen.initializers import constant, orthogonal
from gymnax.environments import spaces

from systems.policy import dense

METRICS = ("episode_return", "episodes", "reward", "policy_loss", "value_loss", "entropy", "approx_kl")
"""Per update: the mean return of the episodes that ended in its rollout (NaN when none
did), how many ended, the mean step reward, and the losses of its last minibatch pass
averaged over its minibatches."""


class Dense(nn.Module):
    """flax's ``Dense`` computed by ``systems.policy.dense``: the layer a trained policy
    trades with, so the policy in a run computes what it computed in training."""

    features: int
    scale: float

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", orthogonal(self.scale), (x.shape[-1], self.features), jnp.float32)
        b = self.param("bias", constant(0.0), (self.features,), jnp.float32)
        return dense(x, w, b)


LOG_STD = -0.5
"""A continuous policy's initial log standard deviation (the same for every action
component; learnt, state-independent)."""


class ActorCritic(nn.Module):
    """The actor's logits (discrete actions) or the mean of its Gaussian (``continuous``:
    then a learnt ``log_std`` parameter of ``actions`` entries too), and the value."""

    hidden: Sequence[int]
    actions: int
    continuous: bool = False

    @nn.compact
    def __call__(self, x):
        a = x
        for i, h in enumerate(self.hidden):
            a = nn.tanh(Dense(h, math.sqrt(2), name=f"actor_{i}")(a))
        logits = Dense(self.actions, 0.01, name="actor_out")(a)
        if self.continuous:
            self.param("log_std", constant(LOG_STD), (self.actions,), jnp.float32)
        v = x
        for i, h in enumerate(self.hidden):
            v = nn.tanh(Dense(h, math.sqrt(2), name=f"critic_{i}")(v))
        value = Dense(1, 1.0, name="critic_out")(v)
        return logits, jnp.squeeze(value, -1)


def actor_layers(params: Any, hidden: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The policy's layers ``[(kernel, bias)]`` of one seed's parameters, as NumPy arrays
    (``systems.policy``'s network)."""
    p = params["params"]
    names = [f"actor_{i}" for i in range(len(hidden))] + ["actor_out"]
    return [(np.asarray(p[n]["kernel"]), np.asarray(p[n]["bias"])) for n in names]


@struct.dataclass
class Runner:
    params: Any
    opt_state: Any
    env_state: Any  # the environments' states [S, E] (seeds, markets)
    obs: jax.Array  # f32[S, E, F]
    episode_return: jax.Array  # f32[S, E] reward summed since each environment's episode began
    key: jax.Array  # [S]
    update: jax.Array  # i32[S] updates done


@struct.dataclass
class Transition:
    obs: jax.Array
    action: jax.Array
    logp: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


class Categorical:
    """Discrete actions: the logits' softmax (``log_std`` unused)."""

    @staticmethod
    def sample(key, logits, log_std):
        return jax.random.categorical(key, logits)

    @staticmethod
    def log_prob(logits, log_std, action):
        return jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], axis=-1)[..., 0]

    @staticmethod
    def entropy(logits, log_std):
        logp = jax.nn.log_softmax(logits)
        return -(jnp.exp(logp) * logp).sum(-1)


class Gaussian:
    """Continuous actions: independent normals of mean the actor's output and standard
    deviation ``exp(log_std)`` (the environment clips the sample to its bounds)."""

    @staticmethod
    def sample(key, mean, log_std):
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    @staticmethod
    def log_prob(mean, log_std, action):
        z = (action - mean) * jnp.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)

    @staticmethod
    def entropy(mean, log_std):
        return jnp.broadcast_to((log_std + 0.5 * math.log(2.0 * math.pi * math.e)).sum(), mean.shape[:-1])


def _log_std(params):
    """A continuous policy's log standard deviations (``None`` for a discrete one)."""
    return params["params"].get("log_std")


def make(env, env_params, t) -> tuple[Callable, Callable, ActorCritic, optax.GradientTransformation]:
    """PPO for ``env`` (a gymnax environment with discrete actions, or continuous ones in a
    Box: a Gaussian policy) with the hyperparameters ``t``
    (``qtg.rl.config.TrainConfig``): ``(init, run, network, tx)``; ``init`` and ``run``
    are jitted."""
    continuous = isinstance(env.action_space(env_params), spaces.Box)
    dist = Gaussian if continuous else Categorical
    net = ActorCritic(hidden=tuple(t.hidden), actions=env.num_actions, continuous=continuous)
    E, T = t.num_envs, t.num_steps
    batch = E * T
    mb = batch // t.minibatches
    total = t.updates * t.epochs * t.minibatches
    lr = optax.linear_schedule(t.lr, 0.0, total) if t.anneal_lr else t.lr
    tx = optax.chain(optax.clip_by_global_norm(t.max_grad_norm), optax.adam(lr, eps=1e-5))
    obs_size = env.observation_space(env_params).shape[0]
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    reset_envs = jax.vmap(env.reset, in_axes=(0, None))

    def init_one(key):
        key, k_net, k_env = jax.random.split(key, 3)
        params = net.init(k_net, jnp.zeros((obs_size,), jnp.float32))
        obs, env_state = reset_envs(jax.random.split(k_env, E), env_params)
        return Runner(params=params, opt_state=tx.init(params), env_state=env_state, obs=obs,
                      episode_return=jnp.zeros(E, jnp.float32), key=key, update=jnp.int32(0))

    def policy_one(params, obs, key):
        """One seed's actions: sampled from its policy at its markets' observations."""
        logits, value = net.apply(params, obs)
        action = dist.sample(key, logits, _log_std(params))
        return action, dist.log_prob(logits, _log_std(params), action), value

    def flat(tree):  # [S, E, ...] -> [S * E, ...]
        return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1], *x.shape[2:])), tree)

    def rollout_step(r: Runner, _):
        """One step of every seed's markets, all seeds' markets as one flat batch (S * E)
        of market ticks."""
        S = r.obs.shape[0]
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(r.key)
        action, logp, value = jax.vmap(policy_one)(r.params, r.obs, keys[:, 1])
        step_keys = jax.vmap(lambda k: jax.random.split(k, E))(keys[:, 2])
        obs, env_state, reward, terminated, truncated, _ = step_envs(flat(step_keys), flat(r.env_state),
                                                                     flat(action), env_params)
        unflat = lambda x: x.reshape((S, E, *x.shape[1:]))
        obs, env_state, reward = unflat(obs), jax.tree.map(unflat, env_state), unflat(reward)
        done = unflat(terminated | truncated)
        ret = r.episode_return + reward
        tr = Transition(obs=r.obs, action=action, logp=logp, value=value, reward=reward, done=done)
        ended = (jnp.where(done, ret, 0.0).sum(axis=1), done.sum(axis=1))
        r = r.replace(env_state=env_state, obs=obs, episode_return=jnp.where(done, 0.0, ret), key=keys[:, 0])
        return r, (tr, ended)

    def gae(traj: Transition, last_value):
        def back(carry, tr):
            adv, next_value = carry
            nonterminal = 1.0 - tr.done
            delta = tr.reward + t.gamma * next_value * nonterminal - tr.value
            adv = delta + t.gamma * t.gae_lambda * nonterminal * adv
            return (adv, tr.value), adv

        _, adv = jax.lax.scan(back, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
        return adv, adv + traj.value

    def loss_fn(params, tr: Transition, adv, target):
        logits, value = net.apply(params, tr.obs)
        logp = dist.log_prob(logits, _log_std(params), tr.action)
        v_clipped = tr.value + jnp.clip(value - tr.value, -t.clip, t.clip)
        value_loss = 0.5 * jnp.maximum((value - target) ** 2, (v_clipped - target) ** 2).mean()
        ratio = jnp.exp(logp - tr.logp)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - t.clip, 1.0 + t.clip) * adv).mean()
        entropy = dist.entropy(logits, _log_std(params)).mean()
        total_loss = policy_loss + t.vf_coef * value_loss - t.ent_coef * entropy
        approx_kl = ((ratio - 1.0) - (logp - tr.logp)).mean()
        return total_loss, (policy_loss, value_loss, entropy, approx_kl)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def learn(params, opt_state, key, traj: Transition, last_value, ret_sum, ended):
        """One seed's update from its rollout ``traj`` [T, E]: GAE, then the epochs."""
        adv, target = gae(traj, last_value)

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, batch)

            def shuffle(x):
                return x.reshape((batch, *x.shape[2:]))[perm].reshape((t.minibatches, mb, *x.shape[2:]))

            data = jax.tree.map(shuffle, (traj, adv, target))

            def minibatch(carry, d):
                params, opt_state = carry
                (_, aux), grads = grad_fn(params, *d)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), aux

            (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), data)
            return (params, opt_state, key), aux

        key, k_epochs = jax.random.split(key)
        (params, opt_state, _), aux = jax.lax.scan(epoch, (params, opt_state, k_epochs), None, length=t.epochs)
        policy_loss, value_loss, entropy, approx_kl = (a[-1].mean() for a in aux)
        n_ended = ended.sum()
        metrics = {
            "episode_return": jnp.where(n_ended > 0, ret_sum.sum() / jnp.maximum(n_ended, 1), jnp.nan),
            "episodes": n_ended.astype(jnp.float32),
            "reward": traj.reward.mean(),
            "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy, "approx_kl": approx_kl,
        }
        return params, opt_state, key, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def update(r: Runner, _):
        """One update of every seed: the rollout (all seeds' markets at once), then each
        seed's learning (vmapped). Metrics [S] per name."""
        r, (traj, (ret_sum, ended)) = jax.lax.scan(rollout_step, r, None, length=T)  # traj [T, S, E]
        _, last_value = jax.vmap(net.apply)(r.params, r.obs)
        by_seed = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), (traj, ret_sum, ended))  # [S, T, ...]
        params, opt_state, key, metrics = jax.vmap(learn)(r.params, r.opt_state, r.key, by_seed[0], last_value,
                                                          by_seed[1], by_seed[2])
        return r.replace(params=params, opt_state=opt_state, key=key, update=r.update + 1), metrics

    @jax.jit
    def init(keys: jax.Array) -> Runner:
        return jax.vmap(init_one)(keys)

    def run_n(r: Runner, n: int):
        r, metrics = jax.lax.scan(update, r, None, length=n)  # metrics [n, S]
        return r, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)

    run = jax.jit(run_n, static_argnums=1)
    return init, run, net, tx
