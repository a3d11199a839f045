"""``python -m qtg.train [overrides]``: train a policy on the reactive market (PPO, fully
jitted; ``qtg.rl.trainer``) from the Hydra config ``conf/train.yaml``.

Examples::

    python -m qtg.train +experiment=rl_ppo                    # the default PPO run
    python -m qtg.train train.updates=50 train.seeds=4        # four seeds at once (vmapped)
    python -m qtg.train reward=risk_adjusted env.episode=200
    python -m qtg.train env=execution +experiment=rl_execution  # sell 5,000 shares in 50 ticks
    python -m qtg.train -m train.lr=1e-3,3e-4 seed=0,1        # a Hydra multirun: one job each
    python -m qtg.train train.resume=outputs/train/2026-12-07/10-00-00 train.updates=400

Outputs go to Hydra's run directory (``outputs/train/<date>/<time>``): ``metrics.csv``,
``metrics.json``, ``checkpoint.npz``, ``policy.npz``, ``observation_spec.json``,
``learning_curve.png``, ``summary.json``. A training resumed from a checkpoint continues
bit for bit (same config; only ``train.updates``, ``train.chunk`` and what is written may
change). A bad key or value, or a checkpoint that does not fit, is refused with one line
and exit code 2, before anything is built. Without a GPU, training runs XLA on one CPU
thread (``qtg.rl.one_cpu_thread``: XLA's CPU runtime can deadlock on PPO's program with
several).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.compose import CONF_DIR
from qtg.core.config import ConfigError, to_config

EXIT_CONFIG = 2


class _Failed(BaseException):
    """Leaves Hydra's launcher (which catches Exception) with the job's error."""


def _job(dcfg, out: Path) -> None:
    from qtg.rl import config as rlc
    from qtg.rl.trainer import train

    cfg = to_config({k: v for k, v in dcfg.items() if k != "hydra"}, rlc.RLConfig)
    rlc.check(cfg)
    from hydra.core.hydra_config import HydraConfig

    summary = train(cfg, out, progress=sys.stderr.isatty(), overrides=list(HydraConfig.get().overrides.task))
    ret = summary["episode_return_last"]
    print(f"qtg.train: {summary['updates']} updates, {summary['env_steps']:,} env steps "
          f"({summary['env_steps_per_s'] or 0:,.0f}/s); episode return (last tenth) by seed: "
          f"{', '.join('-' if r is None else f'{r:.4f}' for r in ret)}; outputs in {out}")


def error_line(e: BaseException) -> str | None:
    """The one line of a user error; None for a bug (it keeps its traceback)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from qtg.core.compose import _hydra_line
    from qtg.rl.checkpoint import CheckpointError

    if isinstance(e, (ConfigError, CheckpointError)):
        return f"qtg.train: config error: {e}"
    if isinstance(e, (HydraException, OmegaConfBaseException)):
        return f"qtg.train: config error: {_hydra_line(e)}"
    return None


def main(argv: list[str] | None = None) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from qtg.rl import config as rlc
    from qtg.rl import one_cpu_thread

    one_cpu_thread()  # before JAX's CPU backend starts (qtg.rl.one_cpu_thread)
    argv = sys.argv[1:] if argv is None else argv
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    if not flags & {"--help", "-h", "--cfg", "-c", "--info", "-m", "--multirun", "--hydra-help"}:
        app = [a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")]
        try:  # before Hydra makes a run directory
            cfg = rlc.load(app)
            if cfg.train.resume:
                from qtg.core.config import config_dict
                from qtg.rl import checkpoint as ckpt

                ckpt.check_config(ckpt.read_meta(cfg.train.resume)["config"], config_dict(cfg), cfg.train.resume)
        except Exception as e:
            line = error_line(e)
            if line is None:
                raise
            print(line, file=sys.stderr)
            return EXIT_CONFIG
    rlc.register()
    errors: list[BaseException] = []

    @hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
    def task(dcfg) -> None:
        logging.getLogger("jax").setLevel(logging.WARNING)
        try:
            _job(dcfg, Path(HydraConfig.get().runtime.output_dir))
        except Exception as e:  # noqa: BLE001 - reported by main
            errors.append(e)
            raise _Failed from None

    old_argv, old_full = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [sys.argv[0], *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        task()
    except _Failed:
        pass
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        errors.append(e)
    finally:
        sys.argv = old_argv
        if old_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = old_full
    if errors:
        e = errors[0]
        if isinstance(e, KeyboardInterrupt):
            print("qtg.train: interrupted; the run directory keeps the last chunk's checkpoint", file=sys.stderr)
            return 130
        line = error_line(e)
        if line is None:
            raise e
        print(line, file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
