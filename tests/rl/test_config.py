"""The training config (conf/train.yaml, qtg.rl.config): its groups and experiment
compose, every bad value is one line before anything is built, and qtg.train refuses it
with exit code 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtg.core.config import ConfigError
from qtg.rl.config import RLConfig, load

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults_are_the_32_agent_acme_market_with_one_learner():
    cfg = load([])
    assert isinstance(cfg, RLConfig) and cfg.market.symbols == ["ACME"]
    assert {n: k.count for n, k in cfg.population.items() if k.count} == {"market_maker": 2, "noise": 29, "learner": 1}
    assert (cfg.env.task, cfg.env.episode, cfg.env.warmup) == ("trading", 100, 30)
    assert (cfg.reward.pnl, cfg.reward.sharpe) == (1.0, 0.0) and cfg.train.algo == "ppo"


def test_the_reward_group_and_the_experiment_compose():
    risk = load(["reward=risk_adjusted"]).reward
    assert (risk.inventory, risk.drawdown, risk.variance, risk.cost_bps) == (0.001, 0.5, 0.1, 1.0)
    sharpe = load(["reward=sharpe"]).reward
    assert (sharpe.pnl, sharpe.sharpe) == (0.0, 1.0)
    assert load(["reward=fair_value"]).reward.mark == "fair" and load([]).reward.mark == "market"
    assert load(["reward=edge"]).reward.mark == "edge"
    ppo = load(["+experiment=rl_ppo"]).train
    assert (ppo.seeds, ppo.num_envs, ppo.num_steps, ppo.updates, ppo.gamma, ppo.ent_coef) == (4, 64, 64, 250, 0.95, 0.02)
    env, reward = load(["+experiment=rl_ppo"]).env, load(["+experiment=rl_ppo"]).reward
    assert (env.openings, env.warmup, reward.mark, reward.cost_bps) == (64, 100, "edge", 0.0)


@pytest.mark.parametrize("overrides, line", [
    (["train.lr=2"], "train.lr: must be in [0.0, 1.0], got 2.0"),
    (["train.minibatches=3"], "train.minibatches: must divide num_envs * num_steps = 2048, got 3"),
    (["env.task=poker"], "env.task: unknown task 'poker'; allowed: trading"),
    (["train.algo=sac"], "train.algo: unknown algorithm 'sac'; allowed: ppo"),
    (["population.learner.count=0"], "population.learner.count: training needs at least one learner, got 0"),
    (["reward=nope"], "reward=nope: no such option; allowed: edge, fair_value, pnl, risk_adjusted, sharpe"),
    (["reward.mark=book"], "reward.mark: unknown valuation 'book'; allowed: market, fair, edge"),
    (["env=execution", "env.openings=4"], "env.openings: the execution task starts every episode from one opening"),
    (["env.openings=0"], "env.openings: must be"),
    (["train.hidden=[]"], "train.hidden: at least one hidden layer is needed, got []"),
    (["env.episode=0"], "env.episode: must be"),
])
def test_a_bad_value_is_one_line(overrides, line):
    with pytest.raises(ConfigError) as e:
        load(overrides)
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


def _train_cli(*args, cwd):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "qtg.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_qtg_train_refuses_bad_input_with_exit_2_and_makes_no_run_directory(tmp_path):
    out = _train_cli("train.lr=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == "qtg.train: config error: train.lr: must be in [0.0, 1.0], got 2.0"
    out = _train_cli(f"train.resume={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and "train.resume:" in out.stderr and "no checkpoint there" in out.stderr
    assert not (tmp_path / "run").exists()
