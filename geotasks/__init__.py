"""Background geoprocessing for GIS applications, on Dramatiq workers with Postgres.

An application declares its own actors, and sends work by name from processes that cannot
import them; none of it loads fiona, shapely or pyproj:

>>> import geotasks
>>> @geotasks.actor(rate_limit="4/m")
... def get_shps(name: str) -> list[Polygon]: ...
>>> job = get_shps.submit("parcels")
>>> job = geotasks.submit("shapefile_to_geojson", "parcels")
>>> job.get(timeout=60)
"""

from __future__ import annotations

from . import datasets
from .declaration import Actor, actor
from .errors import (
    ActorNotRegistered,
    GeotasksError,
    InputError,
    JobFailed,
    JobNotFinished,
    JobNotFound,
    JobSkipped,
    JobTimeout,
    ResultExpired,
    ResultIsAFile,
    ResultNotStored,
    ResultTooLarge,
)
from .geo.context import set_context_provider
from .job_model import JobError, JobInfo, JobState, Progress
from .jobs import Job, submit, submit_with_options
from .middleware.periodic import current_slot
from .middleware.running import progress

# geotasks.geo.read_features finds datasets, limits and earlier jobs' results through this.
set_context_provider(datasets.read_context)

__all__ = [
    "Actor",
    "ActorNotRegistered",
    "GeotasksError",
    "InputError",
    "Job",
    "JobError",
    "JobFailed",
    "JobInfo",
    "JobNotFinished",
    "JobNotFound",
    "JobSkipped",
    "JobState",
    "JobTimeout",
    "Progress",
    "ResultExpired",
    "ResultIsAFile",
    "ResultNotStored",
    "ResultTooLarge",
    "actor",
    "current_slot",
    "progress",
    "submit",
    "submit_with_options",
]
