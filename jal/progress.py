"""Progress a person can watch: an absl line per epoch for whatever trains now, and optional TensorBoard events.

A binary opens `reporting(every_s, tensorboard_dir)` once; the code that trains names what runs
(`with task('round 3'):`, nested names join with ' / ') and reports each epoch or cycle (`update`). A line says
what trains, how far it is (epoch, step of total), its loss and accuracy, examples/s and the ETA of that training;
lines come at most every `every_s` seconds per task (0: every epoch), plus each task's last. Outside `reporting`
nothing is printed or written, so library calls and tests stay quiet. TensorBoard events need the `tensorboard`
package (pip install 'jal[tensorboard]'), not TensorFlow: one scalar per metric, tagged '<task>/<metric>',
against the step of that training; `round_scalars` adds one point per active-learning round against |L|.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import time
from collections.abc import Iterator
from typing import Any

from absl import logging

_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar('jal_progress_reporter', default=None)
_TASK: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar('jal_progress_task', default=())


class _EventWriter:
  """TensorBoard scalars through the `tensorboard` package's writer (no TensorFlow)."""

  def __init__(self, directory: str):
    try:
      from tensorboard.compat.proto import event_pb2, summary_pb2
      from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as error:
      raise ImportError("TensorBoard output needs the tensorboard package: pip install 'jal[tensorboard]' (or "
                        'turn it off: --config.tensorboard=False).') from error
    self._event, self._summary = event_pb2.Event, summary_pb2.Summary
    self._writer = EventFileWriter(directory)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
    self._writer.add_event(self._event(wall_time=time.time(), step=int(step), summary=summary))

  def close(self) -> None:
    self._writer.close()


@dataclasses.dataclass
class Reporter:
  """Where progress goes: absl lines at most every `every_s` seconds per task, and TensorBoard if a writer."""
  every_s: float = 30.0
  writer: _EventWriter | None = None
  _last_line: dict[str, float] = dataclasses.field(default_factory=dict)

  def due(self, task: str, done: int, total: int) -> bool:
    """Whether `update` would show anything now (a line, or TensorBoard scalars): callers skip fetching their
    metrics from the device otherwise."""
    return (self.writer is not None or done >= total
            or time.monotonic() - self._last_line.get(task, -math.inf) >= self.every_s)

  def update(self, task: str, done: int, total: int, metrics: dict[str, float], unit: str = 'step',
             elapsed_s: float | None = None, examples: int | None = None, epoch: int | None = None) -> str | None:
    """Logs one line (when due) and writes the scalars; returns the line, or None when none was due."""
    if self.writer is not None:
      self.writer.scalars(done, {f'{task}/{k}' if task else k: float(v) for k, v in metrics.items() if _finite(v)})
    now = time.monotonic()
    due = done >= total or now - self._last_line.get(task, -math.inf) >= self.every_s
    if not due:
      return None
    self._last_line[task] = now
    parts = [task or 'training']
    if epoch is not None:
      parts.append(f'epoch {epoch}')
    parts.append(f'{unit} {done}/{total}')
    parts += [f'{k} {v:.4f}' for k, v in metrics.items() if _finite(v)]
    if elapsed_s is not None and elapsed_s > 0 and done > 0:
      if examples is not None:
        parts.append(f'{examples / elapsed_s:,.0f} examples/s')
      parts.append(f'ETA {_duration(elapsed_s / done * (total - done))}')
    line = ' | '.join(parts)
    logging.info('%s', line)
    return line


def _finite(value: Any) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else f'{seconds // 60}m{seconds % 60:02d}s'


@contextlib.contextmanager
def reporting(every_s: float = 30.0, tensorboard_dir: str | None = None) -> Iterator[Reporter]:
  """Turns progress on in this context: absl lines every `every_s` seconds per task (0: every epoch; a negative
  value: no lines), and TensorBoard events under `tensorboard_dir` when given."""
  writer = _EventWriter(tensorboard_dir) if tensorboard_dir else None
  reporter = Reporter(every_s if every_s >= 0 else math.inf, writer)
  token = _REPORTER.set(reporter)
  try:
    yield reporter
  finally:
    _REPORTER.reset(token)
    if writer is not None:
      writer.close()


@contextlib.contextmanager
def task(name: str) -> Iterator[None]:
  """Names what trains inside this context; nested names join with ' / ' ('seed 0 / round 3 / candidate A(2,2)')."""
  token = _TASK.set(_TASK.get() + (name,))
  try:
    yield
  finally:
    _TASK.reset(token)


def current_task() -> str:
  return ' / '.join(_TASK.get())


def active() -> bool:
  """Whether anyone listens (a `reporting` context is open): trainers skip the bookkeeping otherwise."""
  return _REPORTER.get() is not None


def due(done: int, total: int) -> bool:
  """Whether the current task's progress at `done` of `total` would be shown (False outside `reporting`)."""
  reporter = _REPORTER.get()
  return reporter is not None and reporter.due(current_task(), done, total)


def update(done: int, total: int, metrics: dict[str, float], unit: str = 'step', elapsed_s: float | None = None,
           examples: int | None = None, epoch: int | None = None) -> str | None:
  """Reports that the current task has done `done` of `total` units with these metrics (no-op outside
  `reporting`); `elapsed_s` since the task started gives the ETA and, with `examples`, the rate."""
  reporter = _REPORTER.get()
  if reporter is None:
    return None
  return reporter.update(current_task(), done, total, metrics, unit, elapsed_s, examples, epoch)


def round_scalars(row: dict, prefix: str) -> None:
  """One TensorBoard point per finished round, against |L|: its test accuracy and seconds (no-op without a writer)."""
  reporter = _REPORTER.get()
  if reporter is None or reporter.writer is None:
    return
  values = {f'{prefix}/{k}': float(v) for k, v in row.items()
            if (k.startswith(('test/', 'time/', 'val/')) or k == 'train/loss') and _finite(v)}
  reporter.writer.scalars(int(row['num_labeled']), values)
