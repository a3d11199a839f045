"""``python -m qtg.report RUN_DIR [--out DIR] [--run ID]``: draw a stored run's charts from its
database alone."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m qtg.report RUN_DIR [--out DIR] [--run ID]``: draw a stored run's charts
    from its database alone (qtg.reports.storage) and print the files written. A missing
    or unreadable database: one line on stderr, exit code 2."""
    import argparse
    import sys

    from qtg.hooks.storage import StorageError
    from qtg.reports.storage import draw_report

    ap = argparse.ArgumentParser(prog="python -m qtg.report",
                                 description="Draw a stored run's charts from its database (qtg.sqlite).")
    ap.add_argument("run_dir", help="run directory (or the database file itself)")
    ap.add_argument("--out", default=None, help="folder for the PNGs (default: the run directory)")
    ap.add_argument("--run", type=int, default=None, help="run id in the database (default: the newest)")
    args = ap.parse_args(argv)
    try:
        paths = draw_report(args.run_dir, args.out, args.run)
    except StorageError as e:
        print(f"qtg: report error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
