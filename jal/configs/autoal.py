"""AutoAL against each of its candidate strategies alone and random (`jal-autoal`).

  ''         CPU scale: AutoAL with the official seven candidates, ALBL (the bandit over the same candidates, Hsu
             & Lin 2015), the seven alone, and random, on Fashion-MNIST, fixed A(1,2) task model, 3 paired seeds,
             100 -> 600 labels by 100, 640 SGD steps per round (the measured CPU protocol: the task model fits L)
  'three'    the same with the 3-candidate AutoAL and ALBL (entropy, k-means, BALD) and those three alone
  'smoke'    seconds, for tests
  'paper'    the published protocol on CIFAR-10 (GPU/TPU): 2000 initial labels, 1000 per round, 18 rounds,
             ResNet-18 for the task model, FitNet and SearchNet
"""

import ml_collections

from jal import experiment


def get_config(arg: str = ''):
  variant, _, scale = arg.partition(':') if arg.startswith('three') else ('', '', arg)
  config = experiment.base_config()
  config.policies = ('fixed:A(1,2)',)
  config.strategies = ('autoal', 'albl', 'least_confidence', 'margin', 'entropy', 'kmeans', 'bald',
                       'variation_ratio', 'mean_std', 'random')
  config.model.mc_passes = 10                  # AutoAL's T, for its MC-dropout candidates alone too.

  config.autoal = autoal = ml_collections.ConfigDict()
  autoal.candidates = ('least_confidence', 'margin', 'entropy', 'kmeans', 'bald', 'variation_ratio', 'mean_std')
  autoal.arch = 'A(1,1)'                       # FitNet and SearchNet backbone (the paper: ResNet-18, A(2,4)).
  autoal.width = 16
  autoal.batch_size = 0                        # B; 0: the query's size (the official code), capped at |L|/2.
  autoal.min_marks = 2                         # The simulated query per batch at least (the official code: 2).
  autoal.pretrain_steps = 100                  # FitNet on the simulated labelled half, every round.
  autoal.cycles = 50                           # fit / search / loss-module steps, every round.
  autoal.fit_lr = 0.005                        # Adam (paper).
  autoal.search_lr = 0.005                     # SGD, momentum 0.9 (paper).
  autoal.loss_module_lr = 0.1                  # SGD, momentum 0.9 (official code).
  autoal.weight_decay = 5e-4
  autoal.reg_weight = 1.0                      # λ.
  autoal.num_components = 5
  autoal.mixture_init = 'kmeans++'             # EM's start; 'quantiles': the previous code's (ablation).
  autoal.em_iterations = 50
  autoal.num_threshold_samples = 4096
  autoal.threshold_items = 4096                # The query's mixture is fitted to this many unlabelled items.
  autoal.temperature = 'calibrated'            # τ: 'calibrated' (Σ s̄ = q), 'std' (std of s) or a number ('1e-11').
  autoal.head_init = 'uniform'                 # SearchNet's head at zero; 'random': the previous code's (ablation).
  autoal.normalise = 'rank'                    # Scores as normal quantiles of their ranks; 'standard': z (ablation).
  autoal.differentiable_reg = True             # False: the official code's constant L_re.
  autoal.loss_margin = 1.0
  autoal.loss_module_dim = 128
  autoal.backbone_loss_weight = 1.0            # The ranking loss's term in SearchNet's loss (0: backbone only).
  autoal.informativeness_weight = 1.0          # SearchNet's main term (0: loss prediction only, equal weights).
  autoal.mc_passes = 10
  autoal.mc_dropout_rate = 0.5

  # ALBL (Hsu & Lin, 2015), the bandit baseline over the same candidates (`jal.albl`).
  config.albl = albl = ml_collections.ConfigDict()
  albl.candidates = autoal.candidates
  albl.random_share = 0.1                      # The uniform share of each batch, on which the reward is measured.
  albl.exploration = 0.0                       # EXP3's γ; 0: Auer et al.'s for the horizon.
  albl.horizon = 5                             # Queries per run: 100 -> 600 by 100.
  albl.mc_passes = 10
  albl.mc_dropout_rate = 0.5

  if variant == 'three':
    autoal.candidates = albl.candidates = ('entropy', 'kmeans', 'bald')
    config.strategies = ('autoal', 'albl', 'entropy', 'kmeans', 'bald', 'random')
  if scale == 'smoke':
    config.strategies = ('autoal', 'entropy', 'kmeans', 'random')
    autoal.candidates = albl.candidates = ('entropy', 'kmeans')
    albl.mc_passes = 3
    autoal.width = 4
    autoal.batch_size = 8                      # <= |L|/2 in every round: one shape, one compile.
    autoal.pretrain_steps = 3
    autoal.cycles = 2
    autoal.mc_passes = 3
    autoal.num_threshold_samples = 256
  config = experiment.apply_scale(config, scale)
  if scale == 'paper':
    config.budget.initial = 2000
    config.budget.per_round = 1000
    config.budget.total = 19_000               # 18 rounds of training: 2000, 3000, ..., 19,000 labels.
    config.budget.grown_per_round = 0
    config.budget.grow_after = 0
    config.policies = ('fixed:A(2,4)',)
    autoal.arch = 'A(2,4)'
    autoal.width = 64
    autoal.batch_size = 128
    autoal.pretrain_steps = 3000               # ~200 epochs of the first simulated labelled half.
    albl.horizon = 17
    autoal.cycles = 2000
  return config
