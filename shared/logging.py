"""structlog configuration: one format for every line the process writes.

`json` (what `serve` uses): one JSON object per line. `console` (what `dev` uses unless
`DEALREG_LOG_FORMAT` says otherwise): aligned, coloured when stderr is a terminal, for a
person. The request id, the trace id (`shared.tracing`) and whatever a component binds
are on every line made in their context.

Libraries log through the standard `logging` module (uvicorn, Alembic, aiokafka,
SQLAlchemy; Python warnings are captured into it): one root handler renders their records
with the same processors and renderer, so the output never mixes formats.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from shared.tracing import add_trace_id

LogFormat = Literal["json", "console"]

# Chatty at INFO (a line per consumer-group join, per connection; httpx a line per request
# with its whole URL: query strings, webhook URLs whose path is a secret); warnings stay.
_QUIET = ("aiokafka", "kafka", "asyncio", "httpx", "httpcore")


def _logger_name(_: Any, __: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
    """`get_logger(name)`'s name under the key the standard library's records use."""
    name = event_dict.pop("logger_name", None)
    if name is not None:
        event_dict["logger"] = name
    return event_dict


def _processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _logger_name,
        add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: str) -> structlog.typing.Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    # Plain tracebacks: no local variables (they would print secrets: settings, tokens),
    # and no Rich panels -- syntax-highlighting one took 100+ ms of CPU on the event loop,
    # so under overload every logged error (a pool time-out, a locked SQLite write) stalled
    # every request and the process spiralled into time-outs (half the CPU of a saturated
    # `dealreg dev` in a py-spy profile went to highlighting tracebacks).
    return structlog.dev.ConsoleRenderer(
        colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)


def _drop_color_message(_: Any, __: str, event_dict: MutableMapping[str, Any]
                        ) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's duplicate of the message
    return event_dict


def _one_line(_: Any, __: str, event_dict: MutableMapping[str, Any]
              ) -> MutableMapping[str, Any]:
    """Console format: a message cannot start a line of its own (a request path with `%0A`
    in a library's message would forge a log line), so its line breaks are shown escaped.
    Other values are printed with repr() already, and JSON escapes everything."""
    event = event_dict.get("event")
    if isinstance(event, str) and ("\n" in event or "\r" in event):
        event_dict["event"] = event.replace("\r", "\\r").replace("\n", "\\n")
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer = _renderer(fmt)
    shared = _processors()
    # JSON gets the traceback as a string field; the console renderer prints it itself.
    exc: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info] if fmt == "json" else [_one_line])
    # Records of the standard library's loggers: the same processors, then the renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        # ExtraAdder first: uvicorn passes its ANSI-coloured copy as an `extra`.
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *exc, renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    # uvicorn and Alembic configure their own handlers in some modes: send them to ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic",
                 "sqlalchemy", "py.warnings"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            *exc,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(logger_name=name)
    return logger
