"""ALBL, active learning by learning (Hsu & Lin, AAAI 2015): a bandit over candidate query strategies.

The baseline AutoAL names as prior work: the candidates are the arms of a bandit that learns from a reward which
strategy to follow, without gradients. Batch form, as jal's loop queries a batch a round:

  * each round one candidate is drawn from EXP3's distribution p = (1 - γ) w / Σw + γ / K (Auer et al., 2002);
    the batch is that candidate's own query of b - m items plus m items drawn uniformly from the rest of the pool
    (ALBL's uniform expert, `random_share` of the batch);
  * the reward is ALBL's accuracy estimate, taken where it is unbiased for a deep network: the task model's
    accuracy on the m uniform items of its own round, predicted before they were labelled (a network fits its
    training set, so ALBL's importance-weighted accuracy on queried items it trained on would read ~1 for every
    arm). The model of round t trained on round t - 1's batch, so that reward, known once the uniform items'
    labels arrive at round t + 1, is credited to the candidate drawn at round t - 1: a delay of two rounds;
  * the credited arm's weight grows by exp(γ r / (p_a K)) (EXP3's importance-weighted update).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jal import query as query_lib


@dataclasses.dataclass(frozen=True)
class ALBLConfig:
  """ALBL's settings.

  Attributes:
    candidates: registered query strategies, the bandit's arms (any but 'random', which is the uniform share).
    random_share: m / b, the share of each batch drawn uniformly from the pool (at least one item): the items
      the reward is measured on.
    exploration: EXP3's γ in (0, 1]; None: Auer et al.'s choice for `horizon` rounds,
      min(1, sqrt(K ln K / ((e - 1) horizon))).
    horizon: the number of queries the bandit plans for (EXP3's T; the default γ depends on it).
    mc_passes: T passes for MC-dropout candidates.
    mc_dropout_rate: dropout of the MC passes (a query-time operation, as for every strategy).
  """

  candidates: tuple[str, ...] = ('least_confidence', 'margin', 'entropy', 'kmeans', 'bald', 'variation_ratio',
                                 'mean_std')
  random_share: float = 0.1
  exploration: float | None = None
  horizon: int = 5
  mc_passes: int = 10
  mc_dropout_rate: float = 0.5

  def __post_init__(self):
    query_lib.check_candidates(self.candidates, 'ALBL',
                               "the uniform share of every batch (random_share) is ALBL's uniform expert")
    if not 0.0 < self.random_share < 1.0:
      raise ValueError(f'random_share must be in (0, 1), got {self.random_share}.')
    if self.exploration is not None and not 0.0 < self.exploration <= 1.0:
      raise ValueError(f'exploration (EXP3 gamma) must be in (0, 1] or None, got {self.exploration}.')
    if self.horizon < 1 or self.mc_passes < 1 or not 0.0 < self.mc_dropout_rate < 1.0:
      raise ValueError('ALBLConfig needs horizon >= 1, mc_passes >= 1 and mc_dropout_rate in (0, 1); got '
                       f'{self.horizon}, {self.mc_passes}, {self.mc_dropout_rate}.')

  @property
  def gamma(self) -> float:
    """EXP3's exploration γ: the configured one, or Auer et al.'s for `horizon` rounds."""
    if self.exploration is not None:
      return self.exploration
    k = len(self.candidates)
    return min(1.0, math.sqrt(k * math.log(k) / ((math.e - 1.0) * self.horizon))) if k > 1 else 1.0

  @property
  def needs(self) -> frozenset[str]:
    """The model outputs the candidates read, and the probabilities the reward reads."""
    return frozenset({'probs'}).union(*(query_lib.get_query(name).needs for name in self.candidates))


@struct.dataclass
class BanditState:
  """ALBL's state between rounds (fixed shapes, so a checkpoint restores it).

  Attributes:
    log_weights: [K] EXP3's log-weights of the candidates.
    arms: [2] the candidates drawn at the last two rounds, newest first (-1: none).
    arm_probs: [2] the probabilities they were drawn with.
    pending: [N] int32, the last model's predicted class on the uniform items of its batch, -1 elsewhere.
  """

  log_weights: jax.Array
  arms: jax.Array
  arm_probs: jax.Array
  pending: jax.Array


def init_state(num_candidates: int, num_items: int) -> BanditState:
  """Uniform weights, no arm drawn, nothing pending."""
  return BanditState(jnp.zeros((num_candidates,), jnp.float32), jnp.full((2,), -1, jnp.int32),
                     jnp.zeros((2,), jnp.float32), jnp.full((num_items,), -1, jnp.int32))


def arm_probabilities(log_weights: jax.Array, gamma: float) -> jax.Array:
  """[K] EXP3's distribution: (1 - γ) softmax(log w) + γ / K."""
  return (1.0 - gamma) * jax.nn.softmax(log_weights) + gamma / log_weights.shape[0]


def pending_reward(pending: np.ndarray, labels: np.ndarray) -> float | None:
  """The accuracy of the predictions in `pending` ([N], -1 where none) against `labels` ([N], -1 unknown) over the
  items whose label is now known; None when none is."""
  known = (pending >= 0) & (labels >= 0)
  if not known.any():
    return None
  return float(np.mean(pending[known] == labels[known]))


def credit(log_weights: jax.Array, arm: int, arm_prob: float, reward: float, gamma: float) -> jax.Array:
  """EXP3's update: the credited arm's log-weight grows by γ r̂ / K, r̂ = r / p_arm (importance-weighted)."""
  return log_weights.at[arm].add(gamma * (reward / arm_prob) / log_weights.shape[0])


def uniform_items(unlabeled_mask: np.ndarray, taken: np.ndarray, count: int, rng: jax.Array) -> np.ndarray:
  """`count` items drawn uniformly, without replacement, from the unlabelled items not in `taken`."""
  free = unlabeled_mask.copy()
  free[taken] = False
  return np.asarray(jax.random.choice(rng, np.flatnonzero(free), (count,), replace=False))


@dataclasses.dataclass(frozen=True)
class ALBL:
  """ALBL as a `jal.loop.Querier` (see the module docstring). Its bandit lives in the loop state."""

  config: ALBLConfig = ALBLConfig()
  name: str = 'albl'

  @property
  def needs(self) -> frozenset[str]:
    return self.config.needs

  def state_template(self, pool) -> BanditState:
    """The abstract (shapes only) state for `pool`, to restore a checkpoint into."""
    return jax.eval_shape(lambda: init_state(len(self.config.candidates), len(pool.images)))

  def query(self, context: query_lib.QueryContext, rng: jax.Array) -> tuple[np.ndarray, dict, BanditState]:
    """Credits the arm of two rounds ago with the reward now known, draws this round's arm, and labels its query
    of b - m items plus m uniform items (whose predictions it keeps for the next reward)."""
    config, budget = self.config, context.budget
    candidates: Sequence[str] = config.candidates
    unlabeled = np.asarray(context.unlabeled_mask)
    labels = np.asarray(context.labels)
    state = context.state if context.state is not None else init_state(len(candidates), len(unlabeled))
    gamma = config.gamma
    metrics: dict[str, float] = {}

    reward = pending_reward(np.asarray(state.pending), labels)
    older_arm = int(state.arms[1])
    log_weights = state.log_weights
    if reward is not None:
      metrics['albl/reward'] = reward
      if older_arm >= 0:
        log_weights = credit(log_weights, older_arm, float(state.arm_probs[1]), reward, gamma)

    probs = np.asarray(arm_probabilities(log_weights, gamma), np.float64)
    draw_rng, score_rng, select_rng, random_rng = jax.random.split(rng, 4)
    arm = int(jax.random.choice(draw_rng, len(candidates), p=jnp.asarray(probs / probs.sum())))

    start = time.perf_counter()
    spec = query_lib.QueryStrategy('albl', None, config.needs - {'mc'} | {'probs'}, '')
    inputs = query_lib.pool_inputs(spec, context.model, context.variables, context.pool.images, unlabeled,
                                   np.asarray(context.labeled_mask), score_rng)
    if 'mc' in config.needs:
      inputs = inputs.replace(mc=query_lib.mc_dropout_stats(context.model, context.variables, inputs.embeddings,
                                                             config.mc_passes, score_rng, config.mc_dropout_rate))
    score_seconds = time.perf_counter() - start

    start = time.perf_counter()
    num_random = min(budget, max(1, round(config.random_share * budget)))
    chosen = (query_lib.select(candidates[arm], inputs, budget - num_random, select_rng)
              if budget > num_random else np.zeros((0,), np.int32))
    uniform = uniform_items(unlabeled, chosen, num_random, random_rng)
    indices = np.concatenate([chosen, uniform]).astype(np.int32)
    predicted = np.asarray(jnp.argmax(inputs.probs[jnp.asarray(uniform)], axis=-1), np.int32)
    pending = np.full(len(unlabeled), -1, np.int32)
    pending[uniform] = predicted
    select_seconds = time.perf_counter() - start

    new_state = BanditState(log_weights, jnp.asarray([arm, int(state.arms[0])], jnp.int32),
                            jnp.asarray([probs[arm], float(state.arm_probs[0])], jnp.float32), jnp.asarray(pending))
    metrics.update({'time/score': score_seconds, 'time/select': select_seconds, 'albl/gamma': gamma,
                    'albl/random_items': float(num_random)})
    for k, name in enumerate(candidates):
      metrics[f'albl/p/{name}'] = float(probs[k])
      metrics[f'albl/chosen/{name}'] = float(k == arm)
    return indices, metrics, new_state
