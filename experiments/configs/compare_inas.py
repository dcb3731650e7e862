"""active-iNAS against fixed A(1,2) and ResNet-18 A(2,4) for softmax response, MC-dropout and coreset
(experiments/compare_inas.py; active-iNAS §5.2-5.4). Random queries give the passive learner for AUC-GAIN.

  ''       CPU scale: 3 policies x 4 query functions x 3 seeds on Fashion-MNIST, 100 -> 800 labels
  'smoke'  seconds, for tests
  'paper'  the published protocol on CIFAR-10 (GPU/TPU)
"""

from experiments.configs import common


def get_config(arg: str = ''):
  config = common.base()
  config.policies = 'inas,fixed:A(1,2),fixed:A(2,4)'
  config.strategies = 'least_confidence,mc_variance,coreset,random'
  config.baseline_policy = 'fixed:A(1,2)'
  config.inas.schedule = 'compressed'
  config.inas.candidate_fraction = 0.5
  if arg == 'smoke':
    config.policies = 'inas,fixed:A(1,1)'
    config.strategies = 'least_confidence,random'
    config.baseline_policy = 'fixed:A(1,1)'
  return common.apply(config, arg)
