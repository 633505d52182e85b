"""``Results``: Dramatiq's results middleware, minus storing ``None`` for skipped messages.

Dramatiq stores ``None`` as the result of a message that a middleware skipped. For geotasks a
skip is not an outcome: a throttled message is re-enqueued and will produce the real result
later, and a cancelled one has none. So nothing is stored for a skip; failures are stored (by
:class:`~geotasks.postgres.results.PostgresBackend`) with their type, message and traceback.
"""

from __future__ import annotations

import logging

import dramatiq.results
from dramatiq.broker import Broker, MessageProxy
from dramatiq.results import ResultBackend

#: Logger of Dramatiq's worker threads.
_WORKER_LOGGER = "dramatiq.worker.WorkerThread"


class _DiscardedResultWarningFilter(logging.Filter):
    """Drops the worker's "you haven't added the Results middleware" warning.

    Dramatiq's worker looks for its Results middleware with ``type(m) is Results``, so with a
    subclass installed it warns, wrongly, that every returned value is discarded.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "haven't added the Results middleware" not in str(record.msg)


_filter = _DiscardedResultWarningFilter()


class Results(dramatiq.results.Results):
    """Middleware that stores actor results, but never ``None`` for a skipped message.

    Parameters:
      backend: The result backend, normally a
        :class:`~geotasks.postgres.results.PostgresBackend`.
      store_results: Whether actors store results unless they say otherwise.
      result_ttl: How long results are kept unless the message or actor says otherwise, in
        milliseconds.
    """

    def __init__(
        self, *, backend: ResultBackend, store_results: bool = False, result_ttl: int | None = None
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            backend=backend, store_results=store_results, result_ttl=result_ttl
        )
        logger = logging.getLogger(_WORKER_LOGGER)
        if _filter not in logger.filters:
            logger.addFilter(_filter)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        """Store nothing: a skipped message has no result (a failed one is stored on nack)."""
