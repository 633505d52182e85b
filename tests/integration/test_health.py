"""``geotasks health``'s checks: each cause is named; a healthy system passes."""

from __future__ import annotations

from dramatiq.message import Message

from geotasks.monitoring.health import HealthReport, Verdict, check_health
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.migrate import apply_migrations, list_migrations
from geotasks.postgres.pool import Database
from geotasks.postgres.queries import load_queries
from geotasks.settings import Settings
from tests.integration.registry import register


def verdicts(report: HealthReport) -> dict[str, Verdict]:
    return {check.name: check.verdict for check in report.checks}


def detail(report: HealthReport, name: str) -> str:
    return next(check.detail for check in report.checks if check.name == name)


def send(database: Database, queue_name: str) -> None:
    broker = PostgresBroker(database=database)
    broker.enqueue(Message(queue_name=queue_name, actor_name="a", args=(), kwargs={}, options={}))


def test_a_system_with_its_workers_and_scheduler_is_healthy(database: Database) -> None:
    # Given a message on a queue that an alive worker serves, and an alive scheduler
    send(database, "default")
    register(database, queues=("default",))
    register(database, role="scheduler", queues=("maintenance",))

    # When its health is checked
    report = check_health(Settings(database_url=database.url))

    # Then every check passes and says what it found
    assert report.healthy and report.verdict is Verdict.PASS, report.lines()
    assert set(verdicts(report)) == {
        "postgres",
        "schema",
        "broker",
        "workers",
        "scheduler",
        "schedules",
    }
    assert "1 alive worker processes, 0 lost" in detail(report, "workers")


def test_postgres_unreachable_is_named() -> None:
    report = check_health(
        Settings(database_url="postgresql://postgres@127.0.0.1:1/nothing", connect_timeout_s=1)
    )
    assert verdicts(report) == {"postgres": Verdict.FAIL}
    assert "PostgreSQL is unreachable" in detail(report, "postgres")


def test_an_unreachable_broker_is_named(database: Database) -> None:
    report = check_health(
        Settings(database_url=database.url, broker_url="redis://127.0.0.1:1/0", connect_timeout_s=1)
    )
    assert verdicts(report)["broker"] is Verdict.FAIL
    assert "the redis broker at redis://127.0.0.1:1/0 did not answer" in detail(report, "broker")


def test_a_schema_behind_the_package_is_named(empty_database_url: str) -> None:
    # Given a database migrated to the version before this package's
    database = Database(empty_database_url)
    migrations = list_migrations()

    def install_all_but_last(cur: object) -> None:
        cur.execute(load_queries("migrate")["lock"])  # type: ignore[attr-defined]
        apply_migrations(cur, migrations[:-1])  # type: ignore[arg-type]

    database.transaction(install_all_but_last)
    try:
        report = check_health(Settings(database_url=empty_database_url))
    finally:
        database.close()
    assert verdicts(report)["schema"] is Verdict.FAIL
    assert f"version {len(migrations) - 1}, behind this geotasks ({len(migrations)})" in detail(
        report, "schema"
    )


def test_ready_messages_that_no_alive_worker_serves_fail(database: Database) -> None:
    # Given ready messages on "geo", whose only worker is lost, and an alive worker on "default"
    send(database, "geo")
    send(database, "geo")
    register(database, queues=("geo",), silent_for_s=600)
    register(database, queues=("default",))

    report = check_health(Settings(database_url=database.url))

    assert verdicts(report)["workers"] is Verdict.FAIL
    assert detail(report, "workers").startswith("no alive worker serves 'geo' (2 ready)")
    assert "1 alive worker processes, 1 lost" in detail(report, "workers")


def test_no_scheduler_is_a_warning_unless_one_is_required(database: Database) -> None:
    settings = Settings(database_url=database.url)

    report = check_health(settings)
    assert report.healthy and verdicts(report)["scheduler"] is Verdict.WARN

    required = check_health(settings, require_scheduler=True)
    assert not required.healthy and verdicts(required)["scheduler"] is Verdict.FAIL
    assert "no scheduler is running" in detail(required, "scheduler")


def test_a_schedule_late_while_a_scheduler_runs_fails(database: Database) -> None:
    # Given a scheduler that has sent an every-minute schedule for 10 minutes, no tick of which ran
    register(database, role="scheduler", schedules={"every_minute": "* * * * *"}, started_ago_s=600)

    report = check_health(Settings(database_url=database.url))

    # Then the schedule is late by about 9 minutes (its first slot after the start)
    assert verdicts(report)["schedules"] is Verdict.FAIL
    late = detail(report, "schedules")
    assert late.startswith("every_minute is ")
    assert 480 <= int(late.split()[2]) <= 600

    # When a tick of the current minute has run, Then it is on time
    database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.periodic_tick (actor_name, slot, message_id) "
            "VALUES ('every_minute', date_trunc('minute', now()), 'm1')"
        )
    )
    assert verdicts(check_health(Settings(database_url=database.url)))["schedules"] is Verdict.PASS
