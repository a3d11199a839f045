"""Pure renderers of the terminal view: the price chart (braille), the order book, the news
and the tables, as rows of styled text runs. No Textual here: the rows are plain data that
a test can read (:func:`rows_text`)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from components.money import SCALE
from components.orders import Depth

# Tokyo Night, the app's theme: one palette for every panel.
GREEN, RED, BLUE, YELLOW = "#9ece6a", "#f7768e", "#7aa2f7", "#e0af68"
CYAN, ORANGE, MUTED, FG = "#7dcfff", "#ff9e64", "#565f89", "#a9b1d6"


def compact(x: float, signed: bool = False) -> str:
    """A currency amount in at most ~7 characters: 1,234.56 / 12.3k / 4.56M / 1.23B."""
    sign = "+" if signed and x > 0 else ""
    a = abs(x)
    for limit, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= limit:
            return f"{sign}{x / unit:.2f}{suffix}"
    return f"{sign}{x:,.2f}"


_BRAILLE = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], np.int64)


def _column_spans(y: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Low and high value drawn in each of ``cols`` dot columns for the series ``y`` (no
    NaN): the close of the points that fall in the column (resampled when there are
    fewer points than columns), joined to the previous column's so the line is unbroken."""
    n = len(y)
    if n >= cols:
        ends = (np.arange(1, cols + 1) * n) // cols - 1  # last point of each column
        close = y[ends]
    else:
        close = np.interp(np.arange(cols), np.linspace(0, cols - 1, n), y)
    lo, hi = close.copy(), close.copy()
    lo[1:] = np.minimum(close[1:], close[:-1])
    hi[1:] = np.maximum(close[1:], close[:-1])
    return lo, hi


def _braille(lo: np.ndarray, hi: np.ndarray, ymin: float, ymax: float, rows: int) -> np.ndarray:
    """Braille dot bits i64[rows, cols/2] of vertical spans [lo, hi] per dot column."""
    h4 = rows * 4
    scale = (h4 - 1) / (ymax - ymin)
    top = np.clip(np.rint((ymax - hi) * scale), 0, h4 - 1).astype(np.int64)
    bottom = np.clip(np.rint((ymax - lo) * scale), 0, h4 - 1).astype(np.int64)
    r = np.arange(h4)[:, None]
    grid = (r >= top[None, :]) & (r <= bottom[None, :])  # bool[h4, cols]
    g = grid.reshape(rows, 4, -1, 2)
    return (g * _BRAILLE[None, :, None, :]).sum(axis=(1, 3))


def _clean(y: np.ndarray) -> np.ndarray:
    """Currency values with non-positive entries (no price yet) carried forward."""
    y = np.asarray(y, np.float64) / SCALE
    bad = ~(y > 0)
    if bad.all():
        return y[:0]
    if bad.any():
        idx = np.where(bad, 0, np.arange(len(y)))
        np.maximum.accumulate(idx, out=idx)
        y = y[idx]
        y[: np.argmax(~bad)] = y[np.argmax(~bad)]
    return y


Run = tuple[str, "str | None"]
"""A piece of a row: its text and its style (a Rich style string such as ``"bold #9ece6a"``;
None: the panel's own colours)."""
Row = tuple[Run, ...]
"""One line of a panel."""


def row_text(row: Row) -> str:
    """The plain text of a row."""
    return "".join(text for text, _ in row)


def rows_text(rows: Sequence[Row]) -> str:
    """The plain text of a panel's rows, one line each."""
    return "\n".join(row_text(r) for r in rows)


def _runs(text: str, kinds: np.ndarray, styles: Sequence[str | None]) -> list[Run]:
    """``text`` cut where ``kinds`` (one int per character) changes; run i takes
    ``styles[kinds[i]]``."""
    if not len(text):
        return []
    cuts = [0, *(np.flatnonzero(np.diff(kinds)) + 1).tolist(), len(text)]
    return [(text[a:b], styles[kinds[a]]) for a, b in zip(cuts[:-1], cuts[1:])]


