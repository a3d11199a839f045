"""Hooks: observers of the run. The simulation calls them; it never imports them.

Config chooses them by name (``hooks=[progress,metrics,storage]``); :data:`HOOKS` maps
each name to a factory taking a :class:`HookContext`. ``tui`` is the terminal view
(``ui=tui`` adds it). :class:`Recorder` is the run's in-memory history behind the summary
and charts; ``qtg.run`` always adds it.
"""


from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from qtg.core.config import config_dict
from qtg.core.sim import SimulationHook
from qtg.hooks.metrics import Metrics
from qtg.hooks.progress import Progress
from qtg.hooks.recorder import Recorder

__all__ = ["HOOKS", "HookContext", "Metrics", "Progress", "Recorder", "make_hooks"]


@dataclasses.dataclass
class HookContext:
    """What a hook factory may use: the typed config and the run directory (None when the
    run has none, e.g. in a notebook)."""

    cfg: Any  # qtg.core.config.Config
    run_dir: Path | None


def _progress(ctx: HookContext) -> SimulationHook:
    return Progress(ctx.cfg.run.ticks)


def _metrics(ctx: HookContext) -> SimulationHook:
    return Metrics(ctx.run_dir, ctx.cfg.metrics.every)


def _storage(ctx: HookContext) -> SimulationHook:
    from qtg.hooks.storage import Storage

    if ctx.run_dir is None:
        raise ValueError("the storage hook needs a run directory")
    return Storage(ctx.run_dir / ctx.cfg.storage.file, ctx.cfg.storage, config_dict(ctx.cfg), ctx.cfg.seed)


def _tui(ctx: HookContext) -> SimulationHook:
    from qtg.hooks.tui.hook import TuiHook

    return TuiHook(ctx.cfg.ui)


HOOKS: dict[str, Callable[[HookContext], SimulationHook]] = {
    "progress": _progress,
    "metrics": _metrics,
    "storage": _storage,
    "tui": _tui,
}
"""Hook factories by config name (the names :data:`qtg.core.config.HOOK_NAMES` allows)."""


def make_hooks(names: list[str], ctx: HookContext) -> list[SimulationHook]:
    """The hooks called ``names``, in that order (unknown names raise ValueError)."""
    unknown = [n for n in names if n not in HOOKS]
    if unknown:
        raise ValueError(f"unknown hook(s) {unknown}; allowed: {', '.join(sorted(HOOKS))}")
    return [HOOKS[n](ctx) for n in names]
