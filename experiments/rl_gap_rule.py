"""How much alpha does the trading task's market hold? Scripted policies in the training
environment (``qtg.rl.env.TradingEnv`` of ``conf/train.yaml``), the yardstick for a
trained one.

The fundamentals' fair value leads the price (``market.anchoring``: prices find it with a
half-life of about 70 ticks) and the learner observes the gap (``value_gap``, the first
feature of ``systems.features.SPEC``). Each policy here runs ``--episodes`` vmapped
episodes of ``--ticks`` ticks from each of ``--openings`` openings (the environment built
with ``seed=`` 0, 1, ...: a training starts every episode from the opening of its seed),
with keys split from ``--seed`` (the same futures for every policy):

* ``hold``: never trades (0 by construction);
* ``long``: buys the largest size every tick up to its limit, then holds;
* ``gap_<th>``: buys the largest size while the price is more than ``th`` below fair value
  (``log(fair / price) > th``), sells the largest size (down to its short limit) while it is
  more than ``th`` above, holds otherwise.

For each: the mean episode return at the marks (percent of the opening equity), its
standard error, and the return minus buy-and-hold's (the symbol bought at the opening
mark and held) paired by episode, with its standard error.

    python experiments/rl_gap_rule.py                              # 48 episodes of 1,000 ticks
    python experiments/rl_gap_rule.py --openings 4 --episodes 12   # four openings
    python experiments/rl_gap_rule.py --ticks 100 reward.mark=fair  # the training episode, fair-valued

Overrides after the options apply to the training config. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import qtg  # noqa: F401  (x64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--ticks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--openings", type=int, default=1, help="environments built with seed=0, 1, ... (default 1)")
    ap.add_argument("--thresholds", type=float, nargs="*", default=[0.002, 0.005, 0.01])
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from qtg.rl.config import load
    from qtg.rl.env import TradingEnv
    from systems import measure
    from systems.features import SPEC

    def episodes(env, rule):
        params = env.default_params

        def one(key):
            obs, state = env.reset_all(key, params)
            opening = measure.marks(state.world)[env._symbols(params)[0]]

            def body(carry, _):
                obs, state = carry
                obs, state, reward, _ = env.step_all(state, rule(obs[:, 0] / scale), params)
                return (obs, state), reward[0]

            (_, state), rewards = jax.lax.scan(body, (obs, state), None, args.ticks)
            hold = (measure.marks(state.world)[env._symbols(params)[0]] / opening - 1.0) * 100.0
            return rewards.sum(), hold

        keys = jax.random.split(jax.random.key(args.seed), args.episodes)
        ret, hold = jax.jit(jax.vmap(one))(keys)
        return np.asarray(ret, np.float64), np.asarray(hold, np.float64)

    scale = SPEC.features[SPEC.names.index("value_gap")].scale
    envs = [TradingEnv.from_config(load([*args.overrides, f"env.episode={args.ticks}", f"seed={i}"]))
            for i in range(args.openings)]
    levels = envs[0].levels
    top = 2 * levels
    rules = {"hold": lambda gap: jnp.full(gap.shape, levels), "long": lambda gap: jnp.full(gap.shape, top)}
    for th in args.thresholds:
        rules[f"gap_{th:g}"] = lambda gap, th=th: jnp.where(gap > th, top, jnp.where(gap < -th, 0, levels))
    n = args.episodes * args.openings
    out = {"episodes": n, "openings": args.openings, "ticks": args.ticks, "seed": args.seed, "overrides": args.overrides,
           "policies": {}}
    for name, rule in rules.items():
        runs = [episodes(env, rule) for env in envs]
        ret, hold = np.concatenate([r for r, _ in runs]), np.concatenate([h for _, h in runs])
        diff = ret - hold
        out["policies"][name] = {"return": ret.mean(), "return_se": ret.std(ddof=1) / np.sqrt(n),
                                 "minus_buy_and_hold": diff.mean(), "minus_buy_and_hold_se": diff.std(ddof=1) / np.sqrt(n)}
        print(f"{name:>10}: return {ret.mean():+.3f} % (se {ret.std(ddof=1) / np.sqrt(n):.3f}), minus buy-and-hold "
              f"{diff.mean():+.3f} (se {diff.std(ddof=1) / np.sqrt(n):.3f})", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
