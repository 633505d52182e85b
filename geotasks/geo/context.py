"""Where :func:`~geotasks.geo.features.read_features` reads from, handed in from above.

The geo layer knows neither settings nor the job store, yet ``read_features("parcels")`` in a
user's actor must find the data directory, apply the configured limits and resolve
``job:<id>`` to an earlier job's result. The layer that knows those things (``geotasks``, see
:mod:`geotasks.datasets`) registers a provider with :func:`set_context_provider`; readers ask
for :func:`current_context` each time they open a dataset, so a changed setting or a test's
own context is seen.

Standard library only: this module is imported by ``import geotasks``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from geotasks.geo.limits import GeoLimits

#: Turns a dataset argument into what the reader opens: a dataset name (resolved safely inside
#: ``data_dir``) or a trusted local ``Path`` (a temporary copy of a job's result), for as long
#: as the context manager is open.
SourceOpener = Callable[[str], AbstractContextManager[str | Path]]


def names_only(name: str) -> AbstractContextManager[str | Path]:
    """The plain opener: every argument is a dataset name, passed on as it is."""
    return nullcontext(name)


@dataclass(frozen=True)
class ReadContext:
    """What reading a dataset by name needs from the configuration.

    Parameters:
      data_dir: The directory dataset names are resolved in (``GEOTASKS_DATA_DIR``).
      limits: Feature, vertex and archive limits.
      tmp_dir: Where temporary files go (a rebuilt ``.shx``, a job's result), or ``None``
        for the system's.
      open_source: Resolves a dataset argument (``job:<id>`` among others); see
        :data:`SourceOpener`.
    """

    data_dir: Path
    limits: GeoLimits
    tmp_dir: Path | None = None
    open_source: SourceOpener = field(default=names_only)


_provider: Callable[[], ReadContext] | None = None


def set_context_provider(provider: Callable[[], ReadContext] | None) -> None:
    """Register the function that builds the :class:`ReadContext` for each read.

    Parameters:
      provider: Called each time a dataset is opened by name; ``None`` unregisters.
    """
    global _provider
    _provider = provider


def current_context() -> ReadContext:
    """The context to read with now.

    Raises:
      RuntimeError: If no provider is registered (``import geotasks`` registers one).
    """
    if _provider is None:
        raise RuntimeError(
            "no read context: import geotasks, or call "
            "geotasks.geo.context.set_context_provider() first"
        )
    return _provider()
