"""The actor catalogue in Postgres: workers publish, clients without the code read it."""

from __future__ import annotations

import pytest

from geotasks.catalogue import builtin_actors, find_actor, forget_cache, list_actors
from geotasks.errors import ActorNotRegistered
from geotasks.postgres.catalogue import list_published, publish_actors
from geotasks.postgres.pool import Database
from geotasks.registry import DECLARED, ActorSpec, Parameter

GET_SHPS = ActorSpec(
    "get_shps",
    "default",
    (Parameter("name", schema={"type": "string"}),),
    description="Polygons of a dataset.",
    result_media_type="application/geo+json",
)


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    forget_cache()


def test_publishing_the_same_spec_again_changes_nothing_and_a_new_one_replaces_it(
    database: Database,
) -> None:
    assert publish_actors(database, [GET_SHPS], "host-a pid 1") == ["get_shps"]
    # Every worker process publishes at start: the same spec is left as it is
    assert publish_actors(database, [GET_SHPS], "host-b pid 2") == []
    (entry,) = list_published(database)
    assert (entry.spec, entry.published_by) == (GET_SHPS, "host-a pid 1")

    # A rolling upgrade: the worker that starts last with another signature wins
    upgraded = ActorSpec("get_shps", "default", (*GET_SHPS.parameters, Parameter("limit", 10)))
    assert publish_actors(database, [upgraded], "host-c pid 3") == ["get_shps"]
    (entry,) = list_published(database)
    assert (entry.spec, entry.published_by) == (upgraded, "host-c pid 3")


def test_a_client_finds_an_actor_published_after_it_last_read_the_catalogue(
    database: Database,
) -> None:
    # Given a client that read the catalogue before any worker published get_shps
    with pytest.raises(ActorNotRegistered, match="did you mean shapefile_to_geojson"):
        find_actor("shapefile_to_geojsn", database=database)
    assert "get_shps" not in {spec.name for spec in list_actors(database=database)}

    # When a worker publishes it, Then the client finds it at once (its cache is read again)
    publish_actors(database, [GET_SHPS], "host-a pid 1")
    assert find_actor("get_shps", database=database) == GET_SHPS
    names = [spec.name for spec in list_actors(database=database)]
    assert names[: len(builtin_actors())] == list(builtin_actors())
    assert "get_shps" in names


def test_a_published_builtin_actor_overrides_the_shipped_snapshot(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (In a process that imported geotasks.actors, its own declaration is the last word.)
    monkeypatch.delitem(DECLARED, "measure_features", raising=False)
    shipped = builtin_actors()["measure_features"]
    newer = ActorSpec(shipped.name, shipped.queue_name, shipped.parameters[:1], "newer release")
    publish_actors(database, [newer], "host-a pid 1")
    assert find_actor("measure_features", database=database).description == "newer release"
