"""``Results``: Dramatiq's results middleware, minus storing ``None`` for skipped messages, and
never losing a result to a database that is away.

Dramatiq stores ``None`` as the result of a message that a middleware skipped. For geotasks a
skip is not an outcome: a throttled message is re-enqueued and will produce the real result
later, and a cancelled one has none. So nothing is stored for a skip; failures are stored (by
:class:`~geotasks.postgres.results.PostgresBackend`) with their type, message and traceback.

Dramatiq logs and swallows what an ``after_process_message`` hook raises, then acks the
message: a result that could not be stored because Postgres was away for longer than the pool's
retries would be lost, its job reading SUCCESS without a result (or STARTED for ever). Such a
transient failure is handed to Dramatiq's ``Retries`` instead, as if the actor had raised it:
the message runs again later (or, past its retries, fails with that error). A result that
cannot be stored at all (a value JSON cannot hold) fails the message at once with
:class:`~geotasks.errors.ResultNotStorable`, where Dramatiq would have recorded a success
without a result.

A GeoJSON result is written in another format first when the message (or its actor) has the
option ``output_format`` (a media type: ``application/flatgeobuf``,
``application/geopackage+sqlite3``, ``application/zip`` for a zipped shapefile; see
:mod:`geotasks.geo.output_formats`): the geo actors' results and the user's actors' alike. A
result that cannot be written so (a shapefile of mixed geometry types) fails the job as bad
input.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import dramatiq.results
import dramatiq.worker
from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Retries, ShutdownNotifications, TimeLimit
from dramatiq.results import ResultBackend

from ..errors import InputError, ResultNotStorable, TransientError
from ..geo.output_formats import OUTPUT_FORMAT_OPTION, output_format
from ..geo.result import GeoJSONResult
from ..postgres.results import PostgresBackend
from ..settings import get_settings
from .job_status import JobStatus

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=128)
def _has_results_middleware(broker: Broker) -> bool:
    """Dramatiq's ``has_results_middleware`` (cached per broker too), which also recognises a
    subclass of ``Results``.

    Dramatiq's worker looks for its Results middleware with ``type(m) is Results`` after every
    job that returned a value, so with a subclass installed it would log a warning, wrongly,
    that the value was discarded, for every job (a filter dropping it still paid for the record).
    """
    return any(isinstance(m, dramatiq.results.Results) for m in broker.middleware)


class Results(dramatiq.results.Results):
    """Middleware that stores actor results, but never ``None`` for a skipped message.

    Parameters:
      backend: The result backend, normally a
        :class:`~geotasks.postgres.results.PostgresBackend`.
      store_results: Whether actors store results unless they say otherwise.
      result_ttl: How long results are kept unless the message or actor says otherwise, in
        milliseconds.
      job_status: The ``JobStatus`` middleware of the same broker, told when a result was not
        stored (so it records no SUCCESS); when its store is on the backend's database, the
        result of a job is stored with the job's SUCCESS, in one transaction.
    """

    def __init__(
        self,
        *,
        backend: ResultBackend,
        store_results: bool = False,
        result_ttl: int | None = None,
        job_status: JobStatus | None = None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            backend=backend, store_results=store_results, result_ttl=result_ttl
        )
        self.job_status = job_status
        # Saves the hot path a commit; measured in docs/performance.md.
        self._success_backend = (
            backend
            if isinstance(backend, PostgresBackend)
            and job_status is not None
            and job_status.store.database.url == backend.database.url
            else None
        )
        dramatiq.worker.has_results_middleware = _has_results_middleware

    @property
    def actor_options(self) -> set[str]:
        """Dramatiq's (``store_results``, ``result_ttl``) and ``output_format``."""
        return {*super().actor_options, OUTPUT_FORMAT_OPTION}

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the result (in the ``output_format`` asked for); when the store is away, have
        the message run again, and when the result cannot be stored at all, fail the message
        with the reason."""
        _stop_interruptions(broker, message)
        store_results, result_ttl = self._lookup_options(broker, message)  # type: ignore[no-untyped-call]
        if store_results and exception is None and isinstance(result, GeoJSONResult):
            try:
                result = _in_output_format(broker, message, result)
            except InputError as error:
                logger.error("Message %s failed: %s", message.message_id, error)
                self._withhold_success(message)
                message.stuff_exception(error)
                message.fail()
                return
        try:
            self._store(broker, message, store_results, result_ttl, result, exception)
        except TransientError as error:
            retries = next((m for m in broker.middleware if isinstance(m, Retries)), None)
            logger.warning(
                "Could not store the result of message %s (%s): %s; %s",
                message.message_id,
                message.actor_name,
                error,
                "it runs again" if retries else "it is lost (no Retries middleware)",
            )
            if retries is None:
                return
            self._withhold_success(message)
            message.stuff_exception(error)
            retries.after_process_message(broker, message, exception=error)  # type: ignore[no-untyped-call]
        except Exception as error:
            # Anything else (a value the encoder cannot hold): the job fails, once, saying why,
            # instead of reading SUCCESS with no result.
            failure = ResultNotStorable(
                f"the result of {message.actor_name} could not be stored: {error}"
            )
            failure.__cause__ = error
            logger.error("Message %s failed: %s", message.message_id, failure)
            self._withhold_success(message)
            message.stuff_exception(failure)
            message.fail()

    def _store(
        self,
        broker: Broker,
        message: MessageProxy,
        store_results: bool,
        result_ttl: int,
        result: Any,
        exception: BaseException | None,
    ) -> None:
        """Store the result as Dramatiq does or, for the job this thread ran, together with
        its SUCCESS (:meth:`~geotasks.postgres.results.PostgresBackend.store_success`)."""
        backend, job_status = self._success_backend, self.job_status
        if backend is not None and job_status is not None and store_results and exception is None:
            job = job_status.running(message)
            if job is not None:
                backend.store_success(message, result, result_ttl, job=job)
                job_status.success_stored(message)
                return
        super().after_process_message(  # type: ignore[no-untyped-call]
            broker, message, result=result, exception=exception
        )

    def _withhold_success(self, message: MessageProxy) -> None:
        """Tell ``JobStatus`` that this delivery's result was not stored: no SUCCESS to record."""
        if self.job_status is not None:
            self.job_status.withhold_success(message)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        """Store nothing: a skipped message has no result (a failed one is stored on nack)."""


