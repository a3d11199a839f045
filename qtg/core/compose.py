"""Hydra composition without a run: ``conf/config.yaml`` plus overrides -> a typed, checked
:class:`~qtg.core.config.Config`, with Hydra's errors reduced to one line naming the key."""

from __future__ import annotations

import re
from pathlib import Path

from qtg.core.config import Config, ConfigError, omegaconf_line, register, to_config

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"



def compose(overrides: list[str], hydra: bool = False, name: str = "config"):
    """Compose ``conf/<name>.yaml`` with overrides (no run directory, no side effects);
    with ``hydra``, the ``hydra`` section too (its run directory, mode)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(name, overrides=overrides, return_hydra_config=hydra)


TRAINING_SECTIONS = ("train", "env", "reward")
"""Top-level keys only a training config (``conf/train.yaml``, ``qtg.rl.config``) has."""


def is_training_experiment(path: Path) -> bool:
    """A file of ``conf/experiment`` that configures a training (``python -m qtg.train``),
    not a run: it sets a section of :data:`TRAINING_SECTIONS`."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    return isinstance(data, dict) and any(k in data for k in TRAINING_SECTIONS)


def run_experiments(conf_dir: Path = CONF_DIR) -> list[Path]:
    """The experiments of ``python -m qtg.run`` (``conf/experiment``, training ones left out)."""
    return [p for p in sorted((conf_dir / "experiment").glob("*.yaml")) if not is_training_experiment(p)]


def load_config(overrides: list[str], name: str = "config", cls: type[Config] = Config) -> Config:
    """Composed, typed and validated config. Raises ConfigError with one line. ``name``:
    the primary config under ``conf/``; ``cls``: its schema."""
    try:
        dcfg = compose(overrides, name=name)
    except ConfigError:
        raise
    except Exception as e:  # Hydra's composition and override-parse errors
        raise ConfigError(_hydra_line(e)) from None
    dcfg = {k: v for k, v in dcfg.items() if k != "hydra"}
    return to_config(dcfg, cls)


def _hydra_line(e: Exception) -> str:
    """Hydra's multi-line messages, reduced to one line naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(e.__cause__, OmegaConfBaseException) and getattr(e.__cause__, "full_key", None):
        return omegaconf_line(e.__cause__)
    text = str(e)
    m = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if m:
        group, option = m.groups()
        listing = text.split("Available options", 1)[-1].split("Config search path", 1)[0]
        options = re.findall(r"^\t(\S+)$", listing, re.MULTILINE)
        return f"{group}={option}: no such option; allowed: {', '.join(options)}"
    return " ".join(text.split())
