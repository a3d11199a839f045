"""Textual panels of the terminal view: each draws rows from :mod:`.render` through the
line API and repaints only the rows that changed."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from qtg.hooks.tui.render import (
    MUTED,
    Row,
    Table,
    book_rows,
    chart_rows,
    news_rows,
    row_text,
)


class RowsView(ScrollView):
    """A panel drawn from rows of styled runs through Textual's line API. A redraw
    repaints only the rows that changed, which keeps a 10 fps screen cheap. With
    ``SCROLLS`` the rows may outgrow the panel and scroll (mouse wheel)."""

    DEFAULT_CSS = """
    RowsView { overflow: hidden hidden; }
    """
    SCROLLS = False
    can_focus = False  # the keys belong to the app; the mouse wheel still scrolls

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: list[Row] = []
        self._styles: dict[str | None, Style] = {}

    def build(self, width: int, height: int) -> list[Row]:
        """The rows for a content area of ``width`` x ``height`` cells."""
        return []

    def redraw(self) -> None:
        """Rebuild the rows and repaint those that changed."""
        width, height = self.size
        if width <= 0 or height <= 0:
            return
        new = self.build(width, height)
        if not self.SCROLLS:
            new = new[:height]
        old, self.rows = self.rows, new
        if self.SCROLLS:
            virtual = Size(max((len(row_text(r)) for r in new), default=0), len(new))
            if virtual != self.virtual_size:
                self.virtual_size = virtual
                self.refresh()
                return
        changed = [y for y in range(max(len(old), len(new)))
                   if y >= len(old) or y >= len(new) or old[y] != new[y]]
        if len(changed) >= height:
            self.refresh()
        else:
            for y in changed:
                self.refresh_line(y)

    def on_resize(self) -> None:
        self.rows = []
        self.redraw()
        self.refresh()

    def _style(self, spec: str | None) -> Style:
        style = self._styles.get(spec)
        if style is None:
            base = self.rich_style
            style = self._styles[spec] = base if spec is None else base + Style.parse(spec)
        return style

    def render_line(self, y: int) -> Strip:
        sx, sy = self.scroll_offset
        width = self.size.width
        if y + sy >= len(self.rows):
            return Strip.blank(width, self._style(None))
        strip = Strip([Segment(text, self._style(spec)) for text, spec in self.rows[y + sy]])
        return strip.crop(sx, sx + width) if sx else strip


class TableView(RowsView):
    """A :class:`Table` fitted to the panel; scrolls when it still outgrows it."""

    DEFAULT_CSS = """
    TableView {
        overflow: hidden auto;
        scrollbar-size: 1 1;
        scrollbar-background: $background;
        scrollbar-color: $panel;
    }
    """
    SCROLLS = True
    table: "Table | None" = None

    def build(self, width: int, height: int) -> list[Row]:
        if self.table is None:
            return []
        scrollbar = len(self.table.cells) + 1 > height  # it takes a column
        return self.table.rows(width - scrollbar)


class StatusBar(RowsView):
    """One line: tick / total with a progress bar, ticks per second, speed limit, state."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    """
    row: Row = ()
    optional: tuple[int, ...] = ()  # runs of ``row`` left out, in this order, when too wide

    def build(self, width: int, height: int) -> list[Row]:
        row, drop = list(self.row), list(self.optional)
        while drop and len(row_text(tuple(r for r in row if r is not None))) > width:
            row[drop.pop(0)] = None
        return [tuple(r for r in row if r is not None)]


class PriceChart(RowsView):
    """Last price and fair value of the selected symbol (braille line chart)."""

    data: tuple | None = None  # (ticks, price, fair, decimals)

    def build(self, width: int, height: int) -> list[Row]:
        if self.data is None:
            return [(("waiting for the first tick…", MUTED),)]
        return chart_rows(width, height, *self.data)


class BookView(RowsView):
    """Order book depth of the selected symbol."""

    data: tuple | None = None  # (depth, symbol, decimals)

    def build(self, width: int, height: int) -> list[Row]:
        if self.data is None:
            return [(("no book yet", MUTED),)]
        depth, s, decimals = self.data
        return book_rows(depth, s, width, height, decimals)


class NewsView(RowsView):
    """The news feed, newest first."""

    events: tuple = ()

    def build(self, width: int, height: int) -> list[Row]:
        return news_rows(self.events, width, height)
