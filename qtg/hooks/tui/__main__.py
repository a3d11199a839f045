"""``python -m qtg.hooks.tui docs/tui.svg [overrides] --ticks N``: save a screenshot."""

import argparse

from qtg.hooks.tui.screenshot import screenshot

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m qtg.hooks.tui", description="Save an SVG screenshot of the terminal view.")
    parser.add_argument("path", help="the SVG file to write, e.g. docs/tui.svg")
    parser.add_argument("overrides", nargs="*", help="qtg.run config overrides")
    parser.add_argument("--ticks", type=int, default=1500, help="ticks to run before the shot")
    parser.add_argument("--size", default="160x48", help="columns x lines")
    args = parser.parse_args()
    cols, lines = map(int, args.size.split("x"))
    print(screenshot(args.path, args.overrides, args.ticks, (cols, lines)))
