"""Writing a large shapefile's GeoJSON in several processes, each rendering a range of features.

Reading a shapefile with fiona holds the GIL: one process renders at most one core's worth of
features. A shapefile's ``.shx`` gives every record's offset, so a helper process can open the
same file, seek to record ``n`` and render the features from there on while the job's own
process renders those before; the job's process then appends each helper's text, in order, to
the document. The output is byte for byte what one process would write.

A helper is a new Python process (``python -m geotasks.geo.parallel``, about 0.45 s to start
and import the geo code), given its task on stdin. Not a fork: a worker's threads, locks and
database connections never reach it. Not :mod:`multiprocessing` either, whose fork server or
spawn would import the caller's ``__main__`` again in the helper (running an unguarded script
a second time). A helper stops when its job's process goes away (killed, or past its time
limit) or stops waiting, and a helper that crashes fails its job as bad input would.

A layer is split only when that can pay: an unfiltered, plain (not zipped) shapefile read
without ``limit=``, with at least :data:`MIN_FEATURES_PER_PROCESS` features per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

from geotasks.errors import InputError
from geotasks.geo.geojson import Bounds, FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.reading import Layer, reopen_layer
from geotasks.geo.streaming import write_layer
from geotasks.geo.validity import InvalidGeometries, InvalidPolicy

logger = logging.getLogger(__name__)

#: Fewest features each process must get for a split to pay for starting a helper.
MIN_FEATURES_PER_PROCESS = 50_000

#: What renders a range of a layer's records: :func:`~geotasks.geo.streaming.write_layer`'s
#: signature (an operation's renderer is a picklable ``functools.partial`` of
#: :func:`~geotasks.geo.mapping.map_layer`).
LayerRenderer = Callable[..., None]

#: How often a job's process looks up from waiting for a helper, in seconds (Dramatiq's time
#: limit can only interrupt Python code, not a wait inside the operating system).
POLL_INTERVAL_S = 0.2

#: Signals by which a helper dies of the data it reads (GDAL or GEOS crashing on a damaged
#: file), rather than of something done to it (the kernel's out-of-memory killer).
_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE})

#: The length in front of each pickled message between a job and its helper.
_LENGTH = struct.Struct("!Q")

#: The folder holding the ``geotasks`` package.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class FeatureRange:
    """Records ``start`` (included) to ``stop`` (excluded) of a shapefile: its features whose
    ids (record numbers) lie in that range."""

    start: int
    stop: int


@dataclass(frozen=True)
class _RangeTask:
    """What a helper renders, and where it writes the text."""

    layer: Layer
    features: FeatureRange
    precision: int
    write_bbox: bool
    invalid: InvalidPolicy
    limits: GeoLimits
    path: str
    render: LayerRenderer = write_layer


@dataclass(frozen=True)
class _RangeDone:
    """A helper's report: what it wrote."""

    count: int
    bounds: Bounds | None
    invalid: InvalidGeometries
    peak_rss_mb: float
    elapsed_s: float


@dataclass(frozen=True)
class _RangeFailed:
    """A helper's report: why it stopped; ``input_error`` if the data was at fault."""

    message: str
    input_error: bool


class _Abandoned(Exception):
    """The job's process went away, or stopped waiting: the helper's work is not wanted."""


def plan_ranges(
    layer: Layer,
    *,
    limits: GeoLimits,
    limit: int | None,
    min_features_per_process: int | None = None,
    head_start: int = 0,
) -> list[FeatureRange]:
    """Split the records to write into one range per process (one range: no split).

    Parameters:
      layer: The opened layer.
      limits: How many processes may read (the job's own included), and how many features.
      limit: The caller's feature limit, if any: such a layer is read in one process (the
        first ``limit`` features are not the first ``limit`` records when some are deleted).
      min_features_per_process: Fewest features worth a process of their own
        (:data:`MIN_FEATURES_PER_PROCESS` when ``None``).
      head_start: Features the job's own process handles while a helper starts: it takes
        that many more than its even share, so that every process finishes together.

    Returns:
      Consecutive ranges covering the records, the job's own process's first.
    """
    total = layer.feature_count
    splittable = (
        layer.file.seekable
        and not layer.filtered
        and limit is None
        # Past the feature limit, the job's own read fails at once: no helper is started.
        and total <= limits.max_features
    )
    per_process = min_features_per_process or MIN_FEATURES_PER_PROCESS
    count = min(limits.max_read_processes, total // per_process) if splittable else 1
    if count <= 1:
        return [FeatureRange(0, total)]
    own = min(total, (total + (count - 1) * head_start) // count)
    bounds = [0] + [own + (total - own) * index // (count - 1) for index in range(count)]
    return [FeatureRange(start, stop) for start, stop in pairwise(bounds)]


def write_layer_split(
    layer: Layer,
    writer: FeatureCollectionWriter,
    *,
    limits: GeoLimits,
    invalid: InvalidGeometries,
    limit: int | None,
    tmp_dir: Path | None = None,
    render: LayerRenderer = write_layer,
    min_features_per_process: int | None = None,
    head_start: int = 0,
) -> None:
    """Write the features of ``layer`` as GeoJSON, in up to ``limits.max_read_processes``
    processes when the layer is large enough (see the module's description).

    Parameters:
      layer: The opened layer; it stays open until the helpers are done.
      writer: The collection being written.
      limits: Feature and vertex limits, and how many processes may read.
      invalid: What to do with invalid polygons; counts those found in every process.
      limit: Stop after this many features.
      tmp_dir: Where helpers write their text until it is appended.
      render: What writes a range of records: :func:`~geotasks.geo.streaming.write_layer`
        (the features as they are), or an operation's renderer; it must pickle.
      min_features_per_process: Fewest features worth a process of their own
        (:data:`MIN_FEATURES_PER_PROCESS` when ``None``).
      head_start: Features the job's own process takes on beyond its even share while the
        helpers start (see :func:`plan_ranges`).

    Raises:
      InputError: If the data is bad (in any range), or a helper crashed on it.
      RuntimeError: If a helper was killed from outside.
    """
    ranges = plan_ranges(
        layer,
        limits=limits,
        limit=limit,
        min_features_per_process=min_features_per_process,
        head_start=head_start,
    )
    if len(ranges) == 1:
        render(layer, writer, limits=limits, invalid=invalid, limit=limit)
        return
    with ExitStack() as stack:
        folder = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="geotasks-", dir=tmp_dir))
        )
        detached = layer.detached()
        helpers = []
        for index, features in enumerate(ranges[1:], start=1):
            task = _RangeTask(
                detached,
                features,
                writer.precision,
                writer.write_bbox,
                invalid.policy,
                limits,
                str(folder / f"range-{index}.json"),
                render,
            )
            helpers.append(stack.enter_context(_helper(task)))
        render(layer, writer, limits=limits, invalid=invalid, limit=None, stop=ranges[0].stop)
        for helper in helpers:
            done = helper.wait()
            invalid.merge(done.invalid)
            with open(helper.task.path, "rb") as fragment:
                writer.append_fragment(fragment, done.count, done.bounds)
            logger.info(
                "%s: a helper process wrote features %d to %d in %.2f s (peak RSS %.0f MB)",
                layer.label,
                helper.task.features.start,
                helper.task.features.stop - 1,
                done.elapsed_s,
                done.peak_rss_mb,
                extra={"helper_peak_rss_mb": done.peak_rss_mb},
            )


