"""The inheritance study (`python experiments/inas_study.py --config=experiments/configs/inheritance_study.py`):
iNAS from scratch that also scores its candidates inherited at 1/32 .. 1/4 of the schedule, on the compare_nas
protocol; the agreement that set `inas.inherited_fraction` there (docs/results/inheritance_study).

  ''       3 paired seeds at CPU scale
  'smoke'  seconds, for tests
"""

from jal.configs import compare_nas


def get_config(arg: str = ''):
  config = compare_nas.get_config(arg)
  config.policies = ('inheritance_study',)
  config.baseline_policy = ''
  config.model.cpu_fusions = 'default'  # What its committed rows ran with (before 'auto' became the default).
  config.inas.inherited_fraction = 1 / 16  # Unused (the study's policy sets its own); what its rows ran under.
  return config
