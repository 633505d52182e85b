"""The exceptions geotasks raises.

Every exception derives from :class:`GeotasksError`, so an application can catch them all at
once. Driver errors (psycopg2, fiona, GDAL) are wrapped at the boundary where they happen, with
the original chained as ``__cause__``.
"""

from __future__ import annotations

from dramatiq.errors import ConnectionClosed


class GeotasksError(Exception):
    """Base class for every error geotasks raises."""


class ConfigurationError(GeotasksError):
    """Raised when a ``GEOTASKS_*`` setting is missing or malformed."""


class InputError(GeotasksError, ValueError):
    """Raised when a job's input is bad: a permanent failure that is never retried."""


class TransientError(GeotasksError):
    """Raised when an operation failed for a reason that may pass (a server went away): retried."""


class DatabaseError(GeotasksError):
    """Raised when Postgres rejects an operation (a bug, or a schema that is not initialised)."""


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
