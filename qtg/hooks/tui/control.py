"""Run control of the terminal view: pause, single steps, the speed limit and quit, shared
by the screen (which writes it) and the simulation (which waits on it)."""

from __future__ import annotations

import threading
import time
from typing import Callable

SPEED_LADDER: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 0)
"""Speed limits in ticks per second that ``+`` and ``-`` step through; 0 = unlimited (top)."""


def speed_label(speed: float) -> str:
    """``∞`` for no limit, else ticks per second."""
    return "∞" if speed <= 0 else f"{speed:g}/s"


def faster(speed: float) -> float:
    """The next rung up the speed ladder (unlimited stays unlimited)."""
    if speed <= 0:
        return 0.0
    return next((s for s in SPEED_LADDER if s <= 0 or s > speed), 0.0)


def slower(speed: float) -> float:
    """The next rung down the speed ladder (1 tick/s is the slowest)."""
    limited = [s for s in SPEED_LADDER if s > 0]
    if speed <= 0:
        return limited[-1]
    return next((s for s in reversed(limited) if s < speed), limited[0])


class RunControl:
    """Pause, single steps, speed limit and quit, shared by the screen and the simulation.

    :meth:`gate` is the simulation's gate (called before each tick): it blocks while
    paused, paces ticks to ``speed`` per second (0 = no limit) and returns False once
    :meth:`quit` was called. Every other method is called by the screen. Thread-safe.
    """

    def __init__(self, paused: bool = False, speed: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._cond = threading.Condition()
        self.paused, self.speed, self.quitting = bool(paused), max(float(speed), 0.0), False
        self.clock = clock
        self._steps = 0
        self._due: float | None = None  # when the next paced tick may run

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether it is now paused."""
        with self._cond:
            self.paused = not self.paused
            self._steps, self._due = 0, None
            self._cond.notify_all()
            return self.paused

    def pause(self) -> None:
        with self._cond:
            self.paused = True
            self._cond.notify_all()

    def step(self) -> None:
        """Let one more tick run while paused."""
        with self._cond:
            if self.paused:
                self._steps += 1
                self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cond:
            self.speed, self._due = max(float(speed), 0.0), None
            self._cond.notify_all()

    def quit(self) -> None:
        with self._cond:
            self.quitting = True
            self._cond.notify_all()

    def gate(self, on_pause: Callable[[], None] | None = None) -> bool:
        """Wait until the next tick may run; False to stop the run. ``on_pause`` runs
        (outside the lock) once before blocking for a pause, e.g. to publish the frame of
        the tick just run."""
        flushed = False
        while True:
            with self._cond:
                if self.quitting:
                    return False
                if self.paused:
                    if self._steps:
                        self._steps -= 1
                        return True
                    if flushed or on_pause is None:
                        self._cond.wait()
                        continue
                elif self.speed <= 0:
                    return True
                else:
                    period, now = 1.0 / self.speed, self.clock()
                    if self._due is None or now - self._due > period:
                        self._due = now  # no burst to catch up after a slow stretch
                    if now >= self._due:
                        self._due += period
                        return True
                    self._cond.wait(self._due - now)
                    continue
            on_pause()
            flushed = True
