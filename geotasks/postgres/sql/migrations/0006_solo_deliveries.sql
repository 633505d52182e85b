-- The poison guard (geotasks/middleware/deliveries.py): of the unfinished deliveries, how many
-- ran alone in their worker process. Only those prove that the message itself killed it.
ALTER TABLE geotasks.message_deliveries
    ADD COLUMN solo_deliveries integer NOT NULL DEFAULT 0;
