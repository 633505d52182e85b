"""The Postgres broker on a database where `geotasks db init` never ran."""

from __future__ import annotations

import dramatiq
import pytest

from geotasks.errors import DatabaseError
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.pool import Database


def test_a_database_without_the_schema_gives_a_clear_error(empty_database_url: str) -> None:
    # Given a broker on a database where `geotasks db init` never ran
    database = Database(empty_database_url, max_connections=1)
    broker = PostgresBroker(database=database)
    noop = dramatiq.actor(lambda: None, broker=broker, actor_name="noop")
    try:
        # When a message is sent, Then the error says what to do
        with pytest.raises(DatabaseError, match="geotasks db init"):
            noop.send()
    finally:
        database.close()
