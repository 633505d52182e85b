"""The scheduler loop: each slot sent once, on time, stamped with its slot; a refusal retried."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime
from typing import Any

from geotasks.schedule import Every
from geotasks.scheduler import Scheduler


class RecordingActor:
    """Stands in for a Dramatiq actor: records what the scheduler sends, and when."""

    def __init__(self, name: str, *, failures: int = 0) -> None:
        self.actor_name = name
        self.options: dict[str, Any] = {}
        self.sent: list[tuple[datetime, float]] = []
        self.failures = failures

    def send_with_options(self, *, scheduled_at: str) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.sent.append((datetime.fromisoformat(scheduled_at), time.time()))
        return type("Sent", (), {"message_id": f"m{len(self.sent)}"})()


def run_for(scheduler: Scheduler, seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,))
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_each_slot_is_sent_once_at_its_time_stamped_with_the_slot() -> None:
    # Given two actors every second, one whose first send the broker refuses
    steady, flaky = RecordingActor("steady"), RecordingActor("flaky", failures=1)
    scheduler = Scheduler(
        {"steady": (steady, Every(1)), "flaky": (flaky, Every(1))},  # type: ignore[dict-item]
        skip_late_s=60,
    )

    # When the scheduler runs for a little over three seconds
    run_for(scheduler, 3.3)

    # Then the steady actor got each whole second once, each sent within half a second of its slot
    slots = [slot for slot, _ in steady.sent]
    assert len(slots) >= 3
    assert all(slot.timestamp() % 1 == 0 for slot in slots)
    assert [b.timestamp() - a.timestamp() for a, b in itertools.pairwise(slots)] == [1.0] * (
        len(slots) - 1
    )
    assert all(0 <= sent_at - slot.timestamp() < 0.5 for slot, sent_at in steady.sent)
    # And the refused slot was sent again a second later, and the slot missed meanwhile was not
    # replayed: the next one sent is the next to come
    flaky_slots = [slot for slot, _ in flaky.sent]
    assert flaky.sent[0][1] - slots[0].timestamp() >= 1.0
    assert flaky_slots[:2] == [slots[0], slots[2]]