def _in_output_format(broker: Broker, message: MessageProxy, result: GeoJSONResult) -> Any:
    """The result in the message's (or its actor's) ``output_format``; GeoJSON by default."""
    try:
        actor_options = broker.get_actor(message.actor_name).options
    except ActorNotFound:
        actor_options = {}
    wanted = message.options.get(OUTPUT_FORMAT_OPTION, actor_options.get(OUTPUT_FORMAT_OPTION))
    if wanted is None:
        return result
    fmt = output_format(wanted)
    if fmt.driver is None:
        return result
    # Loaded only here: the GDAL writer is not needed by a process that stores no such result.
    from ..geo.writing import convert_result

    with result:
        return convert_result(result, fmt, name=message.actor_name, tmp_dir=get_settings().tmp_dir)


def _stop_interruptions(broker: Broker, message: MessageProxy) -> None:
    """Disarm, for this thread, what raises exceptions into it: the actor is done.

    Dramatiq's time limit and shutdown notifications raise an exception into a worker thread
    wherever it is, and are disarmed by their own ``after_process_message``, which runs after
    this middleware's (after hooks run in reverse order). Storing the result must not be cut in
    two: a result half stored is retried, and a thread interrupted while it carries the results
    of other threads (group commit) makes them write again. Both hooks only forget the thread;
    running them twice is harmless.
    """
    for middleware in broker.middleware:
        if isinstance(middleware, TimeLimit | ShutdownNotifications):
            middleware.after_process_message(broker, message)  # type: ignore[no-untyped-call]
