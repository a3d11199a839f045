"""An SVG screenshot of the terminal view over a world run headless (the README's picture):
``python -m qtg.hooks.tui docs/tui.svg [overrides] --ticks N``."""

from __future__ import annotations

from typing import Sequence

from qtg.core.sim import Simulation
from qtg.hooks.tui.app import run_tui
from qtg.hooks.tui.hook import TuiHook


def screenshot(path: str, overrides: Sequence[str] = (), ticks: int = 1500,
               size: tuple[int, int] = (160, 48)) -> str:
    """Run a world (``qtg.run`` overrides) under the view, headless, and save an SVG of the
    screen once it has run ``ticks`` ticks (the README's picture). Returns the path."""
    from pathlib import Path

    from qtg.core.compose import load_config
    from qtg.core.world import build_world, make_engine_for

    cfg = load_config([*overrides, "hooks=[]", "ui=tui", "ui.paused=false"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    out = Path(path)

    async def shoot(pilot) -> None:
        app = pilot.app
        while (frame := app.hook.latest()) is None or frame.tick < ticks:
            await pilot.pause(0.05)
        await pilot.pause(0.3)  # a redraw of the newest frame and the tables
        app.save_screenshot(out.name, str(out.parent))
        await pilot.press("q")

    run_tui(sim, [TuiHook(cfg.ui)], cfg.run.ticks, cfg.ui, headless=True, size=size, auto_pilot=shoot)
    return str(out)
