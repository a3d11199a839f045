"""The progress bar hook (tqdm)."""

from __future__ import annotations

from qtg.core.sim import Simulation, TickResult


class Progress:
    """A tqdm progress bar showing the last price and fills so far. ``total`` is the run's
    last tick, so a resumed run's bar starts where the snapshot was taken."""

    name = "progress"

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self._bar = None
        self._fills = 0

    def on_start(self, sim: Simulation) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=sim.tick, unit="tick", dynamic_ncols=True,
                             mininterval=0.25)

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        if self._bar is None:
            return
        self._fills += len(r.fills)
        self._bar.update(1)
        if r.tick % 25 == 0 or self._bar.n == self.total:
            prices = " ".join(
                f"{s}={p / 10_000:.2f}" for s, p in zip(sim.static.symbols[:3], r.last[:3])
            )
            self._bar.set_postfix_str(f"{prices} fills={self._fills}", refresh=False)

    def on_end(self, sim: Simulation) -> None:
        if self._bar is not None:
            self._bar.close()
