"""What a command's console shows: the logging pieces ``conf/hydra/job_logging/yolotl.yaml`` names.

yolotl's own INFO lines and every warning reach the console; other libraries' INFO chatter goes
to the run's log file only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class ConsoleFilter(logging.Filter):
    """What a command's console shows: yolotl's own INFO lines and every warning or error.

    Other libraries' INFO chatter (Lightning's accelerator lines, checkpoint restores) goes to the
    run's log file only; ``conf/hydra/job_logging/yolotl.yaml`` puts this filter on the console
    handler alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == "yolotl" or record.name.startswith("yolotl.")


class DropLightningTips(logging.Filter):
    """Lightning's advertising ("💡 Tip: try installing litlogger ...", logged at INFO by its logger
    and checkpoint connectors through ``rank_zero_info``): dropped from console and log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


class ConsoleFormatter(logging.Formatter):
    """Console lines: the bare message at INFO; ``warning: ...`` / ``error: ...`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler writing to whatever ``sys.stdout`` is at the time of each record.

    Lightning's rich progress bar redirects ``sys.stdout`` while it draws, so lines written
    through the redirection appear above the bar instead of through it.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # the stream is always the current sys.stdout
        pass


def console_to_hydra_logging() -> None:
    """Leave the console to the run's logging config: drop the handlers Lightning adds on import.

    ``import lightning`` gives its ``lightning`` logger a stderr handler of its own (``INFO: ...``),
    so each of its messages is printed twice beside Hydra's handlers and skips the console filter;
    ``lightning.pytorch`` and ``lightning.fabric`` do the same (and stop propagating) when they are
    imported before logging is configured. Call it in a command's task, after the library is
    imported: their records then reach the root handlers only (console filtered, log file complete).
    """
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
