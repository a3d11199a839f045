"""``python -m qtg.validate RUN_DIR [--json]``: measure the stylized facts of a run's prices.

Reads ``RUN_DIR/prices.csv``, prints a table (fact, statistic, value, threshold,
PASS/FAIL/n/a), and writes ``RUN_DIR/stylized_facts.json`` and ``RUN_DIR/stylized_facts.png``
(``--json`` prints the JSON instead of the table).

Returns are log returns of each symbol's mid price (its last trade price on ticks where a
side of the book is empty). Each statistic is computed per symbol; a fact passes when the
median over symbols meets its threshold (T = number of returns, band = 1.96 / sqrt(T)):

- heavy tails: excess kurtosis of returns at horizon 1 > 1.0 (also reported at horizons 5
  and 20 ticks, summed over non-overlapping blocks);
- volatility clustering: mean ACF of ``|r|`` over lags 1-10 > max(0.05, band) (the ACF is
  computed at lags 1-50);
- no autocorrelation: ``|ACF(1)|`` of ``r`` < max(0.1, band) and mean ``|ACF|`` over lags
  2-10 < max(0.05, band). Bid-ask bounce and quotes pulled toward fair value make ACF(1)
  negative at the tick level; the table's note says when lag 1 alone fails;
- mean reversion toward fair value: AR(1) ``x[t+1] = a + b x[t] + e`` of
  ``x = log(price / fair)``; passes if 0 < b < 1 and the Dickey-Fuller statistic
  ``(b - 1) / se(b)`` < -2.86 (5% critical value with a constant), half-life
  ``-ln 2 / ln b`` ticks; n/a when the run recorded no fair value.

Then the same facts by time scale: log returns (and volume) summed over non-overlapping
blocks of 1, 10 and 100 ticks, each scale tested on its own: excess kurtosis > 1, also
with the 3 largest ``|r|`` removed; the Hill tail index of the top 5% ``|r|`` in [2, 5];
the ACF of ``|r|`` above the band at every lag 1-10; ``|ACF(1)|`` of ``r`` <
max(0.05, band); corr(``|r|``, volume) > 0 (Cont 2001; Hill 1975; Gopikrishnan et al.
1999). A scale with fewer than 30 blocks is n/a. Last, reported values without a
threshold: the mispricing half-life, the median quoted spread in ticks (from the
``tick_size`` column) and the fraction of ticks where fair value moves.

A statistic needs at least 30 values; a short or constant series is n/a. The constants
live in ``qtg.reports.analysis``. Exit code 0 when the facts were measured, whether they pass or
not; 2 with one ``qtg: ...`` line on stderr when the directory or ``prices.csv`` is
missing or malformed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from qtg.reports import analysis
from qtg.reports.stylized import measure_run

EXIT_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qtg.validate",
                                     description="Measure the stylized facts of a run's prices.csv.")
    parser.add_argument("run_dir", help="a run directory holding prices.csv")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        print(f"qtg: no such run directory: {run_dir}", file=sys.stderr)
        return EXIT_INPUT
    prices_csv = run_dir / "prices.csv"
    if not prices_csv.is_file():
        print(f"qtg: no prices.csv in {run_dir}", file=sys.stderr)
        return EXIT_INPUT
    try:
        out = measure_run(run_dir)
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        msg = " ".join(str(e).split())
        print(f"qtg: malformed {prices_csv}: {msg}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    band = next(f for f in out["facts"] if f["name"] == "volatility clustering")["statistics"].get("band")
    print(f"{run_dir}: {out['ticks']} ticks, {len(out['symbols'])} symbols; medians over symbols "
          f"(per symbol in stylized_facts.json); band = 1.96/sqrt(T) = {'-' if band is None else format(band, '.4f')}")
    print(analysis.format_facts_table(out["facts"]))
    for f in out["facts"]:
        if f["note"]:
            print(f"  {f['name']}: {f['note']}")
    print(f"{out['passed']} passed, {out['failed']} failed, {out['not_applicable']} n/a; "
          f"wrote {run_dir / 'stylized_facts.json'}, {run_dir / 'stylized_facts.png'}")
    for line in analysis.failed_facts(out["facts"]):
        print(f"FAILED {line}")
    ms, m = out["scales"], out["market"]
    print()
    print("by time scale (returns summed over blocks of 1, 10, 100 ticks; n/a below "
          f"{analysis.MIN_SAMPLES} blocks):")
    print(analysis.format_scale_table(ms))
    print(f"{ms['passed']} passed, {ms['failed']} failed, {ms['not_applicable']} n/a")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    print(f"reported: mispricing half-life {fmt(m['half_life_ticks'], '.2f')} ticks, quoted spread "
          f"{fmt(m['spread_ticks'], '.1f')} ticks (median), fair value moves on "
          f"{fmt(m['fair_move_fraction'], '.1%')} of ticks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
