"""The built-in actors' specs and submit(): bad calls refused client-side, before sending."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker

from geotasks.actors import GEO_QUEUE
from geotasks.broker import build_broker
from geotasks.catalogue import builtin_actors
from geotasks.errors import ActorNotRegistered, InputError
from geotasks.jobs import submit_with_options
from geotasks.registry import ActorSpec, Parameter, Registry
from geotasks.settings import Settings

REGISTRY = builtin_actors()

GEO_ACTORS = {
    "shapefile_to_geojson",
    "buffer_features",
    "simplify_features",
    "dissolve_features",
    "clip_features",
    "measure_features",
}


def test_the_geo_actors_are_registered_on_the_geo_queue_and_store_results() -> None:
    assert set(REGISTRY) >= GEO_ACTORS
    for name in GEO_ACTORS:
        spec = REGISTRY[name]
        assert spec.queue_name == GEO_QUEUE
        assert spec.result_media_type == "application/geo+json"
        assert spec.parameters[0].name == "name"
        assert spec.parameters[0].required


def test_actor_parameters_follow_the_public_signatures() -> None:
    # Given the signatures of issue 4, then the registry binds calls the same way
    assert REGISTRY["buffer_features"].bind(("parcels", 50), {}) == {
        "name": "parcels",
        "distance_m": 50,
    }
    assert REGISTRY["simplify_features"].bind(("parcels",), {"tolerance_m": 2}) == {
        "name": "parcels",
        "tolerance_m": 2,
    }
    # Reading options are keyword-only, as in shapefile_to_geojson(name, *, layer=None, …)
    precision = REGISTRY["shapefile_to_geojson"].signature.parameters["precision"]
    assert (precision.kind, precision.default) == (precision.KEYWORD_ONLY, 7)
    assert str(REGISTRY["buffer_features"].signature).startswith("(name, distance_m, *, layer=")


def test_an_unknown_actor_is_refused_with_the_closest_names() -> None:
    broker = StubBroker()
    with pytest.raises(ActorNotRegistered, match="did you mean buffer_features"):
        submit_with_options("bufer_features", args=("parcels", 5), broker=broker)
    assert broker.queues == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "complaint"),
    [
        (
            ("parcels",),
            {"distance": 5},
            r"unknown argument 'distance' \(did you mean distance_m\?\)",
        ),
        (("parcels",), {}, "missing a required argument: 'distance_m'"),
        (("parcels", 5, "layer0"), {}, "too many positional arguments"),
        (("parcels", 5), {"name": "other"}, "multiple values for argument 'name'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    args: tuple[object, ...], kwargs: dict[str, object], complaint: str
) -> None:
    broker = StubBroker()
    with pytest.raises(InputError, match=complaint) as excinfo:
        submit_with_options("buffer_features", args=args, kwargs=kwargs, broker=broker)
    assert "buffer_features(name, distance_m" in str(excinfo.value)
    assert broker.queues == {}


def test_arguments_must_be_json() -> None:
    broker = StubBroker()
    with pytest.raises(InputError, match="object has no JSON form"):
        submit_with_options("buffer_features", args=("parcels", object()), broker=broker)
    assert broker.queues == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "complaint"),
    [
        ((42, 5), {}, r"argument 'name': 42 is not of type 'string'"),
        (("parcels", "far"), {}, r"argument 'distance_m': 'far' is not of type 'number'"),
        (("parcels", 5), {"precision": 99}, r"argument 'precision': 99 is greater than"),
        (("parcels", 5), {"bbox": [1, 2]}, r"argument 'bbox': \[1, 2\] is too short"),
        (
            ("../etc/passwd", 5),
            {},
            r"argument 'name': '../etc/passwd' is not a dataset name in GEOTASKS_DATA_DIR",
        ),
    ],
)
def test_argument_types_are_checked_before_anything_is_sent(
    args: tuple[object, ...], kwargs: dict[str, object], complaint: str
) -> None:
    # Given the catalogue's JSON Schemas only (no actor code is imported by a client)
    broker = StubBroker()
    with pytest.raises(InputError, match=complaint):
        submit_with_options("buffer_features", args=args, kwargs=kwargs, broker=broker)
    assert broker.queues == {}


def test_unknown_message_options_are_refused() -> None:
    with pytest.raises(InputError, match="unknown message option"):
        submit_with_options("buffer_features", args=("parcels", 5), broker=StubBroker(), ttl=5)


def test_a_valid_call_is_sent_by_name_on_the_actor_queue() -> None:
    # Given a broker on which no geo actor is declared (the client never imports them)
    broker = StubBroker()

    # When a job is submitted by name
    job = submit_with_options(
        "buffer_features", args=("parcels",), kwargs={"distance_m": 50}, broker=broker
    )

    # Then one message with those arguments waits on the geo queue, and the job has its id
    assert broker.queues[GEO_QUEUE].qsize() == 1
    message = broker.queues[GEO_QUEUE].get()
    assert b'"actor_name":"buffer_features"' in message
    assert b'"kwargs":{"distance_m":50}' in message
    assert job.id.encode() in message


def test_registering_a_different_actor_under_a_taken_name_is_refused() -> None:
    registry = Registry([ActorSpec("echo", "default", (Parameter("value"),))])
    registry.register(ActorSpec("echo", "default", (Parameter("value"),)))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ActorSpec("echo", "other", ()))
    assert len(registry) == 1


def test_an_output_format_no_writer_knows_is_refused_before_sending() -> None:
    # Given geotasks' broker (its Results middleware declares output_format); nothing is sent,
    # so no server is needed
    broker = build_broker(Settings(database_url="postgresql://app@db.example/geotasks"))
    with pytest.raises(InputError, match="output_format must be one of"):
        submit_with_options(
            "buffer_features", args=("parcels", 5), broker=broker, output_format="image/png"
        )
