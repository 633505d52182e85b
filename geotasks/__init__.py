"""Background geoprocessing for GIS applications, on Dramatiq workers with Postgres.

The client API is importable from a web application without fiona, shapely or pyproj:

>>> import geotasks
>>> job = geotasks.submit("shapefile_to_geojson", "parcels")
>>> job.get(timeout=60)
"""

from __future__ import annotations

from . import datasets
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
from .jobs import Job, submit, submit_with_options
from .middleware.job_status import progress
from .postgres.job_status import JobError, JobInfo, JobState, Progress

# geotasks.geo.read_features finds datasets, limits and earlier jobs' results through this.
set_context_provider(datasets.read_context)

__all__ = [
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
    "progress",
    "submit",
    "submit_with_options",
]
