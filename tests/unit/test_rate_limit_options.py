"""The rate-limit notation and options: parsed strictly, refused clearly, only ever lowered."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from geotasks.errors import InputError, InvalidRateLimit
from geotasks.middleware.rate_limit import Limits, RateLimit, lower_limits, parse_limits
from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend
from geotasks.rate_limits import Rate, slots_kept, spacing_ms


@pytest.mark.parametrize(
    ("text", "limit", "period_ms"),
    [
        ("4/m", 4, 60_000),
        ("10/s", 10, 1_000),
        (" 100 / h ", 100, 3_600_000),
        ("1/d", 1, 86_400_000),
    ],
)
def test_rates_parse_in_celerys_notation(text: str, limit: int, period_ms: int) -> None:
    assert Rate.parse(text) == Rate(limit, period_ms)


@pytest.mark.parametrize("text", ["4/min", "4", "0/s", "-1/s", "4.5/m", "/m", "4/w", "", None, 4])
def test_a_malformed_rate_names_the_value_and_the_expected_form(text: object) -> None:
    with pytest.raises(InvalidRateLimit, match=r"'N/s', 'N/m', 'N/h' or 'N/d'") as excinfo:
        Rate.parse(text)
    assert isinstance(excinfo.value, InputError)


def test_a_burst_must_be_between_one_and_the_limit() -> None:
    assert Rate.parse("4/m", burst=4).burst == 4
    with pytest.raises(InvalidRateLimit, match="exceeds the limit"):
        Rate.parse("4/m", burst=5)
    with pytest.raises(InvalidRateLimit, match="at least 1"):
        Rate.parse("4/m", burst=0)
    with pytest.raises(InvalidRateLimit, match="not a whole number"):
        Rate.parse("4/m", burst=True)


def test_spacing_rounds_up_so_that_no_window_ever_holds_more_than_the_limit() -> None:
    # "3/s" spaced 333 ms apart would fit a fourth start 999 ms after the first
    assert spacing_ms(3, 1_000, 1) == 334
    assert spacing_ms(4, 60_000, 1) == 15_000
    assert spacing_ms(4, 60_000, 2) == 30_000


def test_the_log_keeps_the_burst_when_it_divides_the_limit_else_the_limit() -> None:
    assert slots_kept(10, 1) == 1
    assert slots_kept(4, 2) == 2
    assert slots_kept(4, 3) == 4


def test_rates_compare_by_their_long_run_rate() -> None:
    assert Rate.parse("10/s").allows_more_than(Rate.parse("100/m"))
    assert not Rate.parse("60/m").allows_more_than(Rate.parse("1/s"))


def test_options_parse_and_name_their_owner_when_malformed() -> None:
    assert parse_limits({"rate_limit": "4/m", "concurrency_limit": 2}, owner="x") == Limits(
        Rate(4, 60_000), 2
    )
    with pytest.raises(InvalidRateLimit, match="actor 'fetch': concurrency_limit=0"):
        parse_limits({"concurrency_limit": 0}, owner="actor 'fetch'")
    with pytest.raises(InvalidRateLimit, match="rate_limit_burst needs a rate_limit"):
        parse_limits({"rate_limit_burst": 2}, owner="x")


def test_a_message_may_lower_its_actors_limits_but_never_raise_them() -> None:
    actor = Limits(Rate.parse("10/s", burst=5), 4)
    lowered = lower_limits(actor, Limits(Rate.parse("1/s"), 1), owner="m")
    assert lowered == Limits(Rate.parse("1/s"), 1)
    # Without an actor limit, any message limit lowers "unlimited"
    assert lower_limits(Limits(), Limits(Rate.parse("1/s")), owner="m").rate == Rate(1, 1_000)
    with pytest.raises(InvalidRateLimit, match="would raise the actor's 10/s"):
        lower_limits(actor, Limits(Rate.parse("11/s")), owner="m")
    with pytest.raises(InvalidRateLimit, match="would raise"):
        lower_limits(actor, Limits(Rate.parse("10/s", burst=10)), owner="m")
    with pytest.raises(InvalidRateLimit, match="concurrency_limit=5 would raise the actor's 4"):
        lower_limits(actor, Limits(None, 5), owner="m")


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    # The backend is never reached: declarations and sends are checked without it.
    backend = PostgresBackend(Database("postgresql://postgres@127.0.0.1:1/none", attempts=1))
    broker = StubBroker()
    broker.add_middleware(RateLimit(backend))
    yield broker
    broker.close()


def test_a_malformed_actor_option_is_an_error_when_the_actor_is_declared(
    broker: StubBroker,
) -> None:
    with pytest.raises(InvalidRateLimit, match="actor 'fetch': rate_limit='4/min' is malformed"):

        @dramatiq.actor(broker=broker, actor_name="fetch", rate_limit="4/min")
        def fetch() -> None: ...

    # And the actor was not registered
    assert "fetch" not in broker.actors


def test_a_message_option_is_checked_when_it_is_sent(broker: StubBroker) -> None:
    @dramatiq.actor(broker=broker, actor_name="fetch", rate_limit="4/m", concurrency_limit=2)
    def fetch() -> None: ...

    # A lower limit is accepted
    fetch.send_with_options(rate_limit="1/m", concurrency_limit=1)
    assert broker.queues["default"].qsize() == 1

    # A higher or malformed one is refused before it reaches the queue
    with pytest.raises(InvalidRateLimit, match="would raise the actor's 4/m"):
        fetch.send_with_options(rate_limit="5/m")
    with pytest.raises(InvalidRateLimit, match="is malformed"):
        fetch.send_with_options(rate_limit="lots")
    assert broker.queues["default"].qsize() == 1


def test_more_than_one_start_per_millisecond_starts_several_together() -> None:
    # Slots are whole milliseconds: "5000/s" cannot space starts 0.2 ms apart
    assert Rate.parse("5000/s").burst == 5
    assert spacing_ms(5000, 1_000, 5) == 1
    assert Rate.parse("1000/s").burst == 1


def test_a_slow_rate_gets_a_larger_guard_so_a_late_thread_does_not_cost_it_a_whole_slot() -> None:
    middleware = RateLimit(
        PostgresBackend(Database("postgresql://postgres@127.0.0.1:1/none")), guard_ms=50
    )
    assert middleware.guard_ms_for(Rate.parse("10/s")) == 50
    assert middleware.guard_ms_for(Rate.parse("4/m")) == 600