@dataclass
class _Helper:
    """A running helper process, fed its task on stdin; it reports on stdout."""

    task: _RangeTask
    process: subprocess.Popen[bytes]

    def wait(self) -> _RangeDone:
        """Wait for the helper's report.

        Raises:
          InputError: If the helper found bad data or crashed on it.
          RuntimeError: If it failed otherwise, or was killed.
        """
        assert self.process.stdout is not None
        while not select.select([self.process.stdout], [], [], POLL_INTERVAL_S)[0]:
            pass
        try:
            report = _receive(self.process.stdout)
        except EOFError:
            self.process.wait()
            raise self._died() from None
        if isinstance(report, _RangeFailed):
            if report.input_error:
                raise InputError(report.message)
            raise RuntimeError(f"a helper process reading {self._what} failed:\n{report.message}")
        assert isinstance(report, _RangeDone)
        return report

    def stop(self) -> None:
        """End the helper, whether or not it is done."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    @property
    def _what(self) -> str:
        features = self.task.features
        return f"features {features.start} to {features.stop - 1} of {self.task.layer.label}"

    def _died(self) -> Exception:
        code = self.process.returncode or 0
        if code < 0 and -code in _CRASH_SIGNALS:
            features = self.task.features
            return InputError(
                f"{self.task.layer.label}: reading features {features.start} to "
                f"{features.stop - 1} crashed GDAL "
                f"({signal.Signals(-code).name}); the file is probably damaged"
            )
        return RuntimeError(f"the helper process reading {self._what} died (exit code {code})")


@contextmanager
def _helper(task: _RangeTask) -> Iterator[_Helper]:
    # The geotasks package the job runs is the one the helper imports.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", __name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    helper = _Helper(task, process)
    try:
        assert process.stdin is not None
        _send(process.stdin, task)
        yield helper
    finally:
        helper.stop()


def _send(stream: IO[bytes], value: object) -> None:
    """Write ``value``, pickled, with its length in front."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """Read what :func:`_send` wrote; ``EOFError`` if the stream ends first."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError
    return pickle.loads(data)


def _render_range(task: _RangeTask, wanted: Callable[[], bool]) -> _RangeDone | _RangeFailed | None:
    """A helper's work: render ``task``'s features into its file; ``None`` if abandoned."""
    started = time.monotonic()

    def check_wanted() -> None:
        if not wanted():
            raise _Abandoned

    try:
        invalid = InvalidGeometries(task.invalid)
        with reopen_layer(task.layer) as layer, open(task.path, "wb") as sink:
            writer = FeatureCollectionWriter(
                sink, precision=task.precision, write_bbox=task.write_bbox, fragment=True
            )
            task.render(
                layer,
                writer,
                limits=task.limits,
                invalid=invalid,
                limit=None,
                start=task.features.start,
                stop=task.features.stop,
                between_batches=check_wanted,
            )
    except _Abandoned:
        return None
    except InputError as exc:
        return _RangeFailed(str(exc), input_error=True)
    except Exception:
        return _RangeFailed(traceback.format_exc(), input_error=False)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _RangeDone(writer.count, writer.bounds, invalid, peak_rss_mb, time.monotonic() - started)


def _main() -> None:
    """The helper process: read a task on stdin, render it, report on stdout."""
    # Only the report goes to the real stdout: anything a library prints goes to stderr.
    report_stream = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    task = _receive(sys.stdin.buffer)

    def wanted() -> bool:
        # The job's process writes nothing more: stdin readable means it closed or died.
        return not select.select([sys.stdin], [], [], 0)[0]

    report = _render_range(task, wanted)
    if report is not None:
        with contextlib.suppress(BrokenPipeError):
            _send(report_stream, report)


if __name__ == "__main__":
    # Run as the module's importable self, so that what it pickles names geotasks.geo.parallel
    # and not __main__.
    from geotasks.geo import parallel

    parallel._main()
