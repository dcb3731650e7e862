"""active-iNAS against fixed A(1,2) and ResNet-18 A(2,4) for softmax response, MC-dropout and coreset
(`jal-compare`; active-iNAS §5.2-5.4). Random queries give the passive learner of the fixed
architectures for AUC-GAIN (Figure 6b).

  ''       CPU scale: 3 policies x 3 query functions x 3 seeds (+ random for the fixed ones) on Fashion-MNIST,
           100 -> 600 labels, 640 SGD steps per round (the measured CPU protocol; several hours on 2 cores, so
           it runs in parts: finished runs' rows stay in the workdir and a restart resumes)
  'smoke'  seconds, for tests
  'paper'  the published protocol on CIFAR-10 (GPU/TPU)
"""

from jal import experiment


def get_config(arg: str = ''):
  config = experiment.base_config()
  config.policies = ('inas', 'fixed:A(1,2)', 'fixed:A(2,4)')
  config.strategies = ('least_confidence', 'mc_variance', 'coreset', 'random')
  config.skip = ('inas/random',)
  config.baseline_policy = 'fixed:A(1,2),fixed:A(2,4)'  # Paired differences against both.
  config.inas.schedule = 'compressed'
  config.inas.candidate_fraction = 0.5
  if arg == 'smoke':
    config.policies = ('inas', 'fixed:A(1,1)')
    config.strategies = ('least_confidence', 'random')
    config.skip = ()
    config.baseline_policy = 'fixed:A(1,1)'
  return experiment.apply_scale(config, arg)
