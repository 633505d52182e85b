"""See the whole system at a glance: the state behind the dashboard, ``/metrics`` and health.

Everything starts from :func:`geotasks.postgres.overview.read_state` (one read of Postgres);
:mod:`.queues` adds what the Redis or RabbitMQ broker can tell of its queues, :mod:`.schedules`
works out each periodic actor's next slot and lateness, :mod:`.health` judges the whole.
"""
