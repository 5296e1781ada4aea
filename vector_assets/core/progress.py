"""Progress of long COPYs and index builds, reported through one callback.

The core counts; the shell decides where a report goes (the Dagster run log, a terminal bar,
plain lines). Counting wraps the byte stream a COPY already reads or writes, so it costs an
addition and a clock read per chunk, and nothing at all when no reporter is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vector_assets.core.units import count_of, human_duration, human_size, megabytes_per_second


class ProgressEvent(Protocol):
    """What every report has, so a bar can draw any of them and a log can print any of them."""

    key: str  # one bar per key
    completed: float
    total: float | None
    done: bool

    def describe(self) -> str: ...


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class CopyProgress:
    """One table's COPY so far. ``rows_exact`` is False when rows are estimated from bytes."""

    action: str
    table: str
    rows: int
    bytes: int
    seconds: float
    expected_rows: int | None
    expected_bytes: int | None
    rows_exact: bool
    done: bool = False

    @property
    def key(self) -> str:
        return f"{self.action} {self.table}"

    @property
    def fraction(self) -> float | None:
        """Share done, against the rows when rows are counted, else against the bytes."""
        if self.done:
            return 1.0
        if self.rows_exact and self.expected_rows:
            return min(self.rows / self.expected_rows, 0.99)
        if self.expected_bytes:
            return min(self.bytes / self.expected_bytes, 0.99)
        return None

    @property
    def completed(self) -> float:
        return self.bytes

    @property
    def total(self) -> float | None:
        fraction = self.fraction
        return self.bytes / fraction if fraction else None

    @property
    def eta_seconds(self) -> float | None:
        fraction = self.fraction
        if not fraction or self.done:
            return None
        return self.seconds * (1 - fraction) / fraction

    def describe(self) -> str:
        rows = f"{self.rows:,}" if self.rows_exact else f"~{self.rows:,}"
        text = (
            f"{self.key}: {rows} {'row' if self.rows == 1 else 'rows'}, {human_size(self.bytes)} in {human_duration(self.seconds)}, "
            f"{megabytes_per_second(self.bytes, self.seconds):.1f} MB/s"
        )
        if self.done:
            return text + ", done"
        fraction = self.fraction
        if fraction is None:
            return text + f", {self._expected()}"
        eta = self.eta_seconds  # none until something has moved: an estimate needs a rate
        return text + f", {fraction:.0%} of {self._expected()}" + (f", ETA {human_duration(eta)}" if eta is not None else "")

    def _expected(self) -> str:
        if self.expected_rows:
            return f"~{count_of(self.expected_rows, 'row')}"
        if self.expected_bytes:
            return human_size(self.expected_bytes)
        return "size unknown"


class CopyMeter:
    """Counts one COPY's bytes (and rows, when each write is one row) and reports every interval."""

    def __init__(
        self,
        reporter: ProgressReporter,
        action: str,
        table: str,
        *,
        expected_rows: int | None,
        expected_bytes: int | None,
        rows_per_write: bool,
    ) -> None:
        self._reporter = reporter
        self._action = action
        self._table = table
        self._expected_rows = expected_rows if expected_rows and expected_rows > 0 else None
        self._expected_bytes = expected_bytes if expected_bytes and expected_bytes > 0 else None
        self._rows_per_write = rows_per_write
        self.started = reporter.clock()
        self._next_report = self.started + reporter.interval_seconds
        self.bytes = 0
        self.writes = 0

    def count(self, size: int) -> None:
        self.bytes += size
        self.writes += 1
        now = self._reporter.clock()
        if now >= self._next_report:
            self._next_report = now + self._reporter.interval_seconds
            self._reporter.report(self.snapshot(now))

    def finish(self, rows: int | None = None) -> None:
        """The last report, with the exact row count when the caller has it."""
        self._reporter.report(self.snapshot(self._reporter.clock(), rows=rows, done=True))

    def snapshot(self, now: float, rows: int | None = None, done: bool = False) -> CopyProgress:
        exact = rows is not None or self._rows_per_write
        return CopyProgress(
            self._action, self._table, rows if rows is not None else self._rows(), self.bytes, now - self.started,
            self._expected_rows, self._expected_bytes, exact, done,
        )

    def _rows(self) -> int:
        if self._rows_per_write:
            return max(self.writes - 1, 0)  # the first write is the CSV header
        if self._expected_rows and self._expected_bytes:
            return round(self._expected_rows * min(self.bytes / self._expected_bytes, 1.0))
        return 0


class CountingWriter:
    """A sink for ``COPY ... TO STDOUT`` that counts what passes on to ``sink``."""

    def __init__(self, sink, meter: CopyMeter) -> None:
        self._sink = sink
        self._meter = meter

    def write(self, data: bytes) -> object:
        self._meter.count(len(data))
        return self._sink.write(data)


class CountingReader:
    """A source for ``COPY ... FROM STDIN`` that counts what it reads from ``source``."""

    def __init__(self, source, meter: CopyMeter) -> None:
        self._source = source
        self._meter = meter

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._meter.count(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._source.readline(size)
        self._meter.count(len(data))
        return data


@dataclass
class ProgressReporter:
    """Where reports go and how often. A callback that raises never stops the work it reports on."""

    callback: ProgressCallback
    interval_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def copy_meter(
        self, action: str, table: str, *, expected_rows: int | None, expected_bytes: int | None, rows_per_write: bool
    ) -> CopyMeter:
        meter = CopyMeter(
            self, action, table, expected_rows=expected_rows, expected_bytes=expected_bytes, rows_per_write=rows_per_write
        )
        self.report(meter.snapshot(meter.started))
        return meter

    def report(self, event: ProgressEvent) -> None:
        try:
            self.callback(event)
        except Exception:  # a broken terminal or log handler must not fail a backup
            pass


@dataclass(frozen=True)
class CopyEstimate:
    """What one COPY is expected to move, for the share done and the ETA."""

    action: str
    table: str
    rows: int | None
    bytes: int | None


def writer_for(reporter: ProgressReporter | None, sink, estimate: CopyEstimate) -> tuple[object, CopyMeter | None]:
    """``sink`` itself when nothing reports, else a counting wrapper and its meter.

    psycopg2 writes ``COPY ... TO STDOUT`` one row per call, so writes count rows exactly."""
    return _counted(reporter, sink, estimate, CountingWriter, rows_per_write=True)


def reader_for(reporter: ProgressReporter | None, source, estimate: CopyEstimate) -> tuple[object, CopyMeter | None]:
    """``source`` itself when nothing reports, else a counting wrapper; rows follow the bytes."""
    return _counted(reporter, source, estimate, CountingReader, rows_per_write=False)


def _counted(reporter: ProgressReporter | None, stream, estimate: CopyEstimate, wrapper, rows_per_write: bool):
    if reporter is None:
        return stream, None
    meter = reporter.copy_meter(
        estimate.action, estimate.table, expected_rows=estimate.rows, expected_bytes=estimate.bytes,
        rows_per_write=rows_per_write,
    )
    return wrapper(stream, meter), meter
