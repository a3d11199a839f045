"""``python -m qtg.validate RUN_DIR [--json]``: measure the stylized facts of a run's prices.
``python -m qtg.validate --seeds N [--ticks T] [--out DIR] [overrides ...]``: the same facts
over N seeds, as pass rates (see "Many seeds" below).

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
the McLeod-Li test of ``|r|`` (Ljung-Box Q over lags 1-10 above the chi-squared 5%
value 18.3, with a positive mean ACF; the count of lags above the band is kept in the
JSON); ``|ACF(1)|`` of ``r`` <
max(0.05, band); corr(``|r|``, volume) > 0 (Cont 2001; Hill 1975; Gopikrishnan et al.
1999). A scale with fewer than 30 blocks is n/a. Last, reported values without a
threshold: the mispricing half-life, the median quoted spread in ticks (from the
``tick_size`` column) and the fraction of ticks where fair value moves.

A statistic needs at least 30 values; a short or constant series is n/a. The constants
live in ``qtg.reports.analysis``. Exit code 0 when the facts were measured, whether they pass or
not; 2 with one ``qtg: ...`` line on stderr when the directory or ``prices.csv`` is
missing or malformed.

Many seeds: ``--seeds N`` runs the default market (with any Hydra overrides, e.g.
``population=seed_100k`` or ``market.symbols=[A,B]``) for seeds 0..N-1, ``--ticks`` ticks
each (default 5,000), each as ``python -m qtg.run seed=K run.ticks=T run.chart=false
hooks=[]`` in ``DIR/seed_K`` (default DIR: ``outputs/validate_seeds/<timestamp>``), ``--jobs``
of them at once (default: one per core; the results do not depend on it). Every
seed x symbol series is tested on its own (:mod:`qtg.reports.seeds`): each fact of the
scale table at 1, 10 and 100 ticks, and mean reversion at the tick level. Prints a table
(fact x scale: pass rate and passed/total, n/a series left out and counted) and writes
``DIR/stylized_facts_seeds.json`` and ``DIR/stylized_facts_seeds.png`` (log-log CCDF of
``|r|`` against a Gaussian of the same variance, mean ACF of ``|r|`` at the three scales
with the white-noise band, mispricing ACF with the AR(1) half-life). A bad argument or
override is refused before any run with one ``qtg: ...`` line on stderr and exit 2; a run
that fails prints its last stderr line and exits with its code.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from qtg.reports import analysis
from qtg.reports.stylized import measure_run

EXIT_INPUT = 2
DEFAULT_TICKS = 5000
"""Ticks per seed of ``--seeds`` when ``--ticks`` is not given."""


class _Usage(Exception):
    """A bad command line: one line for stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise _Usage(message)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m qtg.validate",
                     description="Measure the stylized facts of a run's prices.csv, or over many seeds.")
    parser.add_argument("args", nargs="*", metavar="RUN_DIR | OVERRIDE",
                        help="a run directory holding prices.csv; with --seeds, Hydra overrides")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    parser.add_argument("--seeds", type=int, help="run seeds 0..N-1 and report pass rates")
    parser.add_argument("--ticks", type=int, help=f"ticks per seed with --seeds (default {DEFAULT_TICKS:,})")
    parser.add_argument("--out", help="with --seeds: the output directory "
                        "(default outputs/validate_seeds/<timestamp>)")
    parser.add_argument("--jobs", type=int, help="with --seeds: seeds run at once (default: one per core)")
    try:
        args = parser.parse_args(argv)
        if args.seeds is None:
            if args.ticks is not None or args.out is not None or args.jobs is not None:
                raise _Usage("--ticks, --out and --jobs need --seeds")
            if len(args.args) != 1:
                raise _Usage(f"expected one RUN_DIR, got {len(args.args)} arguments")
        elif args.seeds < 1:
            raise _Usage(f"--seeds: at least 1, got {args.seeds}")
        elif args.ticks is not None and args.ticks < 1:
            raise _Usage(f"--ticks: at least 1, got {args.ticks}")
        elif args.jobs is not None and args.jobs < 1:
            raise _Usage(f"--jobs: at least 1, got {args.jobs}")
    except _Usage as e:
        print(f"qtg: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_INPUT
    if args.seeds is not None:
        return _many_seeds(args)
    run_dir = Path(args.args[0])
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


def _many_seeds(args) -> int:
    """``--seeds N``: run each seed, test every seed x symbol series, print and write the rates."""
    from tqdm import tqdm

    from qtg.core.compose import load_config
    from qtg.core.config import ConfigError
    from qtg.core.files import write_text
    from qtg.reports import seeds

    ticks = DEFAULT_TICKS if args.ticks is None else args.ticks
    overrides = list(args.args)
    reserved = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in
                ("seed", "run.ticks", "hydra.run.dir", "run.chart", "hooks")]
    if reserved:
        print(f"qtg: {reserved[0]}: set by --seeds/--ticks/--out; allowed: other config overrides",
              file=sys.stderr)
        return EXIT_INPUT
    try:
        load_config([*overrides, "seed=0", f"run.ticks={ticks}", "run.chart=false", "hooks=[]"])
    except ConfigError as e:
        print(f"qtg: {e}", file=sys.stderr)
        return EXIT_INPUT
    out = Path(args.out) if args.out else Path("outputs/validate_seeds") / time.strftime("%Y-%m-%d_%H-%M-%S")
    jobs = min(args.seeds, args.jobs or os.cpu_count() or 1)
    run_dirs = [out / f"seed_{k}" for k in range(args.seeds)]

    def run_seed(k: int) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "qtg.run", f"seed={k}", f"run.ticks={ticks}", f"hydra.run.dir={run_dirs[k]}",
               "run.chart=false", "hooks=[]", *overrides]
        return subprocess.run(cmd, check=False, capture_output=True, text=True)

    # Each seed is its own process; up to ``jobs`` at once. The results are read in seed
    # order whatever order the runs finish in, so the output does not depend on --jobs.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = [pool.submit(run_seed, k) for k in range(args.seeds)]
        with tqdm(total=args.seeds, unit="seed", desc="seeds", dynamic_ncols=True) as bar:
            for _ in as_completed(runs):
                bar.update(1)
    verdicts, all_prices, series = [], [], []
    for k, (run, run_dir) in enumerate(zip(runs, run_dirs)):
        done = run.result()
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            print(f"qtg: seed {k}: {lines[-1]}", file=sys.stderr)
            return done.returncode
        prices = analysis.load_prices(run_dir)
        all_prices.append(prices)
        for s, v in seeds.series_verdicts(prices).items():
            verdicts.append(v)
            series.append({"seed": k, "symbol": s, "verdicts": v})
    rows = seeds.pass_rates(verdicts)
    result = analysis._clean({
        "seeds": args.seeds, "ticks": ticks, "overrides": overrides, "out": str(out),
        "series": len(verdicts), "scales": list(analysis.SCALES), "facts": rows, "per_series": series,
    })
    json_path, png_path = out / "stylized_facts_seeds.json", out / "stylized_facts_seeds.png"
    write_text(json_path, json.dumps(result, indent=2) + "\n")
    seeds.plot_seeds(seeds.curves(all_prices), png_path,
                     f"{args.seeds} seeds x {len(verdicts) // args.seeds} symbols, {ticks:,} ticks each")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{out}: {args.seeds} seeds, {ticks:,} ticks each, {len(verdicts)} seed x symbol series; "
          "pass rate = passed / (passed + failed), n/a series left out")
    print(seeds.format_rates_table(rows))
    print(f"wrote {json_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
