"""``geotasks health`` and ``GET /health``: is the system able to run jobs now, and if not, why.

A failing check names its cause: Postgres or the broker unreachable, the schema behind the
package, a queue with ready messages that no alive worker serves, a schedule late while a
scheduler runs. No scheduler at all is a warning (some deployments run none), a failure only
when one is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..broker import database_for
from ..errors import DatabaseError
from ..postgres.migrate import latest_version, schema_version
from ..postgres.overview import SystemState, read_state
from ..postgres.pool import Database
from ..settings import Settings
from .queues import BrokerUnreachable, QueueInfo, broker_kind, read_queues
from .schedules import schedule_states


class Verdict(StrEnum):
    """A check's outcome (the words of the IETF health-check response format)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One thing checked, its verdict and what was found."""

    name: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class HealthReport:
    """Every check made; failed as soon as one check failed."""

    checks: tuple[Check, ...]

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the checks."""
        verdicts = {check.verdict for check in self.checks}
        for verdict in (Verdict.FAIL, Verdict.WARN):
            if verdict in verdicts:
                return verdict
        return Verdict.PASS

    @property
    def healthy(self) -> bool:
        """No check failed (warnings allowed)."""
        return self.verdict is not Verdict.FAIL

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``/health``."""
        return {
            "status": self.verdict.value,
            "checks": [
                {"name": c.name, "status": c.verdict.value, "detail": c.detail} for c in self.checks
            ],
        }

    def lines(self) -> list[str]:
        """One line per check, for the terminal."""
        return [f"{c.verdict.value:<4}  {c.name}: {c.detail}" for c in self.checks]


def check_health(settings: Settings, *, require_scheduler: bool = False) -> HealthReport:
    """Check the database, its schema, the broker, the workers and the schedules.

    Parameters:
      settings: The configuration of the system to check.
      require_scheduler: Fail, rather than warn, when no scheduler is alive.

    Raises:
      ConfigurationError: when no database is configured.
    """
    database = database_for(settings)
    checks = list(_database_checks(database))
    if any(check.verdict is Verdict.FAIL for check in checks):
        return HealthReport(tuple(checks))
    try:
        state = read_state(database, settings.broker_heartbeat_timeout_s)
    except DatabaseError as exc:
        checks.append(Check("postgres", Verdict.FAIL, f"PostgreSQL failed: {exc}"))
        return HealthReport(tuple(checks))
    kind = broker_kind(settings)
    try:
        queues = read_queues(settings, state)
    except BrokerUnreachable as exc:
        checks.append(Check("broker", Verdict.FAIL, str(exc)))
        return HealthReport(tuple(checks))
    checks.append(
        Check("broker", Verdict.PASS, f"the {kind} broker answered ({len(queues)} queues)")
    )
    checks.append(_workers_check(state, queues))
    checks.extend(_scheduler_checks(state, settings, require_scheduler=require_scheduler))
    return HealthReport(tuple(checks))


def _database_checks(database: Database) -> list[Check]:
    try:
        version = schema_version(database)
    except DatabaseError as exc:
        return [Check("postgres", Verdict.FAIL, f"PostgreSQL is unreachable: {exc}")]
    checks = [Check("postgres", Verdict.PASS, "PostgreSQL answered")]
    expected = latest_version()
    if version < expected:
        checks.append(
            Check(
                "schema",
                Verdict.FAIL,
                f"the schema is at version {version}, behind this geotasks ({expected}): "
                "run `geotasks db init`",
            )
        )
    else:
        checks.append(Check("schema", Verdict.PASS, f"the schema is at version {version}"))
    return checks


def _workers_check(state: SystemState, queues: list[QueueInfo]) -> Check:
    workers = [w for w in state.workers if w.role == "worker"]
    alive = [w for w in workers if not w.lost]
    served = {queue for w in alive for queue in w.queues}
    unserved = [q for q in queues if q.ready and q.queue_name not in served]
    counts = f"{len(alive)} alive worker processes, {len(workers) - len(alive)} lost"
    if unserved:
        names = ", ".join(f"{q.queue_name!r} ({q.ready} ready)" for q in unserved)
        return Check("workers", Verdict.FAIL, f"no alive worker serves {names}; {counts}")
    return Check("workers", Verdict.PASS, f"{counts}; every queue with ready messages is served")


def _scheduler_checks(
    state: SystemState, settings: Settings, *, require_scheduler: bool
) -> list[Check]:
    schedulers = [w for w in state.workers if w.role == "scheduler" and not w.lost]
    if not schedulers:
        verdict = Verdict.FAIL if require_scheduler else Verdict.WARN
        return [
            Check("scheduler", verdict, "no scheduler is running: periodic actors are not sent")
        ]
    checks = [Check("scheduler", Verdict.PASS, f"{len(schedulers)} scheduler(s) running")]
    late = [s for s in schedule_states(state, settings.periodic_skip_delay_s) if s.late]
    if late:
        detail = "; ".join(
            f"{s.actor_name} is {s.lateness_s:.0f} s late (its slot "
            f"{s.next_slot:%Y-%m-%d %H:%M} UTC has not run)"
            for s in late
        )
        checks.append(Check("schedules", Verdict.FAIL, detail))
    else:
        checks.append(Check("schedules", Verdict.PASS, "no schedule is late"))
    return checks