def chart_rows(width: int, height: int, ticks: np.ndarray, price: np.ndarray, fair: np.ndarray,
               decimals: int = 2) -> list[Row]:
    """A braille line chart of ``price`` (blue) and ``fair`` (yellow), both [h] units, with
    a price axis on the left and a tick axis below, in ``width`` x ``height`` cells."""
    p, f = _clean(price), _clean(fair)
    if width < 12 or height < 3 or len(p) == 0:
        return [(("waiting for the first tick…", MUTED),)]
    both = np.concatenate([p, f]) if len(f) else p
    ymin, ymax = float(both.min()), float(both.max())
    pad = max((ymax - ymin) * 0.06, 10.0 ** -decimals, ymax * 5e-4)
    ymin, ymax = ymin - pad, ymax + pad
    rows = height - 1
    label_w = max(len(f"{ymax:,.{decimals}f}"), len(f"{ymin:,.{decimals}f}")) + 1
    cols = width - label_w - 1
    if cols < 4:
        return [((f"{p[-1]:,.{decimals}f}", BLUE),)]
    price_bits = _braille(*_column_spans(p, cols * 2), ymin, ymax, rows)
    fair_bits = _braille(*_column_spans(f, cols * 2), ymin, ymax, rows) if len(f) else 0 * price_bits
    kinds = np.where(price_bits > 0, 1, np.where(fair_bits > 0, 2, 0))  # [rows, cols]
    codes = np.where(kinds > 0, 0x2800 + (price_bits | fair_bits), 0x20)
    # A blank looks the same in any colour: give it its left neighbour's (or, leading, the
    # first mark's) so that a row is a few long runs, which Textual draws much faster.
    idx = np.where(kinds > 0, np.arange(cols)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(kinds > 0, axis=1)
    idx = np.where(idx < first[:, None], first[:, None], idx)
    kinds = np.take_along_axis(kinds, idx, axis=1)
    label_every = max(2, rows // 6)
    styles = (None, BLUE, YELLOW)
    out: list[Row] = []
    for r in range(rows):
        if r % label_every == 0 or r == rows - 1:
            y = ymax - (r * 4 + 1.5) / (rows * 4 - 1) * (ymax - ymin)
            axis = (f"{y:>{label_w - 1},.{decimals}f} ┤", MUTED)
        else:
            axis = (" " * label_w + "│", MUTED)
        out.append((axis, *_runs("".join(map(chr, codes[r])), kinds[r], styles)))
    t0, t1 = int(ticks[0]), int(ticks[-1])
    left, right = f"t {t0:,}", f"t {t1:,}"
    mid = f"t {(t0 + t1) // 2:,}" if cols > len(left) + len(right) + 20 else ""
    gap = cols - len(left) - len(right) - len(mid)
    line = left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right if gap > 0 else right.rjust(cols)
    out.append(((" " * label_w + "└" + line[:cols], MUTED),))
    return out


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``fraction`` of ``width`` cells, in eighths."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")


def book_rows(depth: Depth, s: int, width: int, height: int, decimals: int = 2) -> list[Row]:
    """Symbol ``s``'s book: asks (worst at the top) over bids, each level's price, size and
    a size bar; the spread in between. As many levels as fit in ``height`` lines."""
    bp, bq = depth.bid_price[s], depth.bid_qty[s]
    ap, aq = depth.ask_price[s], depth.ask_qty[s]
    levels = max(1, min(len(bp), (height - 2) // 2))
    pw = max(8, len(f"{max(int(ap.max()), int(bp.max())) / SCALE:,.{decimals}f}"))
    qw = 9
    bar_w = max(1, width - pw - qw - 3)
    shown = np.concatenate([aq[:levels], bq[:levels]])
    top = max(int(shown.max()), 1) if len(shown) else 1
    out: list[Row] = [((f"{'price':>{pw}} {'size':>{qw}}  depth", MUTED),)]

    def level(price: int, qty: int, color: str) -> Row:
        if qty <= 0:
            return ((f"{'·':>{pw}}", MUTED),)
        return ((f"{price / SCALE:>{pw},.{decimals}f}", f"bold {color}"), (f" {qty:>{qw},}  ", FG),
                (bar(qty / top, bar_w), color))

    out += [level(int(ap[j]), int(aq[j]), RED) for j in reversed(range(levels))]
    if bp[0] > 0 and ap[0] > 0:
        spread, mid = (ap[0] - bp[0]) / SCALE, (ap[0] + bp[0]) / 2 / SCALE
        bps = 1e4 * spread / mid
        text = f"{'spread':>{pw}} {spread:>{qw}.{decimals}f}"
        for extra in (f"  {bps:.1f} bp · mid {mid:,.{decimals + 1}f}", f"  {bps:.1f} bp", ""):
            if len(text) + len(extra) <= width:
                break
        out.append(((text + extra, CYAN),))
    else:
        text = f"{'spread':>{pw}} {'–':>{qw}}"
        out.append(((text + ("  one-sided book" if len(text) + 16 <= width else ""), ORANGE),))
    out += [level(int(bp[j]), int(bq[j]), GREEN) for j in range(levels)]
    return out


# Sizes: earnings and sector news are fractions (of EPS, of fair value), guidance and rate
# news change a growth estimate or the rate: all shown in percent (points). A rate rise is
# bad news for prices.
_GOOD_IF_NEGATIVE = {"rate"}


def news_rows(events: Sequence[tuple], width: int, height: int) -> list[Row]:
    """News (``event_rows`` rows), newest first: tick, kind, target, size and the change of
    the targets' fair value; the last and then the first column are left out when narrow."""
    if not events:
        return [(("no news yet", MUTED),)]
    fair, tick = width >= 42, width >= 33
    header = (f"{'tick':>6} " if tick else "") + f"{'kind':<9}{'target':<9}{'size':>8}"
    out: list[Row] = [((header + (f" {'fair Δ':>8}" if fair else ""), f"bold {BLUE}"),)]
    for t, kind, target, size, _symbols, before, after in events[: max(height - 1, 0)]:
        good = (size < 0) if kind in _GOOD_IF_NEGATIVE else (size > 0)
        row: list[Run] = [(f"{t:>6,} ", MUTED)] if tick else []
        row += [
            (f"{kind:<9}", ORANGE if kind in ("rate", "guidance") else CYAN),
            (f"{target[:8]:<9}", FG),
            (f"{100 * size:>+7.2f}%", GREEN if good else RED),
        ]
        if fair and before > 0:
            change = 100 * (after / before - 1)
            row.append((f" {change:>+7.2f}%", GREEN if change >= 0 else RED))
        out.append(tuple(row))
    return out


def pnl_table(kinds: Sequence[str], agents: np.ndarray, equity: np.ndarray, equity0: np.ndarray) -> "Table":
    """P&L per strategy kind and in all: agents, equity, P&L (currency) and P&L in percent
    of the opening equity. ``equity`` and ``equity0`` f64[K] units."""
    rows = [(k, int(agents[i]), float(equity[i]), float(equity0[i])) for i, k in enumerate(kinds)]
    rows.append(("all", int(np.sum(agents)), float(np.sum(equity)), float(np.sum(equity0))))
    cells = []
    for kind, n, eq, eq0 in rows:
        gain = (eq - eq0) / SCALE
        pct = 100 * (eq / eq0 - 1) if eq0 > 0 else 0.0
        color = GREEN if gain > 0 else RED if gain < 0 else FG
        cells.append([(kind, f"bold {FG}" if kind == "all" else CYAN), (f"{n:,}", FG),
                      (compact(eq / SCALE), FG), (compact(gain, signed=True), color),
                      (f"{pct:+.2f}%", color)])
    return Table(("strategy", "agents", "equity", "P&L", "P&L %"), tuple(map(tuple, cells)), drop=(1, 2))


def risk_table(kinds: Sequence[str], stats: dict[str, np.ndarray], confidence: float) -> "Table":
    """Risk per strategy kind (``kind_risk``'s host arrays): mean Sharpe and VaR of the
    agents where they are ready ("–" where none is), mean and worst maximum drawdown."""
    cells = []
    for i, kind in enumerate(kinds):
        sharpe, ready, var_ready = stats["sharpe"][i], stats["sharpe_ready"][i] > 0, stats["var_ready"][i] > 0
        cells.append([
            (kind, CYAN),
            (f"{sharpe:+.3f}", GREEN if sharpe > 0 else RED) if ready else ("–", MUTED),
            (f"{100 * stats['drawdown'][i]:.2f}%", YELLOW),
            (f"{100 * stats['drawdown_worst'][i]:.2f}%", ORANGE),
            (f"{100 * stats['var'][i]:.3f}%", RED) if var_ready else ("–", MUTED),
        ])
    return Table(("strategy", "Sharpe", "max DD", "worst", f"VaR {confidence:.0%}"), tuple(map(tuple, cells)),
                 drop=(3, 2))


@dataclasses.dataclass(frozen=True)
class Table:
    """A table: the first column left-aligned, the others right-aligned; one run per cell.
    ``drop`` lists columns in the order they are left out when the panel is too narrow."""

    header: tuple[str, ...]
    cells: tuple[tuple[Run, ...], ...]
    drop: tuple[int, ...] = ()
    gap: int = 2

    def rows(self, width: int | None = None) -> list[Row]:
        """The header and the rows, fitted to ``width`` cells if it is given: columns
        dropped, then the first column cut (to 8 characters at least)."""
        widths = [max([len(h), *(len(row[i][0]) for row in self.cells)]) for i, h in enumerate(self.header)]
        keep = list(range(len(self.header)))
        total = lambda: sum(widths[i] for i in keep) + self.gap * (len(keep) - 1)  # noqa: E731
        for col in self.drop:
            if width is None or total() <= width:
                break
            keep.remove(col)
        if width is not None and total() > width:
            widths[0] = max(8, widths[0] - (total() - width))
        sep = " " * self.gap

        def line(runs: Sequence[Run]) -> Row:
            first, style = runs[0]
            first = first if len(first) <= widths[0] else first[: widths[0] - 1] + "…"
            out = [(first.ljust(widths[0]), style)]
            out += [(sep + runs[i][0].rjust(widths[i]), runs[i][1]) for i in keep[1:]]
            return tuple(out)

        return [line([(h, f"bold {BLUE}") for h in self.header]), *(line(r) for r in self.cells)]
