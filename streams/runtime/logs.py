"""Structured JSON logs on stderr, one object per line, for every worker and command."""
from __future__ import annotations

import logging
import os
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        extra = getattr(record, "fields", None)
        if extra:
            doc.update(extra)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup_json_logging(level: str | None = None) -> None:
    """Structured JSON logs on stderr (one object per line). Level from GATEWATCH_LOG_LEVEL."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = JsonFormatter()
    fmt.converter = time.gmtime
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("GATEWATCH_LOG_LEVEL", "INFO")).upper())
    logging.getLogger("gatewatch.rdkafka").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, msg, extra={"fields": fields})
