"""The exceptions geotasks raises.

Every exception derives from :class:`GeotasksError`, so an application can catch them all at
once. Driver errors (psycopg2, fiona, GDAL) are wrapped at the boundary where they happen, with
the original chained as ``__cause__``.
"""

from __future__ import annotations

from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import MiddlewareError
from dramatiq.results import ResultFailure


class GeotasksError(Exception):
    """Base class for every error geotasks raises."""


class ConfigurationError(GeotasksError):
    """Raised when a ``GEOTASKS_*`` setting is missing or malformed."""


class DataDirUnusable(ConfigurationError, MiddlewareError):
    """Raised when a worker boots without its data directory (``GEOTASKS_DATA_DIR``).

    It is also Dramatiq's ``MiddlewareError``, the one kind of exception that stops a boot
    (Dramatiq logs any other and boots anyway).
    """


class InputError(GeotasksError, ValueError):
    """Raised when a job's input is bad: a permanent failure that is never retried."""


class TransientError(GeotasksError):
    """Raised when an operation failed for a reason that may pass (a server went away): retried."""


class DatabaseError(GeotasksError):
    """Raised when Postgres rejects an operation (a bug, or a schema that is not initialised)."""


class DatabaseMisconfigured(ConfigurationError, DatabaseError):
    """Raised when Postgres refuses a setting (authentication, a database or role that does not
    exist, a missing schema): permanent, never retried."""


class DatabaseUnavailable(TransientError, DatabaseError):
    """Raised when Postgres cannot be reached after the pool's bounded retries."""


class BrokerUnavailable(DatabaseUnavailable, ConnectionClosed):
    """Raised when the Postgres broker cannot reach its database.

    It is also Dramatiq's ``ConnectionClosed``, so a worker retries an ack and restarts a
    consumer as it does when Redis or RabbitMQ goes away.
    """

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message


class MessageEncodingError(GeotasksError, ValueError):
    """Raised when the Postgres broker is handed a message whose encoding is not UTF-8 text."""


class EmbeddedPostgresError(GeotasksError):
    """Raised when the embedded PostgreSQL cannot be started or is refused (unsafe data dir)."""


class ActorNotRegistered(InputError):
    """Raised when :func:`geotasks.submit` is given an actor name the registry does not know."""


class JobNotFound(GeotasksError, LookupError):
    """Raised when a job id was never seen (its status is UNKNOWN)."""


class JobTimeout(GeotasksError, TimeoutError):
    """Raised when waiting for a job to finish takes longer than the timeout."""


class JobNotFinished(GeotasksError):
    """Raised when a job's result is asked for before the job has finished."""


class JobSkipped(GeotasksError):
    """Raised when a job's result is asked for but the job finished without running.

    Attributes:
      status: ``SKIPPED`` or ``CANCELLED``.
    """

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class ResultExpired(GeotasksError):
    """Raised when a job's result was deleted because its time to live passed."""


class ResultNotStored(GeotasksError):
    """Raised when a job succeeded but its actor does not store results."""


class ResultNotStorable(GeotasksError):
    """The error of a job whose actor returned what cannot be stored (a value JSON cannot hold):
    the job fails with it, once."""


class ResultTooLarge(GeotasksError):
    """Raised when ``job.result`` would parse more than ``GEOTASKS_RESULT_PARSE_MAX_BYTES``."""


class ResultIsAFile(GeotasksError):
    """Raised when ``job.result`` is asked to parse a file (FlatGeobuf, GeoPackage, zip)."""


class JobFailed(GeotasksError, ResultFailure):
    """Raised when getting the result of a job whose actor raised an exception.

    It is also a :class:`dramatiq.results.ResultFailure`, so code written against Dramatiq's
    ``message.get_result()`` keeps working.

    Attributes:
      job_id: The message id.
      type_name: The name of the exception's class, such as ``InputError``.
      error_message: ``str()`` of the exception.
      traceback: The formatted traceback from the worker, or ``""`` when none was recorded.
    """

    def __init__(self, job_id: str, type_name: str, error_message: str, traceback: str) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            f"job {job_id} failed: {type_name}: {error_message}", type_name, error_message
        )
        self.job_id = job_id
        self.type_name = type_name
        self.error_message = error_message
        self.traceback = traceback


class RateLimitError(GeotasksError, MiddlewareError):
    """Base class for rate-limit errors.

    A :class:`~dramatiq.middleware.MiddlewareError`, because Dramatiq lets only those stop a
    message or a declaration from a middleware hook: anything else is logged and ignored.
    """


class InvalidRateLimit(RateLimitError, InputError):
    """Raised when a ``rate_limit``, ``rate_limit_burst`` or ``concurrency_limit`` is malformed."""


class RateLimiterUnavailable(RateLimitError, TransientError):
    """Raised when the rate-limiter backend cannot be reached: the message waits, never runs."""
