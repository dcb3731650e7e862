"""Query strategies compared on a fixed architecture, A(1,2) at width 16 (`jal-active-learning`).

  ''       CPU scale: 8 strategies x 3 seeds on Fashion-MNIST, 100 -> 600 labels, 640 SGD steps per round
  'smoke'  seconds, for tests (random and entropy)
  'paper'  the active-iNAS protocol on CIFAR-10 (GPU/TPU)
"""

from jal import experiment


def get_config(arg: str = ''):
  config = experiment.base_config()
  config.strategies = ('random', 'least_confidence', 'margin', 'entropy', 'bald', 'coreset', 'kmeans', 'badge')
  if arg == 'smoke':
    config.strategies = ('random', 'entropy')
  return experiment.apply_scale(config, arg)
