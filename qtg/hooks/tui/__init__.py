"""The live terminal view (``python -m qtg.run ui=tui``): a Textual app over a running world.

Three pieces, each on its own side of the thread boundary:

* :class:`~qtg.hooks.tui.hook.TuiHook` (simulation thread) keeps a light per-tick ring of
  prices and the news, and at most ``ui.fps`` times per second (wall clock) publishes a
  :class:`~qtg.hooks.tui.hook.Frame` (book depth, P&L and risk per strategy kind, the
  history) into a latest-wins slot. The engine is not thread-safe, so the book is read
  there, inside ``on_tick``.
* :class:`~qtg.hooks.tui.control.RunControl` (both threads) is the gate of
  :meth:`qtg.core.sim.Simulation.run`: pause, single steps, the speed limit and quit. The
  screen writes it; the simulation waits on it.
* :class:`~qtg.hooks.tui.app.QtgApp` (main thread) runs the simulation in a worker thread
  and redraws at a steady ``ui.fps`` from the latest frame. It never waits on the simulation.

Keys: space pause/resume, ``s`` step one tick, ``+``/``-`` speed limit, ``1``-``9`` and the
arrows pick the symbol, ``w`` snapshot, ``q`` quit (stops at the next tick boundary, waits for
the hooks' ``on_end``). Prices on screen are in currency (units / 10,000).

One job per module:

=================  ==========================================================================
``hook``           the hook that publishes frames (simulation thread)
``control``        run control: pause, step, speed limit, quit; the speed ladder
``render``         pure renderers: the chart, book, news and table rows (styled text runs)
``widgets``        Textual panels that draw those rows through the line API
``app``            the app, and :func:`~qtg.hooks.tui.app.run_tui`, the entry point of a run
``logs``           holding console log lines while the screen is up
``screenshot``     an SVG of the screen for the README (``python -m qtg.hooks.tui``)
=================  ==========================================================================

Panels are drawn through Textual's line API from rows of styled runs, and only changed rows
are repainted: a frame costs the main thread a few milliseconds (``qtg.bench.tui``
measures the slowdown).
"""
