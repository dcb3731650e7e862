"""active-iNAS with one query function: the README's main job (`jal-active-inas`).

  ''       CPU scale: softmax response, one seed, Fashion-MNIST 200 -> 600 labels by 200, 640 SGD steps per
           round (the measured CPU protocol)
  'smoke'  seconds, for tests
  'paper'  the published protocol: CIFAR-10 via TFDS, k = 2000, b = 2000 then 5000 after 10,000, budget 50,000,
           200 epochs (50 for candidates)
"""

from jal import experiment


def get_config(arg: str = ''):
  config = experiment.base_config()
  config.policies = ('inas',)
  config.strategies = ('least_confidence',)  # Softmax response; 'mc_variance' and 'coreset' too.
  config.seeds = (0,)
  config.budget.initial = 200
  config.budget.per_round = 200
  config.budget.total = 600
  config.inas.schedule = 'compressed'       # At CPU scale a truncated quarter-schedule ranks candidates poorly.
  config.inas.candidate_fraction = 0.5
  return experiment.apply_scale(config, arg)
