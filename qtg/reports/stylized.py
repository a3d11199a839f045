"""The stylized facts of a run's prices: measured, written as JSON and a figure.

The command is ``python -m qtg.validate`` (qtg/validate.py); the statistics and their
thresholds live in :mod:`qtg.reports.analysis`.
"""

from __future__ import annotations

import json
from pathlib import Path

from qtg.core.files import write_text
from qtg.reports import analysis


def measure_run(run_dir: Path) -> dict:
    """Measure the facts of ``run_dir``; write stylized_facts.json/.png; return the JSON dict:
    the four facts at the tick level (``facts``, counted in ``passed``/``failed``/
    ``not_applicable``), the facts at 1, 10 and 100 ticks (``scales``, with its own counts)
    and the reported values (``market``: ``half_life_ticks``, ``spread_ticks``,
    ``fair_move_fraction``)."""
    prices = analysis.load_prices(run_dir)
    facts = analysis.stylized_facts(prices)
    returns = analysis.log_returns(prices)
    out = {
        "run_dir": str(run_dir),
        "ticks": int(len(prices["ticks"])),
        "symbols": prices["symbols"],
        "sectors": prices["sectors"],
        "price": "mid, or last where a side of the book is empty",
        "returns": {s: int(len(r)) for s, r in returns.items()},
        "passed": sum(f["passed"] is True for f in facts),
        "failed": sum(f["passed"] is False for f in facts),
        "not_applicable": sum(f["passed"] is None for f in facts),
        "facts": facts,
        # Each fact at 1, 10 and 100 ticks (analysis.multiscale_facts), with its own counts.
        "scales": analysis.multiscale_facts(prices),
        # Reported values without a threshold: half-life, spread in ticks, fair-move fraction.
        "market": analysis.market_values(prices),
    }
    write_text(run_dir / "stylized_facts.json", json.dumps(out, indent=2) + "\n")
    analysis.plot_stylized_facts(facts, returns, run_dir / "stylized_facts.png",
                                 mispricing=analysis.log_mispricing(prices))
    return out
