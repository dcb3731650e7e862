"""Grids behind the practitioners' features (`jal-compare --config=experiments/configs/practitioner_grids.py:<arg>`),
each on Fashion-MNIST at the CPU protocol (A(1,2) at width 16, 100 -> 600 labels by 100, 640 SGD steps), 3 paired
seeds, rows that differ in the query only:

  'balanced'       a long-tailed pool (class 9 ten times rarer than class 0; the test split as drawn, balanced):
                   margin, margin+balanced (its top items per predicted class) and random
  'learning_loss'  every model with the loss-prediction module (model.loss_prediction): learning_loss, its
                   class-balanced variant (the check of why it trails: its picks pile onto a few classes), margin
                   and random
  '...:smoke'      seconds, for tests

  jal-compare --config=experiments/configs/practitioner_grids.py:balanced --workdir=docs/results/balanced_grid
  jal-compare --config=experiments/configs/practitioner_grids.py:learning_loss --workdir=docs/results/learning_loss_grid
"""

from jal import experiment

GRIDS = ('balanced', 'learning_loss')


def get_config(arg: str = 'balanced'):
  grid, _, scale = arg.partition(':')
  if grid not in GRIDS:
    raise ValueError(f'Unknown grid {grid!r}; use one of {GRIDS} (then :smoke).')
  config = experiment.base_config()
  config.model.cpu_fusions = 'default'  # What its committed rows ran with (before 'auto' became the default).
  config.seeds = (0, 1, 2)
  if grid == 'balanced':
    config.data.imbalance = 10.0
    config.strategies = ('margin', 'margin+balanced', 'random')
  else:
    config.model.loss_prediction = True
    config.strategies = ('learning_loss', 'learning_loss+balanced', 'margin', 'random')
  config = experiment.apply_scale(config, scale)
  if scale == 'smoke':
    config.seeds = (0,)
  return config
