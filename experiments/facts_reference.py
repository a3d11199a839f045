"""What would a textbook clustered return series pass? The stylized-fact tests of
``python -m qtg.validate --seeds`` applied to synthetic series of the same length.

The market's targets ask each fact to pass at 1, 10 and 100 ticks in 90% of 5,000-tick
series. At 100 ticks a series has 50 blocks, and returns summed over blocks grow more
Gaussian (Cont 2001, fact 3: aggregational Gaussianity). This script measures how often
the same tests (``qtg.reports.seeds.series_verdicts``, unchanged) pass on series whose
properties are known:

* ``garch``: GARCH(1,1) (Bollerslev 1986), ``h = 1 - a - b + a r^2 + b h`` with ``a``
  0.05 and ``b`` 0.94 (persistence 0.99, typical of fitted stock returns), Student t
  innovations with 5 degrees of freedom scaled to unit variance;
* ``regimes``: two volatility regimes four times apart (a Markov chain with mean stays of
  1,000 calm and 500 turbulent ticks), Gaussian innovations;
* ``sv``: stochastic volatility (Taylor 1986): log volatility an AR(1) with a 1,000-tick
  memory and a stationary standard deviation of 0.8 (volatility a factor 2.2 above or
  below its median one standard deviation out), Student t(5) innovations;
* ``iid``: independent Student t(5) returns (the control: no clustering).

Each return is scaled to 5 bp; the traded volume of a tick is its volatility times a
lognormal factor (the mixture-of-distributions hypothesis: Clark 1973, Tauchen and Pitts
1983), so volume and |r| correlate as in markets. No fair value, so mean reversion is n/a.

    python experiments/facts_reference.py                 # 100 series of 5,000 ticks per model
    python experiments/facts_reference.py --series 20 --ticks 50000   # where 100 ticks has 500 blocks

One JSON object on stdout (each model's pass rates by fact and scale); each model's table
on stderr, in the layout of ``qtg.validate --seeds``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from qtg.bench import machine
from qtg.reports import analysis, seeds

MODELS = ("garch", "regimes", "sv", "iid")
GARCH = (0.05, 0.94)  # a, b
T_DF = 5
REGIME_RATIO = 4.0
REGIME_STAY = (1000.0, 500.0)  # mean ticks in the calm and the turbulent regime
SV = (1000.0, 0.8)  # memory of log volatility (ticks), its stationary standard deviation
TICK_VOL = 0.0005


def student(rng: np.random.Generator, n: int) -> np.ndarray:
    """Student t(T_DF) draws scaled to unit variance."""
    return rng.standard_t(T_DF, n) / np.sqrt(T_DF / (T_DF - 2))


def garch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and conditional volatilities (unit unconditional variance) of GARCH(1,1)."""
    a, b = GARCH
    z, r, vol, h = student(rng, n), np.empty(n), np.empty(n), 1.0
    for i in range(n):
        vol[i] = np.sqrt(h)
        r[i] = vol[i] * z[i]
        h = 1.0 - a - b + a * r[i] ** 2 + b * h
    return r, vol


def regimes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and volatilities of the two-regime chain, normalised to unit variance."""
    leave = 1.0 / np.array(REGIME_STAY)
    p = REGIME_STAY[1] / sum(REGIME_STAY)  # the turbulent regime's share of time
    state, u = int(rng.random() < p), rng.random(n)
    turbulent = np.empty(n, bool)
    for i in range(n):
        turbulent[i] = state
        if u[i] < leave[state]:
            state = 1 - state
    vol = np.where(turbulent, REGIME_RATIO, 1.0) / np.sqrt(1 - p + p * REGIME_RATIO**2)
    return vol * rng.standard_normal(n), vol


def sv(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and volatilities of the stochastic-volatility model, normalised to unit variance."""
    memory, sd = SV
    phi = 1.0 - 1.0 / memory
    shocks = sd * np.sqrt(1.0 - phi**2) * rng.standard_normal(n)
    log_vol, x = np.empty(n), sd * rng.standard_normal()
    for i in range(n):
        x = phi * x + shocks[i]
        log_vol[i] = x
    vol = np.exp(log_vol)
    vol /= np.sqrt(np.mean(vol**2))
    return vol * student(rng, n), vol


def iid(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return student(rng, n), np.ones(n)


def as_prices(r: np.ndarray, vol: np.ndarray, rng: np.random.Generator) -> dict:
    """A one-symbol ``prices`` dict (the layout of ``analysis.load_prices``) whose mid
    follows the returns ``r`` (scaled to TICK_VOL) from 100, with volume
    ``1000 * vol * lognormal(0, 0.5)``."""
    price = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(TICK_VOL * r)]))[:, None]
    volume = np.concatenate([[0.0], 1000.0 * vol * np.exp(0.5 * rng.standard_normal(len(r)))])[:, None]
    return {"symbols": ["S"], "bid": price * 0.9999, "ask": price * 1.0001, "mid": price, "last": price,
            "fair": np.zeros_like(price), "volume": volume}


def reference(model: str, series: int, ticks: int, seed: int) -> list[dict]:
    """The pass-rate rows (``seeds.pass_rates``) of ``series`` series of ``ticks`` returns."""
    make = {"garch": garch, "regimes": regimes, "sv": sv, "iid": iid}[model]
    rng = np.random.default_rng([seed, MODELS.index(model)])
    verdicts = []
    for _ in tqdm(range(series), desc=model, unit="series", file=sys.stderr, mininterval=1.0):
        r, vol = make(rng, ticks)
        verdicts += list(seeds.series_verdicts(as_prices(r, vol, rng)).values())
    return seeds.pass_rates(verdicts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python experiments/facts_reference.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=100, help="series per model (default 100)")
    ap.add_argument("--ticks", type=int, default=5000, help="returns per series (default 5,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    args = ap.parse_args(argv)
    if args.series < 1 or args.ticks < analysis.MIN_SAMPLES + 1:
        print(f"qtg: --series must be >= 1 and --ticks >= {analysis.MIN_SAMPLES + 1} "
              f"(got {args.series}, {args.ticks})", file=sys.stderr)
        return 2
    out = {"series": args.series, "ticks": args.ticks, "seed": args.seed, "machine": machine(), "models": {}}
    for model in args.models:
        rows = reference(model, args.series, args.ticks, args.seed)
        print(f"{model}: {args.series} series of {args.ticks:,} ticks", file=sys.stderr)
        print(seeds.format_rates_table(rows), file=sys.stderr)
        out["models"][model] = {r["name"]: {k: c["rate"] for k, c in r["by_scale"].items()} for r in rows}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
