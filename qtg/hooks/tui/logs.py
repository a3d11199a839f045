"""Console log lines would garble the terminal view: hold them while the screen is up."""

from __future__ import annotations

import logging

from textual.app import App

log = logging.getLogger("qtg")


class HeldLogs(logging.Handler):
    """While the screen is up, console log records would garble it: hold them, and replay
    them to the console handlers afterwards. Warnings, and qtg's own news (e.g. "snapshot
    written"), also pop up as notifications."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self.removed: list[tuple[logging.Logger, logging.Handler]] = []
        self.app: App | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        ours = record.name == log.name or record.name.startswith(log.name + ".")
        if self.app is not None and (record.levelno >= logging.WARNING or ours):
            self.app.notify(record.getMessage(), markup=False,
                            severity="warning" if record.levelno >= logging.WARNING else "information")

    def __enter__(self) -> "HeldLogs":
        for logger in (logging.getLogger(), log):
            for h in list(logger.handlers):
                if type(h) is logging.StreamHandler:  # console only; files keep logging
                    logger.removeHandler(h)
                    self.removed.append((logger, h))
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)
        for logger, h in self.removed:
            logger.addHandler(h)
        console = [h for _, h in self.removed] or [logging.lastResort]
        for record in self.records:
            for h in console:
                if h is not None and record.levelno >= h.level:
                    h.handle(record)
