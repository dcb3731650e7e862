"""Tests for jal.progress: the per-epoch lines a person watches (TensorBoard events and the curves in the rows are
read back in test_experiment.py, on a grid that runs anyway)."""

import logging

import jax

from jal import progress
from jal.augment import AugmentConfig
from jal.models import ModelConfig, build_model
from jal.search_space import Architecture
from jal.train import TrainConfig, train

CONFIG = TrainConfig(epochs=3, examples_per_epoch=32, batch_size=16, learning_rate=0.05, augment=AugmentConfig())


def _train(tiny_problem, seeds=1):
  images, labels = tiny_problem
  model = build_model(Architecture(1, 1), 2, ModelConfig(width=4))
  return train(model, CONFIG, images, labels, jax.random.split(jax.random.key(0), seeds),
               validation=(images[:16], labels[:16]))


def _lines(caplog):
  return [r.getMessage() for r in caplog.records if ' | step ' in r.getMessage()]


def test_a_line_per_epoch_with_rate_and_eta_named_by_the_task(tiny_problem, caplog):
  caplog.set_level(logging.INFO)
  with progress.reporting(every_s=0), progress.task('round 2'), progress.task('model A(1,1)'):
    _train(tiny_problem)
  lines = _lines(caplog)
  assert len(lines) == CONFIG.epochs
  for epoch, line in enumerate(lines, 1):
    assert line.startswith(f'round 2 / model A(1,1) | epoch {epoch} | step {2 * epoch}/6 | loss ')
    assert 'accuracy ' in line and 'examples/s' in line and 'ETA ' in line
  assert 'val/accuracy' in lines[-1]  # Validation scores show when they are computed (at the end here).


def test_lines_are_throttled_but_every_training_ends_with_one(tiny_problem, caplog):
  caplog.set_level(logging.INFO)
  with progress.reporting(every_s=3600):
    _train(tiny_problem, seeds=2)  # Sequential seeds on the CPU: a task per seed.
  lines = _lines(caplog)
  # The first epoch of each seed is due (never reported before), then nothing until each one's last.
  assert [line.split(' | ')[:3] for line in lines] == [
      ['seed 0', 'epoch 1', 'step 2/6'], ['seed 0', 'epoch 3', 'step 6/6'],
      ['seed 1', 'epoch 1', 'step 2/6'], ['seed 1', 'epoch 3', 'step 6/6']]


def test_quiet_outside_reporting(tiny_problem, caplog):
  caplog.set_level(logging.INFO)
  result = _train(tiny_problem)
  assert not _lines(caplog) and not progress.active()
  assert [e['epoch'] for e in result.curve(0)] == [1, 2, 3]


def test_due_says_when_a_line_would_show():
  assert not progress.due(1, 10)  # Nobody listens.
  with progress.reporting(every_s=3600), progress.task('search'):
    assert progress.due(1, 10)  # Never reported before.
    progress.update(1, 10, {'loss': 1.0})
    assert not progress.due(2, 10) and progress.due(10, 10)  # Throttled, but the last one always shows.
