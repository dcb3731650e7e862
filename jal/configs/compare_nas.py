"""Architecture search strategies against each other and a fixed architecture, from scratch and with inherited
weights (`jal-compare --config=compare_nas`; the NAS survey's levers).

  jal-run-parts --config=compare_nas --workdir=docs/results/compare_nas --split=policies,seeds --jobs=1

  ''       CPU scale: fixed A(1,2), iNAS, random search (iNAS's budget), regularised evolution and the full grid
           (the paper's §4.5 straw man) on a 3 x 3 space, iNAS, random search and evolution also with '+inherit'
           (candidates start from the previous round's model), iNAS with '+lineage' (from the previous search's
           choice, V' a persistent random share of L); least confidence, 3 paired seeds, the measured CPU
           protocol (100 -> 600 labels, 640 SGD steps per round, candidates on the compressed half schedule)
  'smoke'  seconds, for tests

Every policy searches the same space with the same V' rule, candidate schedule and choice rule; two rows differ
in the search strategy or in inheritance only. The report adds what each search spent on candidates.
"""

from jal import experiment


def get_config(arg: str = ''):
  config = experiment.base_config()
  config.policies = ('fixed:A(1,2)', 'inas', 'inas+inherit', 'inas+lineage', 'random_search', 'random_search+inherit',
                     'evolution', 'evolution+inherit', 'grid')
  config.strategies = ('least_confidence',)
  config.baseline_policy = 'fixed:A(1,2),inas'
  config.inas.schedule = 'compressed'
  config.inas.candidate_fraction = 0.5
  # Set by the inheritance study's rule (docs/results/inheritance_study/summary.md, 3 seeds): no inherited schedule
  # from 1/32 to 1/4 chose distinguishably better than a uniform pick, so the cheapest.
  config.inas.inherited_fraction = 1 / 32
  config.inas.max_blocks = 3
  config.inas.max_stacks = 3
  if arg == 'smoke':
    config.policies = ('fixed:A(1,1)', 'inas', 'inas+inherit')
    config.baseline_policy = 'fixed:A(1,1)'
    config.nas.population = 2
    config.nas.cycles = 1
  return experiment.apply_scale(config, arg)
