"""iNAS's scoring under the microscope (experiments/active_inas.py with policy 'inas_study').

Each round iNAS trains its candidates with 3 seeds on S' and records every candidate's error on V' (best over
epochs and final) and on 2,000 held-out training images that are never queried (never the test split): how far
V' sits from unbiased data as the queries fill L with hard items, whether a choice on the held-out images would
differ, and how often another seed would choose another architecture.

  ''                 least confidence, seed 0, 100 -> 600 labels, the CPU protocol (640 SGD steps per round),
                     candidates 'compressed' to half the epochs (the CPU default)
  'truncated'        the same with the paper's candidate schedule (the first quarter of the full one)
  'smoke'            seconds, for tests
"""

from jal import experiment


def get_config(arg: str = ''):
  variant, _, scale = arg.partition(':') if arg.startswith('truncated') else ('', '', arg)
  config = experiment.base_config()
  config.model.cpu_fusions = 'default'  # What its committed rows ran with (before 'auto' became the default).
  config.policies = ('inas_study',)
  config.strategies = ('least_confidence',)
  config.seeds = (0,)
  config.study_seeds = 3
  config.data.validation_size = 2000
  config.inas.schedule = 'compressed'
  config.inas.candidate_fraction = 0.5
  if variant == 'truncated':
    config.inas.schedule = 'truncated'
    config.inas.candidate_fraction = 0.25
  config = experiment.apply_scale(config, scale)
  if scale == 'smoke':
    config.data.validation_size = 60
    config.study_seeds = 2
  return config
