"""AutoAL with one setting changed, on the 3-candidate grid's seeds and protocol (the ablations).

  jal-run-parts --config=autoal_ablation:NAME --workdir=docs/results/<GRID>_ablations/NAME --jobs=1 \
    --config.seeds=0,1,2

Only AutoAL runs: its rows pair, seed by seed, with the grid GRID beside the ablations' folder (the same seeds,
data, task model and round 0), and `jal-report` writes the ablation table into that folder. The first four
reverted one repair each and ran against `autoal_three`; `without_bald` and `rank_scores` against the per-sample
code's grid, `autoal_three_v2` (z-scores); the paper's ablations, `backbone_only` and `loss_prediction_only`,
against the rank-score grid, `autoal_three_v3`. NAME is one of ABLATIONS; 'NAME:smoke' for tests. The
optimiser-state repair (each optax state stepped once per cycle) has no ablation: the previous code stepped
SearchNet's momentum twice, a bug with no design behind it.
"""

from jal.configs import autoal

ABLATIONS = {
    'mixture_quantiles': {'mixture_init': 'quantiles'},        # EM from quantiles (fix 1 reverted).
    'head_random': {'head_init': 'random'},                    # SearchNet's head at its random init (fix 2).
    'temperature_std': {'temperature': 'std'},                 # τ = std(s), α overshoots q (fix 3).
    'thin_marks': {'batch_size': 64, 'min_marks': 1},          # B = 64, one mark per candidate (fix 4).
    'constant_reg': {'differentiable_reg': False},             # The official code's constant L_re (not a fix).
    # BALD left out: do entropy and BALD, marking the same items, crowd k-means out of the query by their summed
    # weight? (No: without BALD k-means still got none of the picks; the z-scores were the cause.)
    'without_bald': {'candidates': ('entropy', 'kmeans'), 'normalise': 'standard'},
    # Scores as normal quantiles of their ranks (the default since), against the v2 grid's z-scores.
    'rank_scores': {'normalise': 'rank'},
    # The paper's ablation table (run against the rank-score grid, docs/results/autoal_three_v3): the ranking loss
    # left out of SearchNet's objective ("ResNet backbone only"), and its main term left out ("loss prediction
    # only": nothing then reaches SearchNet's head, so the query is the equal-weight mixture of the candidates).
    'backbone_only': {'backbone_loss_weight': 0.0},
    'loss_prediction_only': {'informativeness_weight': 0.0},
}


def get_config(arg: str = ''):
  name, _, scale = arg.partition(':')
  if name not in ABLATIONS:
    raise ValueError(f'Unknown ablation {name!r}: one of {", ".join(ABLATIONS)} (e.g. --config=...:head_random).')
  config = autoal.get_config('three' + (f':{scale}' if scale else ''))
  config.strategies = ('autoal',)
  for field, value in ABLATIONS[name].items():
    config.autoal[field] = value
  return config
