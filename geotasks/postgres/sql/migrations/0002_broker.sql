-- The Postgres broker: queued messages, the worker processes holding them, dead letters; and the
-- poison guard's delivery counts (used with every broker).

-- One row per delivery, not per message: Dramatiq re-enqueues the same message id (retries,
-- delays, throttling) before it acks the original, so both rows exist for a moment.
CREATE TABLE geotasks.broker_messages (
    delivery_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    queue_name text NOT NULL,
    -- Dramatiq's `broker_priority` message option: higher is handed out first (as RabbitMQ).
    priority integer NOT NULL DEFAULT 0,
    -- Dramatiq's encoded message, with the canonical queue name and no `eta`.
    body text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    -- Never handed out before this time: delays and retry back-offs live here.
    available_at timestamptz NOT NULL DEFAULT now(),
    -- The worker process holding the message; NULL while it waits in its queue.
    consumer_id uuid,
    claimed_at timestamptz,
    -- Times the message went back to its queue because its worker stopped heart-beating.
    redeliveries integer NOT NULL DEFAULT 0
);

CREATE INDEX broker_messages_ready_idx ON geotasks.broker_messages
    (queue_name, priority DESC, available_at, delivery_id) WHERE consumer_id IS NULL;
CREATE INDEX broker_messages_claimed_idx ON geotasks.broker_messages (consumer_id)
    WHERE consumer_id IS NOT NULL;

-- Worker processes consuming from the Postgres broker, with their last heartbeat.
CREATE TABLE geotasks.broker_consumers (
    consumer_id uuid PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Messages rejected by a worker (failed for good, unknown actor, undecodable body, poison),
-- kept with their error until re-queued or purged (`geotasks dead-letters`).
CREATE TABLE geotasks.broker_dead_letters (
    dead_letter_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    queue_name text NOT NULL,
    actor_name text,
    priority integer NOT NULL DEFAULT 0,
    body text NOT NULL,
    error text NOT NULL,
    redeliveries integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX broker_dead_letters_queue_idx ON geotasks.broker_dead_letters
    (queue_name, dead_letter_id);

-- The poison guard: deliveries of one attempt of a message that started but have not finished.
-- Committed before the actor runs, deleted when the message is acked or rejected, so what is
-- left counts the worker processes the message killed.
CREATE TABLE geotasks.message_deliveries (
    message_id text NOT NULL,
    attempt integer NOT NULL,
    deliveries integer NOT NULL DEFAULT 1,
    last_delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, attempt)
);
