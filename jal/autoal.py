"""AutoAL (Wang, Zhan & Huang, ICML 2025): differentiable search over candidate query strategies (SPEC §5).

Two networks and a loss-prediction module, trained by bilevel optimisation on the labelled set L:
  FitNet     a classifier; gives the per-sample loss ℓ of the items SearchNet would select.
  SearchNet  the same backbone family with K outputs per sample: softmax weights W[j, k] of the K candidates.
  LossModule Learning-Loss head on SearchNet's stage features, trained to rank ℓ (margin ranking loss).
Each round L is split 50/50: a fresh FitNet is pre-trained on the half that plays "labelled"; the other half plays
"unlabelled" and is cut into fixed batches. Each candidate strategy scores every item of a batch (s[j, k], its
continuous informativeness, `jal.query.score`, mapped per candidate to normal quantiles of its ranks,
`normalise`). A 5-component Gaussian mixture
(`jal.mixture`) is fitted by EM to the joint K-dimensional score vectors and sampled; ϑ_k is the 100(1 - t)
percentile of candidate k's coordinate (t = q / B, the simulated query's share). The relaxed selection of item j
is s̄_j = Σ_k W[j, k] sigmoid((s[j, k] - ϑ_k) / τ): the candidates' relaxed selections weighted per item by
SearchNet. Then three pure, jitted steps alternate, each over its own optax state:
  fit_step          min mean(stop_grad(s̄)·ℓ) + λ·L_re
  search_step       min -mean(s̄·stop_grad(ℓ)) - λ·L_re,   L_re = 1/(1 + exp(0.5·|Σ s̄ - t·B|)) - 0.5
  loss_module_step  margin ranking loss of the predicted loss against stop_grad(ℓ) (also trains SearchNet's
                    backbone, as Learning Loss trains the network whose features it reads)
`search` is the small driver (pre-train, then fit/search/loss-module cycles); `AutoAL` plugs it into the loop as a
`jal.loop.Querier`: at query time every candidate scores the pool (from the task model's outputs), SearchNet
weighs the candidates per item, and the top b of the integrated score Σ_k W_k sigmoid((s_k - ϑ_k) / τ) are
labelled, so two items may be chosen for two different candidates' reasons.

Where the official code is broken jal follows the paper (SPEC §5): τ is finite (default: calibrated so that the
relaxed count comes close to the simulated query's size; the code's 1e-11 gives SearchNet exactly zero
gradient), L_re is differentiable through α = Σ s̄ (`differentiable_reg=False` gives the code's constant count),
and every row of W, s and ℓ refers to the same example. The bilevel problem is solved first-order: the three
steps alternate, each seeing the others' outputs detached.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jal import mixture, progress
from jal import query as query_lib
from jal.augment import AugmentConfig
from jal.data import Dataset
from jal.loss_prediction import LossModule, margin_ranking_loss
from jal.models import ModelConfig, ResNet, build_model, init_variables
from jal.predict import predict
from jal.search_space import Architecture
from jal.train import TrainState, train_step

# The official code's seven candidates (SPEC §5) and the 3-candidate ablation (one per family).
OFFICIAL_CANDIDATES = ('least_confidence', 'margin', 'entropy', 'kmeans', 'bald', 'variation_ratio', 'mean_std')
THREE_CANDIDATES = ('entropy', 'kmeans', 'bald')


@dataclasses.dataclass(frozen=True)
class AutoALConfig:
  """AutoAL's settings (hashable: parts are static arguments of the jitted steps).

  Attributes:
    candidates: registered query strategies to weigh (any subset of `jal.query.QUERIES` except 'random').
    arch: backbone of FitNet and SearchNet (the paper: ResNet-18 = A(2, 4)).
    width: base width of both networks.
    batch_size: B, the batch of the simulated unlabelled half each step sees; None: the real query's size b, as
      the official code (capped at the half's size either way).
    min_marks: q, the simulated query's size per batch, is max(min_marks, ceil(t·B)): with t ~ 0.01 and B ~ 100,
      ceil(t·B) is 1, too thin a signal, and k-means with one centre scores by nearness to the batch mean, the
      opposite of diversity (the official code also marks at least 2). The simulated query selects q of B: the
      thresholds' percentile and L_re's target use q/B.
    pretrain_steps: FitNet's supervised steps on the simulated labelled half, each round (the paper: 200 epochs).
    cycles: fit/search/loss-module cycles each round (the paper: 400 epochs of alternation).
    fit_lr: FitNet's Adam learning rate (paper: 0.005).
    search_lr: SearchNet's SGD learning rate (paper: 0.005), momentum 0.9.
    loss_module_lr: the loss module's SGD learning rate (official code: 0.1), momentum 0.9.
    weight_decay: L2 on every network (official code: 5e-4).
    reg_weight: λ, the weight of L_re.
    num_components: components of the 1-D Gaussian mixture over s.
    mixture_init: EM's start: 'kmeans++' (default; a spread, as scikit-learn's) or 'quantiles' (means at evenly
      spaced quantiles, equal weights, the data's variance: the previous code's, which on tied scores puts every
      mean on the tied value; kept for the ablation).
    em_iterations: EM iterations of the mixture fit.
    num_threshold_samples: draws from the mixture whose 100(1 - t) percentiles are the thresholds ϑ_k.
    threshold_items: at query time the mixture and τ are fitted to at most this many unlabelled items (at random),
      so a large pool costs what this many do; the integrated score is then computed for every item.
    temperature: τ of the relaxed selection. 'calibrated' (default): per batch, the τ in [std(s)/4, 10·std(s)]
      at which the relaxed count α = Σ s̄ comes closest to q (bisection, no gradient); with τ = std(s) ('std')
      every unmarked row keeps s̄ ~ 0.07 and α overshoots q (2-10x), so L_re's gradient outweighs the main
      term's; below std(s)/4 SearchNet's gradient grows until it collapses onto one candidate. A positive
      number fixes τ (the official code's 1e-11 saturates the sigmoid: zero gradient).
    head_init: SearchNet's K-way head at start: 'uniform' (zeros: every candidate weighs 1/K) or 'random' (the
      module's own init: a seed-dependent weighting; the previous code's, kept for the ablation).
    normalise: how each candidate's scores are put on one scale per round (`normalise`): 'rank' (default: the
      normal quantile of each item's rank, so every candidate's top b sit equally far above its threshold) or
      'standard' (mean 0, std 1: the previous code's, kept for the ablation; a skewed score such as k-means'
      nearness to a centre, bounded above, then leaves its top items about 1 std above the mean where entropy's
      sit 3 above, and at equal weights the query held no k-means pick).
    differentiable_reg: α = Σ s̄ (True) or the count of s̄ > 0.5, a constant as in the official code (False).
    loss_margin: margin of the ranking loss (Learning Loss: 1).
    loss_module_dim: features per stage in the loss module.
    backbone_loss_weight: how much the ranking loss trains SearchNet's backbone (0: the paper's "backbone only"
      ablation).
    informativeness_weight: the weight of SearchNet's main term, -mean(s̄·ℓ) - λ·L_re (1; 0: the paper's "loss
      prediction only" ablation: the ranking loss alone trains SearchNet, whose head, reached by nothing else,
      keeps its start, so with head_init 'uniform' the query is the equal-weight mixture of the candidates).
    mc_passes: T passes for MC-dropout candidates (AutoAL: 10).
    mc_dropout_rate: dropout of FitNet's head and of the MC passes when a candidate needs them.
  """

  candidates: tuple[str, ...] = OFFICIAL_CANDIDATES
  arch: Architecture = Architecture(1, 1)
  width: int = 16
  batch_size: int | None = None
  min_marks: int = 2
  pretrain_steps: int = 100
  cycles: int = 50
  fit_lr: float = 0.005
  search_lr: float = 0.005
  loss_module_lr: float = 0.1
  weight_decay: float = 5e-4
  reg_weight: float = 1.0
  num_components: int = 5
  mixture_init: str = 'kmeans++'
  em_iterations: int = 50
  num_threshold_samples: int = 4096
  threshold_items: int = 4096
  temperature: float | str = 'calibrated'
  head_init: str = 'uniform'
  normalise: str = 'rank'
  differentiable_reg: bool = True
  loss_margin: float = 1.0
  loss_module_dim: int = 128
  backbone_loss_weight: float = 1.0
  informativeness_weight: float = 1.0
  mc_passes: int = 10
  mc_dropout_rate: float = 0.5

  def __post_init__(self):
    query_lib.check_candidates(self.candidates, 'AutoAL', 'its marks carry no information to learn from')
    if (self.batch_size is not None and self.batch_size < 2) or self.pretrain_steps < 0 or self.cycles < 1:
      raise ValueError('AutoALConfig needs batch_size >= 2 (or None), pretrain_steps >= 0 and cycles >= 1; got '
                       f'{self.batch_size}, {self.pretrain_steps}, {self.cycles}.')
    if self.backbone_loss_weight < 0 or self.informativeness_weight < 0 or not (
        self.backbone_loss_weight or self.informativeness_weight):
      raise ValueError('backbone_loss_weight and informativeness_weight must be >= 0 and not both 0 (SearchNet would '
                       f'learn nothing); got {self.backbone_loss_weight} and {self.informativeness_weight}.')
    if self.min_marks < 1:
      raise ValueError(f'min_marks must be at least 1, got {self.min_marks}.')
    if self.mixture_init not in ('kmeans++', 'quantiles'):
      raise ValueError(f"mixture_init must be 'kmeans++' or 'quantiles', got {self.mixture_init!r}.")
    if self.head_init not in ('uniform', 'random'):
      raise ValueError(f"head_init must be 'uniform' or 'random', got {self.head_init!r}.")
    if self.normalise not in NORMALISATIONS:
      raise ValueError(f'normalise must be one of {NORMALISATIONS}, got {self.normalise!r}.')
    if isinstance(self.temperature, str):
      if self.temperature not in ('calibrated', 'std'):
        raise ValueError(f"temperature must be 'calibrated', 'std' or a positive number, got {self.temperature!r}.")
    elif not self.temperature > 0:
      raise ValueError(f"temperature must be 'calibrated', 'std' or a positive number, got {self.temperature}.")

  def batch_shape(self, num_items: int, query_size: int, query_fraction: float) -> tuple[int, int]:
    """(B, q): the search batch over `num_items` simulated unlabelled items and the marks per candidate."""
    size = min(query_size if self.batch_size is None else self.batch_size, num_items)
    return size, min(size, max(self.min_marks, math.ceil(query_fraction * size)))

  @property
  def needs(self) -> frozenset[str]:
    """The model outputs the candidates read ('probs', 'embeddings', 'mc')."""
    return frozenset().union(*(query_lib.get_query(name).needs for name in self.candidates))


# --- The 1-D Gaussian mixture (EM), its samples, and the threshold. ---

def mixture_thresholds(scores: jax.Array, query_fraction: float, rng: jax.Array, config: AutoALConfig) -> jax.Array:
  """ϑ [K]: per candidate, the 100(1 - query_fraction) percentile of its coordinate in draws from a mixture fitted
  to the joint [B, K] score vectors (the paper's GMM over all strategies' scores; no gradient).

  Each coordinate is standardised first, so one variance floor suits every candidate's scale.
  """
  scores = jax.lax.stop_gradient(scores)
  mean, std = jnp.mean(scores, axis=0), jnp.std(scores, axis=0) + 1e-6
  z = (scores - mean) / std
  init_rng, sample_rng = jax.random.split(rng)
  init = (mixture.init_mixture(z, config.num_components, init_rng) if config.mixture_init == 'kmeans++'
          else mixture.quantile_mixture(z, config.num_components))
  gmm = mixture.fit_mixture(z, init, config.em_iterations)
  draws = gmm.sample(sample_rng, config.num_threshold_samples)
  return jnp.percentile(draws, 100.0 * (1.0 - query_fraction), axis=0) * std + mean


NORMALISATIONS = ('rank', 'standard')


def standardise(scores: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """[N, K] scores with each column at mean 0 and std 1 over the rows `mask` holds (all rows by default)."""
  weight = jnp.ones(scores.shape[0]) if mask is None else mask.astype(jnp.float32)
  count = jnp.maximum(jnp.sum(weight), 1.0)
  mean = jnp.sum(scores * weight[:, None], axis=0) / count
  std = jnp.sqrt(jnp.sum((scores - mean) ** 2 * weight[:, None], axis=0) / count)
  return (scores - mean) / (std + 1e-6)


def rank_normalise(scores: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """[N, K] scores with each column replaced by the standard normal quantile of its mid-rank among the rows `mask`
  holds (ties share their mean rank): every candidate gets the same marginal, whatever the shape of its score, and
  keeps its order. A Gaussian copula, which the joint Gaussian mixture then models."""
  held = jnp.ones(scores.shape[0], bool) if mask is None else mask.astype(bool)
  count = jnp.maximum(jnp.sum(held), 1).astype(jnp.float32)

  def column(values):
    ranked = jnp.sort(jnp.where(held, values, jnp.inf))  # Rows outside the mask sort last and count for none.
    below = jnp.searchsorted(ranked, values, side='left').astype(jnp.float32)
    up_to = jnp.minimum(jnp.searchsorted(ranked, values, side='right').astype(jnp.float32), count)
    quantile = jnp.clip(0.5 * (below + up_to) / count, 0.5 / count, 1.0 - 0.5 / count)
    return jax.scipy.special.ndtri(quantile)

  return jax.vmap(column, in_axes=1, out_axes=1)(scores.astype(jnp.float32))


def normalise(scores: jax.Array, mask: jax.Array | None = None, method: str = 'rank') -> jax.Array:
  """[N, K] per-round normalisation that puts the candidates' scores on one scale over the rows `mask` holds:
  'rank' (`rank_normalise`) or 'standard' (`standardise`)."""
  if method == 'rank':
    return rank_normalise(scores, mask)
  if method == 'standard':
    return standardise(scores, mask)
  raise ValueError(f'Unknown normalisation {method!r}; use one of {NORMALISATIONS}.')


# --- Scores, relaxed selection and the losses. ---

def _crossing(count: Callable[[jax.Array], jax.Array], target: jax.Array, low: jax.Array, high: jax.Array,
              iterations: int, increasing: bool) -> jax.Array:
  """The x in [low, high] where a monotone count(x) crosses target, by bisection (no gradient); an end of the
  bracket where it does not cross inside it."""

  def halve(_, bracket):
    low, high = bracket
    middle = 0.5 * (low + high)
    crossed = (count(middle) > target) == increasing  # The crossing lies below middle.
    return jnp.where(crossed, low, middle), jnp.where(crossed, middle, high)

  low, high = jax.lax.fori_loop(0, iterations, halve, (low, high))
  return 0.5 * (low + high)


def calibrated_temperature(scores: jax.Array, thresholds: jax.Array, weights: jax.Array, target: jax.Array,
                           iterations: int = 30, sharpest: float = 0.25) -> jax.Array:
  """τ in [sharpest·σ, 10·σ] (σ: the scores' mean std over candidates) at which the relaxed count
  Σ_j Σ_k W_jk sigmoid((s_jk - ϑ_k) / τ) comes closest to target, by bisection on log τ (no gradient).

  As τ shrinks the count tends to the hard count of weighted scores above their thresholds; as τ grows, to B/2. The
  floor keeps SearchNet's gradient (∝ 1/τ) in scale: an unbounded calibration drove τ to ~0 whenever the hard count
  already met the target, and SearchNet collapsed onto one candidate within 10 cycles.
  """
  scores, thresholds, weights = (jax.lax.stop_gradient(x) for x in (scores, thresholds, weights))
  spread = jnp.mean(jnp.std(scores, axis=0)) + 1e-12

  def count(log_tau):
    return jnp.sum(weights * jax.nn.sigmoid((scores - thresholds) / jnp.exp(log_tau)))

  return jnp.exp(_crossing(count, target, jnp.log(spread * sharpest), jnp.log(spread * 10.0), iterations,
                           increasing=True))


def threshold_offset(scores: jax.Array, thresholds: jax.Array, weights: jax.Array, target: jax.Array,
                     temperature: jax.Array, iterations: int = 30) -> jax.Array:
  """δ >= 0 that, added to every threshold, brings the relaxed count Σ_j Σ_k W_jk sigmoid((s_jk - ϑ_k - δ) / τ) to
  target (bisection, no gradient); 0 where the count at δ = 0 is already at most target.

  Needed where τ sits on its floor and the count is still above target: the mixture's thresholds, percentiles of a
  5-component fit to about a hundred score vectors, smooth the tail, so more than q items lie above them (on
  Fashion-MNIST α/q read 1.8-2.5 with τ alone). Scores are normalised per candidate, so one shared δ moves every
  candidate's threshold by the same share of its spread.
  """
  scores, thresholds, weights, temperature = (jax.lax.stop_gradient(x) for x in (scores, thresholds, weights,
                                                                               temperature))
  spread = jnp.mean(jnp.std(scores, axis=0)) + 1e-12

  def count(offset):
    return jnp.sum(weights * jax.nn.sigmoid((scores - thresholds - offset) / temperature))

  offset = _crossing(count, target, jnp.zeros_like(spread), 10.0 * spread, iterations, increasing=False)
  return jnp.where(count(0.0) > target, offset, 0.0)


def calibrated_selection(scores: jax.Array, thresholds: jax.Array, weights: jax.Array, target: jax.Array,
                         config: AutoALConfig) -> tuple[jax.Array, jax.Array]:
  """(thresholds [K], τ) of the relaxed selection: τ per `config.temperature`; calibrated, the thresholds also rise
  by `threshold_offset` where τ's floor leaves the relaxed count above target, so that α = Σ s̄ comes to q."""
  temperature = selection_temperature(scores, thresholds, weights, target, config)
  if config.temperature == 'calibrated':
    thresholds = thresholds + threshold_offset(scores, thresholds, weights, target, temperature)
  return thresholds, temperature


def relaxed_selection(weight_logits: jax.Array, scores: jax.Array, query_fraction: float, rng: jax.Array,
                      config: AutoALConfig) -> tuple[jax.Array, jax.Array]:
  """s̄ [B] and the per-candidate relaxed selections [B, K] from SearchNet's [B, K] outputs and the candidates'
  [B, K] scores (normalised per candidate, `normalise`).

  W = softmax over the K candidates; ϑ_k from the joint mixture (`mixture_thresholds`); per candidate the relaxed
  selection sigmoid((s_k - ϑ_k) / τ); s̄ = Σ_k W_k sigmoid((s_k - ϑ_k) / τ), the weighted, integrated score: an item
  is selected as far as the candidates it is weighted towards would select it. τ per `config.temperature`
  (calibrated: Σ s̄ as close to t·B as τ >= σ/4 allows, the thresholds raised together where that is not close
  enough: `calibrated_selection`).
  """
  weights = jax.nn.softmax(weight_logits, axis=-1)
  thresholds = mixture_thresholds(scores, query_fraction, rng, config)
  thresholds, temperature = calibrated_selection(scores, thresholds, weights, query_fraction * scores.shape[0],
                                                 config)
  per_candidate = jax.nn.sigmoid((scores - thresholds) / temperature)
  return jnp.sum(weights * per_candidate, axis=-1), per_candidate


def selection_temperature(scores: jax.Array, thresholds: jax.Array, weights: jax.Array, target: float,
                          config: AutoALConfig) -> jax.Array:
  """τ per `config.temperature`: calibrated to a relaxed count of `target`, the scores' mean std, or a number."""
  if config.temperature == 'calibrated':
    return calibrated_temperature(scores, thresholds, weights, target)
  if config.temperature == 'std':
    return jax.lax.stop_gradient(jnp.mean(jnp.std(scores, axis=0))) + 1e-12
  return jnp.float32(config.temperature)


def selection_regulariser(selection: jax.Array, query_fraction: float, differentiable: bool = True) -> jax.Array:
  """L_re(t, B) = 1/(1 + exp(0.5·|α - t·B|)) - 0.5: 0 when α, the (soft) count of selected items, is t·B."""
  alpha = (jnp.sum(selection) if differentiable
           else jax.lax.stop_gradient(jnp.sum(selection > 0.5).astype(selection.dtype)))
  return 1.0 / (1.0 + jnp.exp(0.5 * jnp.abs(alpha - query_fraction * selection.shape[0]))) - 0.5


# --- State and the three steps. ---

@struct.dataclass
class SearchBatch:
  """One batch of the simulated unlabelled half; row j of every field is the same example.

  Attributes:
    images: [B, H, W, C].
    labels: [B] int32.
    scores: [B, K] float32, candidate k's score of the example (`jal.query.score`), normalised per candidate
      over the batch.
  """

  images: jax.Array
  labels: jax.Array
  scores: jax.Array


@struct.dataclass
class AutoALState:
  """AutoAL's networks, persisting across rounds.

  Attributes:
    fit: FitNet's parameters, batch statistics and Adam state.
    search: SearchNet's parameters, batch statistics and SGD state.
    loss_module: the loss module's parameters and SGD state (batch_stats empty).
  """

  fit: TrainState
  search: TrainState
  loss_module: TrainState


@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of AutoAL: the three modules and their optimisers (hashable, for jit)."""

  fitnet: ResNet
  searchnet: ResNet
  loss_module: LossModule
  fit_tx: optax.GradientTransformation
  search_tx: optax.GradientTransformation
  loss_module_tx: optax.GradientTransformation
  config: AutoALConfig


@functools.cache
def make_networks(config: AutoALConfig, num_classes: int) -> Networks:
  """FitNet (C outputs), SearchNet (K outputs) of `config.arch`, the loss module, and their optimisers."""
  needs_mc = 'mc' in config.needs
  fit_dropout = config.mc_dropout_rate if needs_mc else 0.0
  fitnet = build_model(config.arch, num_classes, ModelConfig(config.width, dropout_rate=fit_dropout))
  searchnet = build_model(config.arch, len(config.candidates), ModelConfig(config.width))
  decay = optax.add_decayed_weights(config.weight_decay)
  return Networks(
      fitnet, searchnet, LossModule(config.loss_module_dim),
      optax.chain(decay, optax.adam(config.fit_lr)),
      optax.chain(decay, optax.sgd(config.search_lr, momentum=0.9)),
      optax.chain(decay, optax.sgd(config.loss_module_lr, momentum=0.9)),
      config,
  )


def fresh_fitnet(networks: Networks, rng: jax.Array, image_shape: tuple[int, ...]) -> TrainState:
  """A freshly initialised FitNet with a fresh Adam state."""
  variables = init_variables(networks.fitnet, rng, tuple(image_shape))
  return TrainState(jnp.zeros((), jnp.int32), variables['params'], variables['batch_stats'],
                    networks.fit_tx.init(variables['params']))


def init_networks(networks: Networks, rng: jax.Array, image_shape: tuple[int, int, int]) -> AutoALState:
  """Fresh FitNet, SearchNet (its head at zero: uniform candidate weights) and loss module for images of shape
  [H, W, C]."""
  fit_rng, search_rng, module_rng = jax.random.split(rng, 3)

  def fresh(model, tx, key):
    variables = init_variables(model, key, image_shape)
    return TrainState(jnp.zeros((), jnp.int32), variables['params'], variables['batch_stats'],
                      tx.init(variables['params']))

  fit = fresh_fitnet(networks, fit_rng, image_shape)
  search = fresh(networks.searchnet, networks.search_tx, search_rng)
  # SearchNet's K-way head starts at zero: every candidate weighs 1/K for every sample, so what the query does
  # is what SearchNet learned, not a random, seed-dependent weighted vote of its initial head.
  if networks.config.head_init == 'uniform':
    head = jax.tree_util.tree_map(jnp.zeros_like, search.params['head'])
    search_params = {**search.params, 'head': head}
    search = search.replace(params=search_params, opt_state=networks.search_tx.init(search_params))
  stages = networks.searchnet.apply(search.variables, jnp.zeros((2, *image_shape)), train=False,
                                    return_stages=True).stages
  module_params = networks.loss_module.init(module_rng, stages)['params']
  module = TrainState(jnp.zeros((), jnp.int32), module_params, {}, networks.loss_module_tx.init(module_params))
  return AutoALState(fit, search, module)


def _per_sample_loss(networks: Networks, fit: TrainState, images: jax.Array, labels: jax.Array) -> jax.Array:
  """FitNet's [B] cross-entropy in eval mode, detached."""
  logits = networks.fitnet.apply(fit.variables, images, train=False).logits
  return jax.lax.stop_gradient(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


@functools.partial(jax.jit, static_argnames=('networks',))
def fit_step(state: AutoALState, batch: SearchBatch, rng: jax.Array, query_fraction: jax.Array, *,
             networks: Networks) -> tuple[AutoALState, dict]:
  """FitNet: min mean(stop_grad(s̄)·ℓ) + λ·L_re (L_re is constant in FitNet's parameters)."""
  config = networks.config
  logits = networks.searchnet.apply(state.search.variables, batch.images, train=False).logits
  selection, _ = relaxed_selection(logits, batch.scores, query_fraction, rng, config)
  selection = jax.lax.stop_gradient(selection)
  reg = selection_regulariser(selection, query_fraction, config.differentiable_reg)

  def loss_fn(params):
    output, updates = networks.fitnet.apply(
        {'params': params, 'batch_stats': state.fit.batch_stats}, batch.images, train=True,
        rngs={'dropout': rng}, mutable=['batch_stats'])
    losses = optax.softmax_cross_entropy_with_integer_labels(output.logits, batch.labels)
    return jnp.mean(selection * losses) + config.reg_weight * reg, updates['batch_stats']

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.fit.params)
  fit = state.fit.apply_gradients(networks.fit_tx, grads, batch_stats)
  return state.replace(fit=fit), {'autoal/fit_loss': loss}


def search_loss(search_params, search_batch_stats, fit: TrainState, module_params, batch: SearchBatch,
                rng: jax.Array, networks: Networks, query_fraction: float) -> tuple[jax.Array, tuple]:
  """SearchNet's objective: `informativeness_weight` times L_S = -mean(s̄·stop_grad(ℓ)) - λ·L_re, differentiable
  through s̄ and α = Σ s̄, plus `backbone_loss_weight` times the loss module's margin ranking loss on SearchNet's
  stage features (Learning Loss trains the backbone it reads; the module's own parameters are held fixed here)."""
  config = networks.config
  losses = _per_sample_loss(networks, fit, batch.images, batch.labels)
  output, updates = networks.searchnet.apply(
      {'params': search_params, 'batch_stats': search_batch_stats}, batch.images, train=True,
      return_stages=True, mutable=['batch_stats'])
  selection, _ = relaxed_selection(output.logits, batch.scores, query_fraction, rng, config)
  reg = selection_regulariser(selection, query_fraction, config.differentiable_reg)
  informativeness = -jnp.mean(selection * losses) - config.reg_weight * reg
  ranking = 0.0
  if config.backbone_loss_weight > 0:
    predicted = networks.loss_module.apply({'params': jax.lax.stop_gradient(module_params)}, output.stages)
    ranking = margin_ranking_loss(predicted, losses, config.loss_margin)
  loss = config.informativeness_weight * informativeness + config.backbone_loss_weight * ranking
  return loss, (updates['batch_stats'], jnp.sum(selection), reg)


@functools.partial(jax.jit, static_argnames=('networks',))
def search_step(state: AutoALState, batch: SearchBatch, rng: jax.Array, query_fraction: jax.Array, *,
                networks: Networks) -> tuple[AutoALState, dict]:
  """SearchNet: one SGD step on its objective (`search_loss`); its optimiser state is stepped here only."""
  (loss, (batch_stats, alpha, reg)), grads = jax.value_and_grad(search_loss, has_aux=True)(
      state.search.params, state.search.batch_stats, state.fit, state.loss_module.params, batch, rng, networks,
      query_fraction)
  search = state.search.apply_gradients(networks.search_tx, grads, batch_stats)
  return state.replace(search=search), {'autoal/search_loss': loss, 'autoal/alpha': alpha, 'autoal/reg': reg}


@functools.partial(jax.jit, static_argnames=('networks',))
def loss_module_step(state: AutoALState, batch: SearchBatch, rng: jax.Array, *, networks: Networks
                     ) -> tuple[AutoALState, dict]:
  """The loss module alone: margin ranking loss of its predicted loss on SearchNet's (fixed) stage features
  against FitNet's detached per-sample loss. SearchNet's backbone learns from this loss in `search_step`."""
  del rng
  config = networks.config
  losses = _per_sample_loss(networks, state.fit, batch.images, batch.labels)
  stages = networks.searchnet.apply(state.search.variables, batch.images, train=False, return_stages=True).stages
  stages = jax.lax.stop_gradient(stages)

  def loss_fn(module_params):
    predicted = networks.loss_module.apply({'params': module_params}, stages)
    return margin_ranking_loss(predicted, losses, config.loss_margin)

  loss, module_grads = jax.value_and_grad(loss_fn)(state.loss_module.params)
  module = state.loss_module.apply_gradients(networks.loss_module_tx, module_grads, {})
  return state.replace(loss_module=module), {'autoal/ranking_loss': loss}


_pretrain_step = jax.jit(train_step, static_argnames=('model', 'tx', 'augment_config'))


# --- Candidate marks, the per-round driver, and the query. ---

def candidate_scores(inputs: query_lib.QueryInputs, candidates: Sequence[str], budget: int, rng: jax.Array,
                     method: str = 'rank') -> np.ndarray:
  """[N, K] float32: each candidate's per-item score (`jal.query.score`; `budget` sets k-means' centres),
  normalised over the unlabelled items (`normalise` by `method`)."""
  columns = [query_lib.score(name, inputs, budget, jax.random.fold_in(rng, k)) for k, name in enumerate(candidates)]
  return np.asarray(normalise(jnp.stack(columns, axis=1).astype(jnp.float32), inputs.unlabeled_mask, method))


def top_sets(scores: np.ndarray, unlabeled_mask: np.ndarray, budget: int) -> np.ndarray:
  """[N, K] bool: each candidate's own query, the top `budget` unlabelled items of its score."""
  picked = np.zeros(scores.shape, bool)
  for k in range(scores.shape[1]):
    picked[np.asarray(query_lib.top_scores(jnp.asarray(scores[:, k]), jnp.asarray(unlabeled_mask), budget)), k] = True
  return picked


def candidate_inputs(config: AutoALConfig, model: ResNet, variables: dict, images: np.ndarray,
                     unlabeled_mask: np.ndarray, labeled_mask: np.ndarray, rng: jax.Array
                     ) -> query_lib.QueryInputs:
  """What the candidates read from `model` over `images`; MC passes use the model's dropout rate, or
  `config.mc_dropout_rate` for a model trained without the dropout slot."""
  spec = query_lib.QueryStrategy('autoal', None, config.needs - {'mc'} | {'probs', 'embeddings'}, '')
  inputs = query_lib.pool_inputs(spec, model, variables, images, unlabeled_mask, labeled_mask, rng)
  if 'mc' in config.needs:
    rate = model.dropout_rate if 0.0 < model.dropout_rate < 1.0 else config.mc_dropout_rate
    inputs = inputs.replace(mc=query_lib.mc_dropout_stats(model, variables, inputs.embeddings, config.mc_passes,
                                                          rng, rate))
  return inputs


def make_batches(networks: Networks, state: AutoALState, images: np.ndarray, labels: np.ndarray,
                 indices: np.ndarray, size: int, count: int, rng: jax.Array) -> list[SearchBatch]:
  """Cuts the simulated unlabelled items into fixed batches of `size` (the last one topped up from the start) and
  scores each batch per candidate from FitNet's outputs on that batch (`count`, the simulated query's size,
  sets k-means' centres; `AutoALConfig.batch_shape`)."""
  config = networks.config
  order = np.asarray(jax.random.permutation(rng, indices))
  num_batches = -(-len(order) // size)
  order = np.concatenate([order, order[:num_batches * size - len(order)]])
  batches = []
  for i, rows in enumerate(order.reshape(num_batches, size)):
    key = jax.random.fold_in(rng, i)
    inputs = candidate_inputs(config, networks.fitnet, state.fit.variables, images[rows], np.ones(size, bool),
                              np.zeros(size, bool), key)
    scores = candidate_scores(inputs, config.candidates, count, jax.random.fold_in(key, 1), config.normalise)
    batches.append(SearchBatch(jnp.asarray(images[rows]), jnp.asarray(labels[rows], jnp.int32),
                               jnp.asarray(scores)))
  return batches


def search(networks: Networks, state: AutoALState, images: np.ndarray, labels: np.ndarray,
           labeled_mask: np.ndarray, query_fraction: float, rng: jax.Array, query_size: int
           ) -> tuple[AutoALState, dict]:
  """One round of AutoAL's search on the labelled set: split L 50/50, pre-train a fresh FitNet on one half, then
  cycle fit_step, search_step and loss_module_step over fixed batches of the other half.

  FitNet starts fresh each round (SearchNet and the loss module persist): the split is redrawn every round, and a
  FitNet kept from the last round would have trained on items that now play "unlabelled", so its losses there, the
  reward, would be those of items it fitted. Scores and losses of the simulated unlabelled half are those of a
  FitNet that never saw it.

  Args:
    images: [N, H, W, C] pool images; labels: [N] int (only labelled entries are read).
    labeled_mask: [N] bool, L (at least 4 items).
    query_fraction: t = b / |U| of the real query; query_size: its b.

  Returns:
    The updated networks and the last cycle's scalars ('autoal/...').
  """
  config = networks.config
  labeled = np.flatnonzero(labeled_mask)
  if len(labeled) < 4:
    raise ValueError(f'AutoAL splits the labelled set in two and needs at least 4 labels, got {len(labeled)}.')
  split_rng, pretrain_rng, batch_rng, cycle_rng, init_rng = jax.random.split(rng, 5)
  shuffled = np.asarray(jax.random.permutation(split_rng, labeled))
  fit_half, search_half = shuffled[:len(shuffled) // 2], shuffled[len(shuffled) // 2:]

  size, count = config.batch_shape(len(search_half), query_size, query_fraction)
  fit_images, fit_labels = jnp.asarray(images[fit_half]), jnp.asarray(labels[fit_half], jnp.int32)
  pretrain_size = min(size, len(fit_half))
  fit = fresh_fitnet(networks, init_rng, images.shape[1:])
  for step in range(config.pretrain_steps):
    key = jax.random.fold_in(pretrain_rng, step)
    rows = jax.random.choice(key, len(fit_half), (pretrain_size,), replace=False)
    fit, _ = _pretrain_step(fit, fit_images[rows], fit_labels[rows], key, model=networks.fitnet,
                            tx=networks.fit_tx, augment_config=AugmentConfig())
  state = state.replace(fit=fit)

  batches = make_batches(networks, state, images, labels, search_half, size, count, batch_rng)
  query_fraction = jnp.float32(count / size)  # The simulated query selects q of B.
  metrics, started = {}, time.perf_counter()
  for cycle in range(config.cycles):
    batch = batches[cycle % len(batches)]
    keys = jax.random.split(jax.random.fold_in(cycle_rng, cycle), 3)
    state, fit_metrics = fit_step(state, batch, keys[0], query_fraction, networks=networks)
    state, search_metrics = search_step(state, batch, keys[1], query_fraction, networks=networks)
    state, module_metrics = loss_module_step(state, batch, keys[2], networks=networks)
    metrics = {**fit_metrics, **search_metrics, **module_metrics}
    with progress.task('AutoAL search'):
      if progress.due(cycle + 1, config.cycles):  # Only then are the cycle's scalars fetched from the device.
        progress.update(cycle + 1, config.cycles, {k.split('/')[-1]: float(v) for k, v in metrics.items()},
                        'cycle', time.perf_counter() - started)
  metrics.update({'autoal/batch_size': size, 'autoal/marks': count})
  metrics = {k: float(v) for k, v in metrics.items()}
  if 'autoal/alpha' in metrics:  # The relaxed count over the simulated query's size: 1 when calibrated.
    metrics['autoal/alpha_over_q'] = metrics['autoal/alpha'] / count
  return state, metrics


def strategy_weights(networks: Networks, state: AutoALState, images: np.ndarray, batch_size: int = 1024
                     ) -> np.ndarray:
  """[N, K] SearchNet's softmax weights of the candidates for every image."""
  logits = predict(networks.searchnet, state.search.variables, images, batch_size=batch_size).logits
  return np.asarray(jax.nn.softmax(logits, axis=-1))


def integrated_scores(weights: np.ndarray, scores: np.ndarray, unlabeled_mask: np.ndarray, budget: int,
                      rng: jax.Array, config: AutoALConfig) -> np.ndarray:
  """[N] Σ_k W_k sigmoid((s_k - ϑ_k) / τ) over the pool: the relaxed selection of the search, with the thresholds
  and τ fitted to (up to `config.threshold_items` of) the unlabelled items at the real query's fraction."""
  unlabeled = np.flatnonzero(unlabeled_mask)
  fit_rng, threshold_rng = jax.random.split(rng)
  rows = unlabeled
  if len(rows) > config.threshold_items:
    rows = np.sort(np.asarray(jax.random.choice(fit_rng, rows, (config.threshold_items,), replace=False)))
  fraction = budget / len(unlabeled)
  sample_scores, sample_weights = jnp.asarray(scores[rows]), jnp.asarray(weights[rows])
  thresholds = mixture_thresholds(sample_scores, fraction, threshold_rng, config)
  thresholds, temperature = calibrated_selection(sample_scores, thresholds, sample_weights, fraction * len(rows),
                                                 config)
  per_candidate = jax.nn.sigmoid((jnp.asarray(scores) - thresholds) / temperature)
  return np.asarray(jnp.sum(jnp.asarray(weights) * per_candidate, axis=-1))


def query_metrics(weights: np.ndarray, scores: np.ndarray, unlabeled_mask: np.ndarray, picks: np.ndarray,
                  budget: int, candidates: Sequence[str]) -> dict[str, float]:
  """What a query shows of per-sample choice: per candidate its mean weight ('autoal/weight/<k>'), the share of
  the picks in its own query ('autoal/chosen_by/<k>'); the weights' spread over items ('autoal/weight_spread':
  the std over unlabelled items, mean over candidates); the share of picks outside the leading candidate's own
  query ('autoal/outside_leader'; the leader has the largest mean weight)."""
  own = top_sets(scores, unlabeled_mask, budget)
  mean_weights = weights[unlabeled_mask].mean(0)
  out = {'autoal/weight_spread': float(weights[unlabeled_mask].std(0).mean()),
         'autoal/outside_leader': float(1.0 - own[picks, int(np.argmax(mean_weights))].mean())}
  for k, name in enumerate(candidates):
    out[f'autoal/weight/{name}'] = float(mean_weights[k])
    out[f'autoal/chosen_by/{name}'] = float(own[picks, k].mean())
  return out


@dataclasses.dataclass(frozen=True)
class AutoAL:
  """AutoAL as a `jal.loop.Querier`: search on L, then query the pool. Its networks live in the loop state."""

  config: AutoALConfig = AutoALConfig()
  name: str = 'autoal'

  @property
  def needs(self) -> frozenset[str]:
    return self.config.needs

  def state_template(self, pool: Dataset) -> AutoALState:
    """The abstract (shapes only) state of the networks for `pool`, to restore a checkpoint into."""
    networks = make_networks(self.config, pool.num_classes)
    return jax.eval_shape(lambda: init_networks(networks, jax.random.key(0), pool.image_shape))

  def query(self, context: query_lib.QueryContext, rng: jax.Array) -> tuple[np.ndarray, dict, AutoALState]:
    """Searches on the labelled set, scores the unlabelled pool per candidate from the task model's outputs, and
    labels the top `budget` of the integrated score (`integrated_scores`) under SearchNet's per-item weights."""
    config = self.config
    pool, budget = context.pool, context.budget
    networks = make_networks(config, pool.num_classes)
    init_rng, search_rng, score_rng, select_rng = jax.random.split(rng, 4)
    autoal_state = context.state
    if autoal_state is None:
      autoal_state = init_networks(networks, init_rng, pool.image_shape)
    unlabeled = context.unlabeled_mask
    query_fraction = budget / int(unlabeled.sum())

    start = time.perf_counter()
    autoal_state, metrics = search(networks, autoal_state, pool.images, np.maximum(context.labels, 0),
                                   context.labeled_mask, query_fraction, search_rng, budget)
    jax.block_until_ready(autoal_state)
    search_seconds = time.perf_counter() - start

    start = time.perf_counter()
    inputs = candidate_inputs(config, context.model, context.variables, pool.images, unlabeled,
                              context.labeled_mask, score_rng)
    scores = candidate_scores(inputs, config.candidates, budget, select_rng, config.normalise)
    weights = strategy_weights(networks, autoal_state, pool.images)
    score_seconds = time.perf_counter() - start

    start = time.perf_counter()
    integrated = integrated_scores(weights, scores, unlabeled, budget, jax.random.fold_in(select_rng, 1), config)
    indices = np.asarray(query_lib.top_scores(jnp.asarray(integrated), jnp.asarray(unlabeled), budget))
    select_seconds = time.perf_counter() - start

    metrics.update({'time/search': search_seconds, 'time/score': score_seconds, 'time/select': select_seconds})
    metrics.update(query_metrics(weights, scores, unlabeled, indices, budget, config.candidates))
    return indices, metrics, autoal_state
