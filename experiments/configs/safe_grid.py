"""The safe search's proof grid (experiments/inas_study.py): on one dataset, least confidence, 5 paired seeds, the
CPU protocol (100 -> 600 labels by 100, 640 SGD steps per round), rows that differ in the architecture policy only:

  fixed:A(1,1)   the start architecture, never searched
  fixed:A(1,2)   the paper's small fixed baseline
  fixed:A(2,4)   ResNet-18 (where the input allows a 2x2 last map: not at 8x8)
  inas           the paper's Algorithm 1 (V' = a random 20% of L, candidates compressed to half the epochs)
  safe           the safe search (3-fold out-of-fold accuracy, a move at t > 2.0)
  safe_from_a24  the safe search from ResNet-18 instead of A(1,1) (--config.nas.start=A(2,4)): the 28x28 rows
                 lose to ResNet-18 in the first two rounds, before a search from A(1,1) has grown; not at 8x8
  safe_2x025     the same scored more cheaply: 2 folds, each a quarter of the round's schedule (1/3 of the cost);
                 8x8 only: there it broke the start bound, so the larger grids spend their cores on the rows above
  heldout_best   the analysis-only upper bound: each round the safe search's candidates trained on all of L and
                 chosen by their error on 2,000 held-out training images (never queried, never the test split)

Every row holds out the same 2,000 images (data.validation_size), so the pools are equal across rows.

  ''            Fashion-MNIST at 28x28
  'small'       Fashion-MNIST at 8x8 (every image area-averaged: a real small-image dataset made from it)
  'imbalanced'  Fashion-MNIST at 28x28 with a long-tailed pool: class 9 ten times rarer than class 0
                (test split as drawn, balanced)
  '...:smoke'   seconds, for tests

Loading this config registers the study policies (`heldout_best`), so the parts runner takes it too (seed-major
parts: whole paired seeds finish first), from the repository root:

  python -m jal.cli.run_parts --config=experiments/configs/safe_grid.py --workdir=docs/results/safe_grid_28x28
"""

import importlib.util
import pathlib

from jal import experiment

try:  # From the repository root (python -m jal.cli.run_parts), or beside it (python experiments/inas_study.py).
  from experiments import inas_studies
except ImportError:
  try:
    import inas_studies
  except ImportError:  # A console script (jal-run-parts) finds neither: load it from its file.
    _spec = importlib.util.spec_from_file_location(
        'inas_studies', pathlib.Path(__file__).resolve().parents[1] / 'inas_studies.py')
    inas_studies = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(inas_studies)

DATASETS = ('', 'small', 'imbalanced')


def get_config(arg: str = ''):
  inas_studies.register()
  dataset, _, scale = arg.partition(':')
  if dataset not in DATASETS:
    raise ValueError(f'Unknown dataset {dataset!r} for the safe grid; use one of {DATASETS} (then :smoke).')
  config = experiment.base_config()
  # What the 28x28 and 8x8 rows ran with (before 'auto' became the default); the long-tailed grid, with no rows
  # before it, takes the measured-faster default (accuracy unmoved: docs/results/cpu_fusions_paired/report.md).
  config.model.cpu_fusions = 'auto' if dataset == 'imbalanced' else 'default'
  config.policies = ('fixed:A(1,1)', 'fixed:A(1,2)', 'fixed:A(2,4)', 'inas', 'safe', 'heldout_best', 'safe_from_a24')
  config.baseline_policy = 'fixed:A(1,1),fixed:A(1,2),fixed:A(2,4)'
  config.strategies = ('least_confidence',)
  config.seeds = (0, 1, 2, 3, 4)
  config.data.validation_size = 2000
  config.inas.schedule = 'compressed'
  config.inas.candidate_fraction = 0.5
  if dataset == 'small':
    config.data.image_size = 8
    config.policies = ('fixed:A(1,1)', 'fixed:A(1,2)', 'inas', 'safe', 'safe_2x025', 'heldout_best')
    config.baseline_policy = 'fixed:A(1,1),fixed:A(1,2)'
  if dataset == 'imbalanced':
    config.data.imbalance = 10.0
  config = experiment.apply_scale(config, scale)
  if scale == 'smoke':
    config.data.validation_size = 60
    config.policies = ('fixed:A(1,1)', 'safe', 'heldout_best')
    config.baseline_policy = 'fixed:A(1,1)'
    config.seeds = (0,)
  return config
