"""The simulation itself, on the host: typed config, world build, the tick's schedule and
loop, and snapshots.

``config`` (dataclasses and checks), ``compose`` (Hydra composition to a checked config),
``news`` (fundamentals and news from the config; the news record as rows), ``world``
(config -> static, params, state and engine), ``schedule`` (the tick as data, compiled
into jitted segments), ``sim`` (the loop and its hook protocol), ``snapshot`` (save and
resume bit for bit). Nothing here imports a hook, a report or an entry point.
"""
