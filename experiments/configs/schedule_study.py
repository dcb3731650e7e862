"""Config for experiments/schedule_study.py: how long a round must train at CPU scale.

  ''       A(1,2) and ResNet-18 A(2,4) at width 16, |L| = 100, 300, 600 of a 10,000-image Fashion-MNIST pool,
           5-40 epochs of 1024 examples, 2 seeds; validation on 2,000 held-out training images. The committed
           rows add 60 and 80 epochs for A(1,2), which had not fitted |L| = 600 by 40:
           --config.study.archs="('A(1,2)',)" --config.study.epochs="(60,80)"
  'smoke'  seconds, for tests
"""

import ml_collections

from jal import experiment


def schedule_study_config() -> ml_collections.ConfigDict:
  """Which per-round schedule fits the labelled set: architectures x |L| x epochs x seeds, scored on L (train
  accuracy, eval mode) and on a validation split held out of the training data (never the test split)."""
  config = experiment.base_config()
  config.model.cpu_fusions = 'default'  # What its committed rows ran with (before 'auto' became the default).
  config.data.validation_size = 2000
  config.study = ml_collections.ConfigDict()
  config.study.archs = ('A(1,2)', 'A(2,4)')
  config.study.num_labeled = (100, 300, 600)
  config.study.epochs = (5, 10, 15, 20, 30, 40)
  config.study.seeds = (0, 1)
  return config


def get_config(arg: str = ''):
  config = schedule_study_config()
  if arg == 'smoke':
    config = experiment.smoke(config)
    config.data.validation_size = 100
    config.study.archs = ('A(1,1)',)
    config.study.num_labeled = (20, 40)
    config.study.epochs = (1, 2)
    config.study.seeds = (0,)
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; use '' or 'smoke'.")
  return config
