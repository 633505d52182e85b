"""A stand-in for long geoprocessing: an actor on the ``geo`` queue that holds its thread."""

from __future__ import annotations

import logging
import time

import dramatiq

from geotasks.broker import setup_broker

logger = logging.getLogger(__name__)

setup_broker()


@dramatiq.actor(queue_name="geo", max_retries=0, time_limit=300_000)
def occupy_geo_thread(seconds: float) -> None:
    """Hold a worker thread for ``seconds``, as a long GDAL call would."""
    logger.info("occupy_geo_thread started for %s s", seconds)
    time.sleep(seconds)
