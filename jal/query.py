"""Query strategies: jitted kernels that pick which unlabelled pool items to label next (SPEC §4).

One calling convention for every strategy:

    indices = strategy(inputs: QueryInputs, budget: int, rng) -> [budget] int32

`QueryInputs` holds the model's outputs over the whole pool (probabilities, embeddings, MC-dropout statistics)
and two fixed-size masks, so shapes never depend on the round. Every selection is `budget` distinct unlabelled
indices, deterministic for a given key, ties broken by the lower index (`lax.top_k` is stable). `select` is
the checked entry point: it refuses a budget larger than the unlabelled pool before anything runs.

Strategies (registry `QUERIES`):
  random, least_confidence (softmax response), margin, entropy         from probabilities
  mc_variance (active-iNAS), bald, variation_ratio, mean_std           from T stochastic passes (MC-dropout)
  coreset (greedy k-center), kmeans, badge                             from embeddings (+ probabilities)
A user strategy is a plain function with the same signature, registered with `register_query`.

Every built-in strategy also has a per-item score, `score(name, inputs, budget, rng) -> [N]` (higher: wanted more):
the score-based ones select its top `budget`; for coreset, k-means and BADGE, which select in order, it is the
criterion of their first pick. Methods that weigh strategies per item (AutoAL) read these.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

_EPS = 1e-12


@struct.dataclass
class MCDropoutStats:
  """Sufficient statistics of T stochastic passes: what every MC-dropout score needs, in O(N*C) memory.

  Attributes:
    mean_probs: [N, C] E_t p_t.
    mean_sq_probs: [N, C] E_t p_t^2.
    mean_entropy: [N] E_t H(p_t).
  """

  mean_probs: jax.Array
  mean_sq_probs: jax.Array
  mean_entropy: jax.Array


@struct.dataclass
class QueryInputs:
  """What strategies read. Only the fields a strategy `needs` must be set.

  Attributes:
    unlabeled_mask: [N] bool, the items that may be selected.
    labeled_mask: [N] bool, the labelled set L (coreset measures distances to it).
    probs: [N, C] softmax outputs of the deterministic (eval-mode) model.
    embeddings: [N, D] pooled features.
    mc: MC-dropout statistics over T passes.
    predicted_loss: [N] a loss-predicting model's predicted loss (`jal.models.ModelConfig.loss_prediction`).
  """

  unlabeled_mask: jax.Array
  labeled_mask: jax.Array
  probs: jax.Array | None = None
  embeddings: jax.Array | None = None
  mc: MCDropoutStats | None = None
  predicted_loss: jax.Array | None = None


QueryFn = Callable[[QueryInputs, int, jax.Array], jax.Array]
# (inputs, budget, rng) -> [N] float32: how much a strategy wants each item, higher first.
ScoreFn = Callable[[QueryInputs, int, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class QueryStrategy:
  """A registered strategy: its kernel, which `QueryInputs` fields it reads, and its per-item score (a continuous
  informativeness for methods that weigh strategies per item, AutoAL's mixture; None when it has none)."""

  name: str
  fn: QueryFn
  needs: frozenset[str]
  description: str
  score: ScoreFn | None = None


QUERIES: dict[str, QueryStrategy] = {}


def register_query(name: str, fn: QueryFn | None, needs: tuple[str, ...] = (), description: str = '',
                   score: ScoreFn | None = None) -> None:
  """Registers a user strategy `fn(inputs, budget, rng) -> [budget] int32 indices` under `name`.

  `needs` lists the QueryInputs fields it reads ('probs', 'embeddings', 'mc'), so the loop computes only those.
  `score(inputs, budget, rng) -> [N]` is its per-item score; with `fn` None the query is the top `budget` of it.
  """
  unknown = set(needs) - {'probs', 'embeddings', 'mc', 'predicted_loss'}
  if unknown:
    raise ValueError(f"Unknown needs {sorted(unknown)}; valid: 'probs', 'embeddings', 'mc', 'predicted_loss'.")
  if fn is None and score is None:
    raise ValueError(f'Strategy {name!r} needs a query function or a score.')
  fn = fn or top_of(score)
  QUERIES[name] = QueryStrategy(name, fn, frozenset(needs), description or (fn.__doc__ or '').split('\n')[0],
                                score)


BALANCED = '+balanced'  # '<strategy>+balanced': its score, taken class by class (`balanced_top`).


def get_query(name: str) -> QueryStrategy:
  """The registered strategy `name`, or for '<name>+balanced' its class-balanced variant (`balanced`); a
  ValueError lists the valid names."""
  if name.endswith(BALANCED) and name.removesuffix(BALANCED) in QUERIES:
    return balanced(QUERIES[name.removesuffix(BALANCED)])
  if name not in QUERIES:
    raise ValueError(f"Unknown query strategy {name!r}; registered: {sorted(QUERIES)} (any with a score also as "
                     f"'<name>{BALANCED}').")
  return QUERIES[name]


def check_candidates(candidates, method: str, random_role: str) -> None:
  """Refuses the candidate strategies of a method that chooses among them (AutoAL, ALBL) when the list is empty,
  names an unknown strategy, repeats one, or holds 'random' (whose `random_role` in `method` says why not)."""
  if not candidates:
    raise ValueError(f'{method} needs at least one candidate strategy.')
  for name in candidates:
    get_query(name)
  if 'random' in candidates:
    raise ValueError(f"'random' cannot be a {method} candidate: {random_role}.")
  if len(set(candidates)) != len(candidates):
    raise ValueError(f'{method} candidates repeat a strategy: {tuple(candidates)}.')


def balanced_top(scores: jax.Array, predicted: jax.Array, unlabeled_mask: jax.Array, budget: int,
                 num_classes: int) -> jax.Array:
  """[budget] indices: the `budget // C` highest-scoring unlabelled items of each predicted class, the slots a
  class cannot fill (and the remainder) going to the highest-scoring items left, whatever their class; ties go to
  the lower index. An imbalanced pool's rare classes get their share of the query.

  Args:
    scores: [N] informativeness (higher: wanted more).
    predicted: [N] int, each item's predicted class.
    unlabeled_mask: [N] bool.
  """
  n = scores.shape[0]
  scores = scores.astype(jnp.float32)
  group = jnp.where(unlabeled_mask, predicted, num_classes)  # Labelled items in a bucket of their own.
  order = jnp.lexsort((jnp.arange(n), -scores, group))  # By class, then score (highest first), then index.
  starts = jnp.searchsorted(group[order], jnp.arange(num_classes + 1))
  rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32) - starts[group[order]].astype(jnp.int32))
  first = unlabeled_mask & (rank < budget // num_classes)
  picks = jnp.lexsort((jnp.arange(n), -scores, ~first, ~unlabeled_mask))  # Quota first, then the best left.
  return picks[:budget].astype(jnp.int32)


@functools.cache
def balanced(strategy: QueryStrategy) -> QueryStrategy:
  """`strategy`'s class-balanced variant: its per-item score, selected by `balanced_top` over the model's
  predicted classes (so it also needs the probabilities)."""
  if strategy.score is None:
    raise ValueError(f'Query strategy {strategy.name!r} has no per-item score to balance; register it with score=.')
  score_fn = strategy.score

  def query(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
    predicted = jnp.argmax(inputs.probs, -1)
    return balanced_top(score_fn(inputs, budget, rng), predicted, inputs.unlabeled_mask, budget,
                        inputs.probs.shape[-1])

  query.__name__ = strategy.name + BALANCED
  return QueryStrategy(strategy.name + BALANCED, query, strategy.needs | {'probs'},
                       f'{strategy.description} (class-balanced: the top of each predicted class)', score_fn)


def top_scores(scores: jax.Array, unlabeled_mask: jax.Array, budget: int) -> jax.Array:
  """Indices of the `budget` highest [N] scores among unlabelled items; ties go to the lower index."""
  masked = jnp.where(unlabeled_mask, scores.astype(jnp.float32), -jnp.inf)
  return jax.lax.top_k(masked, budget)[1].astype(jnp.int32)


def top_of(score: ScoreFn) -> QueryFn:
  """The query that takes the `budget` highest of `score` among unlabelled items."""

  def query(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
    return top_scores(score(inputs, budget, rng), inputs.unlabeled_mask, budget)

  query.__doc__, query.__name__ = score.__doc__, score.__name__
  return query


def entropy(probs: jax.Array) -> jax.Array:
  """Shannon entropy (nats) over the last axis."""
  return -jnp.sum(probs * jnp.log(probs + _EPS), axis=-1)


# --- Scores from one deterministic pass (each strategy is the top `budget` of its score). ---

def random_score(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Uniformly random unlabelled items (the passive baseline)."""
  del budget
  return jax.random.uniform(rng, inputs.unlabeled_mask.shape)


def least_confidence(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Softmax response: the lowest max_c p_c."""
  del budget, rng
  return -jnp.max(inputs.probs, axis=-1)


def margin(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """The smallest gap between the two most probable classes, p(1) - p(2)."""
  del budget, rng
  top2 = jax.lax.top_k(inputs.probs, 2)[0]
  return -(top2[:, 0] - top2[:, 1])


def entropy_query(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """The highest predictive entropy H(p)."""
  del budget, rng
  return entropy(inputs.probs)


# --- MC-dropout scores (T stochastic passes through the dropout slot). ---

def mc_variance(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """active-iNAS's MC-dropout: the highest variance over passes of p_t(ĉ), ĉ the deterministic prediction."""
  del budget, rng
  predicted = jnp.argmax(inputs.probs, axis=-1)[:, None]
  mean = jnp.take_along_axis(inputs.mc.mean_probs, predicted, axis=-1)[:, 0]
  mean_sq = jnp.take_along_axis(inputs.mc.mean_sq_probs, predicted, axis=-1)[:, 0]
  return mean_sq - mean**2


def bald(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """BALD: the highest mutual information H(E_t p_t) - E_t H(p_t)."""
  del budget, rng
  return entropy(inputs.mc.mean_probs) - inputs.mc.mean_entropy


def variation_ratio(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Variation ratio: the highest 1 - max_c E_t p_t,c."""
  del budget, rng
  return 1.0 - jnp.max(inputs.mc.mean_probs, axis=-1)


def mean_std(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Mean-STD: the highest mean_c std_t p_t,c."""
  del budget, rng
  variance = jnp.maximum(inputs.mc.mean_sq_probs - inputs.mc.mean_probs**2, 0.0)
  return jnp.mean(jnp.sqrt(variance), axis=-1)


# --- Embedding-space strategies. ---

def _squared_distances(points: jax.Array, centre: jax.Array, sq_norms: jax.Array) -> jax.Array:
  """[N] squared Euclidean distances of [N, D] points (squared norms [N]) to one [D] centre, by one matvec."""
  return jnp.maximum(sq_norms + jnp.sum(centre**2) - 2.0 * (points @ centre), 0.0)


def min_squared_distances(
    points: jax.Array, reference_mask: jax.Array, block_size: int | None = None
) -> jax.Array:
  """[N] squared distance of each point to the nearest point where `reference_mask` holds (inf if none).

  Streams the reference set in blocks of `block_size` (default: 256, fewer for large N so that a block's
  N x block distances stay within 2^24 floats): O(N * |ref|) time, O(N * block_size) memory, and never an N x N
  matrix. The number of blocks follows the mask's count, so a small labelled set costs little.
  """
  n = points.shape[0]
  if block_size is None:
    block_size = max(1, min(256, (1 << 24) // max(n, 1)))  # 1M points: blocks of 16 (64 MiB), not 256 (1 GiB).
  block_size = min(block_size, n)
  num_blocks = -(-n // block_size)
  order = jnp.nonzero(reference_mask, size=num_blocks * block_size, fill_value=0)[0]
  count = jnp.sum(reference_mask)
  sq_norms = jnp.sum(points**2, axis=-1)

  def body(state):
    block, best = state
    idx = jax.lax.dynamic_slice_in_dim(order, block * block_size, block_size)
    valid = block * block_size + jnp.arange(block_size) < count
    ref = points[idx]
    d = sq_norms[:, None] + sq_norms[idx][None, :] - 2.0 * points @ ref.T
    d = jnp.where(valid[None, :], jnp.maximum(d, 0.0), jnp.inf)
    return block + 1, jnp.minimum(best, jnp.min(d, axis=1))

  def cond(state):
    return state[0] * block_size < count

  return jax.lax.while_loop(cond, body, (jnp.int32(0), jnp.full((n,), jnp.inf, points.dtype)))[1]


def coreset(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Greedy k-center (Sener & Savarese 2018) on the embeddings: repeatedly the unlabelled point farthest from L
  and the points already chosen. O(N * (|L| + b)) time, O(N) memory."""
  del rng
  points = inputs.embeddings.astype(jnp.float32)
  sq_norms = jnp.sum(points**2, axis=-1)
  distances = min_squared_distances(points, inputs.labeled_mask)

  def pick(i, state):
    distances, chosen = state
    index = jnp.argmax(jnp.where(inputs.unlabeled_mask, distances, -1.0)).astype(jnp.int32)
    # |x|^2 + |c|^2 - 2 x.c: one matvec per pick and no [N, D] temporary (60k x 512, b = 1000: 30 s -> 2.9 s).
    distances = jnp.minimum(distances, _squared_distances(points, points[index], sq_norms))
    distances = distances.at[index].set(-1.0)  # Chosen: never again, even with duplicate embeddings.
    return distances, chosen.at[i].set(index)

  return jax.lax.fori_loop(0, budget, pick, (distances, jnp.zeros(budget, jnp.int32)))[1]


def coreset_score(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """k-center's criterion before its first pick: the squared embedding distance to the nearest labelled item."""
  del budget, rng
  return min_squared_distances(inputs.embeddings.astype(jnp.float32), inputs.labeled_mask)


def _kmeans_pp_seeds(
    rng: jax.Array, num_centres: int, candidates: jax.Array, sq_norm_fn, first: jax.Array | None = None
) -> jax.Array:
  """k-means++ seeding: [num_centres] indices among `candidates` ([N] bool), each drawn with probability
  proportional to its squared distance to the nearest chosen seed. `sq_norm_fn(i) -> [N]` gives the squared
  distances of every point to point i, so the points themselves never need to exist (BADGE).
  """
  n = candidates.shape[0]
  rngs = jax.random.split(rng, num_centres)
  if first is None:
    first = jax.random.choice(rngs[0], n, p=candidates / jnp.sum(candidates)).astype(jnp.int32)
  distances = jnp.where(candidates, sq_norm_fn(first), 0.0).at[first].set(0.0)
  available = candidates.at[first].set(False)

  def pick(i, state):
    distances, available, chosen = state
    weights = jnp.where(available, jnp.maximum(distances, 0.0), 0.0)
    total = jnp.sum(weights)
    # All remaining points coincide with a seed: fall back to uniform over what is left.
    weights = jnp.where(total > 0, weights, available.astype(weights.dtype))
    index = jax.random.choice(rngs[i], n, p=weights / jnp.sum(weights)).astype(jnp.int32)
    distances = jnp.minimum(distances, sq_norm_fn(index))
    return distances, available.at[index].set(False), chosen.at[i].set(index)

  chosen = jnp.zeros(num_centres, jnp.int32).at[0].set(first)
  return jax.lax.fori_loop(1, num_centres, pick, (distances, available, chosen))[2]


def _nearest_centres(points: jax.Array, centres: jax.Array, block_size: int = 4096) -> jax.Array:
  """[N] index of the nearest of [K, D] centres for each of [N, D] points, in blocks of points."""
  n = points.shape[0]
  block_size = min(block_size, n)
  padded = jnp.pad(points, ((0, -n % block_size), (0, 0)))
  centre_norms = jnp.sum(centres**2, axis=-1)

  def assign(block):
    return jnp.argmin(centre_norms[None, :] - 2.0 * block @ centres.T, axis=1)

  return jax.lax.map(assign, padded.reshape(-1, block_size, points.shape[1])).reshape(-1)[:n]


def _kmeans_centres(inputs: QueryInputs, budget: int, rng: jax.Array, iterations: int) -> jax.Array:
  """[budget, D] k-means centres of the unlabelled embeddings (k-means++ seeding, Lloyd iterations)."""
  points = inputs.embeddings.astype(jnp.float32)
  sq_norms = jnp.sum(points**2, axis=-1)
  mask = inputs.unlabeled_mask
  seeds = _kmeans_pp_seeds(rng, budget, mask, lambda i: _squared_distances(points, points[i], sq_norms))
  centres = points[seeds]

  def lloyd(_, centres):
    assignment = jnp.where(mask, _nearest_centres(points, centres), budget)  # Labelled -> dropped segment.
    sums = jax.ops.segment_sum(points, assignment, num_segments=budget + 1)[:budget]
    counts = jax.ops.segment_sum(jnp.ones_like(assignment, jnp.float32), assignment,
                                 num_segments=budget + 1)[:budget]
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centres)

  return jax.lax.fori_loop(0, iterations, lloyd, centres)


@functools.partial(jax.jit, static_argnames=('num_clusters', 'iterations'))
def kmeans_clusters(embeddings: jax.Array, mask: jax.Array, num_clusters: int, rng: jax.Array,
                    iterations: int = 10) -> jax.Array:
  """[N] cluster of every point: k-means with `num_clusters` centres fitted to the [N, D] embeddings where `mask`
  ([N] bool) holds (k-means++ seeding, Lloyd iterations; the centres `kmeans` uses with the same key)."""
  inputs = QueryInputs(mask, ~mask, embeddings=embeddings)
  centres = _kmeans_centres(inputs, num_clusters, rng, iterations)
  return _nearest_centres(embeddings.astype(jnp.float32), centres)


def kmeans(inputs: QueryInputs, budget: int, rng: jax.Array, iterations: int = 10) -> jax.Array:
  """k-means with `budget` centres over the unlabelled embeddings (k-means++ seeding, Lloyd iterations);
  for each centre in turn, the nearest unlabelled point not yet chosen."""
  points = inputs.embeddings.astype(jnp.float32)
  sq_norms = jnp.sum(points**2, axis=-1)
  centres = _kmeans_centres(inputs, budget, rng, iterations)

  def pick(i, state):
    available, chosen = state
    d = jnp.where(available, _squared_distances(points, centres[i], sq_norms), jnp.inf)
    index = jnp.argmin(d).astype(jnp.int32)
    return available.at[index].set(False), chosen.at[i].set(index)

  return jax.lax.fori_loop(0, budget, pick, (inputs.unlabeled_mask, jnp.zeros(budget, jnp.int32)))[1]


def kmeans_score(inputs: QueryInputs, budget: int, rng: jax.Array, iterations: int = 10) -> jax.Array:
  """How typical an item is of what k-means picks: minus its squared distance to the nearest of the `budget`
  centres (the same centres as `kmeans` with the same key)."""
  points = inputs.embeddings.astype(jnp.float32)
  centres = _kmeans_centres(inputs, budget, rng, iterations)
  nearest = _nearest_centres(points, centres)
  return -jnp.sum((points - centres[nearest]) ** 2, axis=-1)


def badge(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings g = (p - onehot(ŷ)) ⊗ h.

  The N x (C*D) matrix is never built: ||g_i - g_j||^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 <a_i,a_j><h_i,h_j>
  with a = p - onehot(ŷ). The first seed is the largest gradient norm, as in the authors' code.
  """
  a, h = _gradient_embedding(inputs)
  a_sq, h_sq = jnp.sum(a**2, -1), jnp.sum(h**2, -1)
  norms = a_sq * h_sq

  def sq_distances(i):
    return norms + norms[i] - 2.0 * (a @ a[i]) * (h @ h[i])

  first = jnp.argmax(jnp.where(inputs.unlabeled_mask, norms, -1.0)).astype(jnp.int32)
  return _kmeans_pp_seeds(rng, budget, inputs.unlabeled_mask, sq_distances, first=first)


def _gradient_embedding(inputs: QueryInputs) -> tuple[jax.Array, jax.Array]:
  """(a, h): BADGE's gradient embedding g = a ⊗ h, a = p - onehot(ŷ), h the embedding, never formed."""
  probs = inputs.probs.astype(jnp.float32)
  return probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1]), inputs.embeddings.astype(jnp.float32)


def badge_score(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """BADGE's seed weight: the squared norm of the gradient embedding, |a|^2 |h|^2 (its first pick is the largest)."""
  del budget, rng
  a, h = _gradient_embedding(inputs)
  return jnp.sum(a**2, -1) * jnp.sum(h**2, -1)


for _name, _score, _needs in (
    ('random', random_score, ()),
    ('least_confidence', least_confidence, ('probs',)),
    ('margin', margin, ('probs',)),
    ('entropy', entropy_query, ('probs',)),
    ('mc_variance', mc_variance, ('probs', 'mc')),
    ('bald', bald, ('mc',)),
    ('variation_ratio', variation_ratio, ('mc',)),
    ('mean_std', mean_std, ('mc',)),
):
  register_query(_name, None, _needs, score=_score)
for _name, _fn, _score, _needs in (
    ('coreset', coreset, coreset_score, ('embeddings',)),
    ('kmeans', kmeans, kmeans_score, ('embeddings',)),
    ('badge', badge, badge_score, ('probs', 'embeddings')),
):
  register_query(_name, _fn, _needs, score=_score)


def learning_loss(inputs: QueryInputs, budget: int, rng: jax.Array) -> jax.Array:
  """Learning Loss (Yoo & Kweon 2019): the loss the model's loss-prediction module predicts for each item."""
  del budget, rng
  return inputs.predicted_loss.astype(jnp.float32)


register_query('learning_loss', None, ('predicted_loss',), score=learning_loss)
QUERIES['softmax_response'] = dataclasses.replace(QUERIES['least_confidence'], name='softmax_response')


@functools.partial(jax.jit, static_argnames=('fn', 'budget'))
def _run(fn, inputs, budget, rng):
  return fn(inputs, budget, rng)


def _check(inputs: QueryInputs, needs: frozenset[str], name: str, budget: int) -> None:
  """The checks `select` and `score` share (see `select`)."""
  unlabeled = np.asarray(inputs.unlabeled_mask)
  labeled = np.asarray(inputs.labeled_mask)
  if unlabeled.dtype != bool or labeled.dtype != bool or unlabeled.ndim != 1 or labeled.shape != unlabeled.shape:
    raise ValueError(
        f'unlabeled_mask and labeled_mask must be bool [N] arrays of one length, got {unlabeled.dtype} '
        f'{unlabeled.shape} and {labeled.dtype} {labeled.shape}.')
  if np.any(unlabeled & labeled):
    raise ValueError('An item is both labelled and unlabelled; the masks must be disjoint.')
  for field in needs:
    if getattr(inputs, field) is None:
      if field == 'predicted_loss':
        raise ValueError(f'Query strategy {name!r} reads a loss-prediction module the model does not have: build it '
                         'with ModelConfig(loss_prediction=True) (--config.model.loss_prediction=True).')
      raise ValueError(f'Query strategy {name!r} needs QueryInputs.{field}; compute it with jal.query.pool_inputs.')
  available = int(unlabeled.sum())
  if not isinstance(budget, int | np.integer) or budget < 1:
    raise ValueError(f'The query budget must be a positive int, got {budget!r}.')
  if budget > available:
    raise ValueError(
        f'Cannot select {budget} items: only {available} unlabelled items remain in the pool. Lower the '
        'per-round budget or the total budget to at most the pool size.')


def select(
    strategy: str | QueryFn, inputs: QueryInputs, budget: int, rng: jax.Array
) -> np.ndarray:
  """Runs a strategy (a registered name or a function) after checking its inputs; returns [budget] indices.

  Raises:
    ValueError: on an unknown strategy, a missing input it needs, masks of the wrong shape or overlapping,
      a non-positive budget, or a budget larger than the unlabelled pool.
  """
  if isinstance(strategy, str):
    spec = get_query(strategy)
    fn, needs, name = spec.fn, spec.needs, spec.name
  else:
    fn, needs, name = strategy, frozenset(), getattr(strategy, '__name__', 'custom')
  _check(inputs, needs, name, budget)
  return np.asarray(_run(fn, inputs, int(budget), rng))


def score(strategy: str, inputs: QueryInputs, budget: int, rng: jax.Array) -> np.ndarray:
  """A registered strategy's [N] per-item score (higher: wanted more; `budget` sets the k-means centres), after
  `select`'s checks. Score-based strategies select the top `budget` of it; for coreset, k-means and BADGE, which
  select in order, it is the criterion of their first pick (distance to L, typicality, gradient norm).

  Raises:
    ValueError: as `select`, or for a strategy registered without a score.
  """
  spec = get_query(strategy)
  if spec.score is None:
    raise ValueError(f'Query strategy {strategy!r} has no per-item score; register it with score=.')
  _check(inputs, spec.needs, spec.name, budget)
  return np.asarray(_run(spec.score, inputs, int(budget), rng))


def mc_dropout_stats(
    model, variables: dict, embeddings: jax.Array, num_passes: int, rng: jax.Array,
    rate: float | None = None, max_elements: int = 1 << 24,
) -> MCDropoutStats:
  """Statistics of `num_passes` stochastic passes of the head over [N, D] pooled embeddings.

  The dropout slot sits on the pooled embedding (active-iNAS), so the backbone ran once (`train.predict`) and
  only the dense head runs T times here, vmapped over T keys, in chunks of the pool.

  Args:
    model: the `jal.models.ResNet` whose head to run.
    variables: its variables.
    embeddings: [N, D] from `jal.predict.predict`.
    num_passes: T (100 in active-iNAS, 10 in AutoAL).
    rng: key for the dropout masks.
    rate: dropout rate; default the model's own, which must then be > 0.
    max_elements: bound on T * chunk * D, the dropout masks alive at once.
  """
  from jal.models import Head  # Local: query kernels themselves need no model code.

  rate = model.dropout_rate if rate is None else rate
  if not 0.0 < rate < 1.0:
    raise ValueError(
        f'MC-dropout needs a dropout rate in (0, 1), got {rate}; build the model with dropout_rate=0.5 or pass '
        'rate=0.5.')
  head = Head(model.num_classes, rate)
  head_params = {'params': variables['params']['head']}
  n, d = embeddings.shape
  chunk = max(1, min(n, max_elements // max(1, num_passes * d)))
  keys = jax.random.split(rng, num_passes)
  return _mc_stats(head, head_params, jnp.asarray(embeddings), keys, chunk)


@functools.partial(jax.jit, static_argnames=('head', 'chunk'))
def _mc_stats(head, head_params, embeddings, keys, chunk):
  n = embeddings.shape[0]
  padded = jnp.pad(embeddings, ((0, -n % chunk), (0, 0))).reshape(-1, chunk, embeddings.shape[1])

  def one_chunk(args):
    index, block = args

    def one_pass(key):
      # Fold in the chunk so that chunks draw independent masks (the same key would repeat them).
      key = jax.random.fold_in(key, index) if padded.shape[0] > 1 else key
      return jax.nn.softmax(head.apply(head_params, block, dropout=True, rngs={'dropout': key}))

    probs = jax.vmap(one_pass)(keys)  # [T, chunk, C]
    return probs.mean(0), (probs**2).mean(0), entropy(probs).mean(0)

  mean, mean_sq, mean_entropy = jax.lax.map(one_chunk, (jnp.arange(padded.shape[0]), padded))
  flat = lambda x: x.reshape(-1, *x.shape[2:])[:n]
  return MCDropoutStats(flat(mean), flat(mean_sq), flat(mean_entropy))


def pool_inputs(
    strategy: str | QueryStrategy,
    model,
    variables: dict,
    images,
    unlabeled_mask,
    labeled_mask,
    rng: jax.Array,
    mc_passes: int = 100,
    batch_size: int = 1024,
    mc_rate: float | None = None,
    normalization: tuple[np.ndarray, np.ndarray] | None = None,
    dtype=None,
) -> QueryInputs:
  """Runs the model over the pool once and computes what `strategy` needs (probs, embeddings, MC statistics).

  `mc_rate` is the dropout rate of the MC passes (default: the model's own): MC-dropout is a query-time
  operation, so a model trained without dropout can be queried with it. A pool larger than memory: `images` of
  raw pixels from a random-access source (`jal.data.NpyPool`) with their `normalization` (mean, std); it is read
  one chunk at a time and the outputs are gathered on the host, in `dtype` (float16 halves them).
  """
  from jal.predict import predict  # Local: keeps this module importable without the inference engine.

  spec = get_query(strategy) if isinstance(strategy, str) else strategy
  inputs = QueryInputs(jnp.asarray(unlabeled_mask), jnp.asarray(labeled_mask))
  if not spec.needs:
    return inputs
  predictions = predict(model, variables, images, batch_size=batch_size, normalization=normalization,
                        to_host=normalization is not None, dtype=dtype)
  mc = (mc_dropout_stats(model, variables, predictions.embeddings, mc_passes, rng, mc_rate)
        if 'mc' in spec.needs else None)
  return inputs.replace(probs=predictions.probs, embeddings=predictions.embeddings, mc=mc,
                        predicted_loss=predictions.predicted_loss if 'predicted_loss' in spec.needs else None)


@dataclasses.dataclass(frozen=True)
class QueryContext:
  """What a query method reads in a round, and nothing else of the loop.

  Attributes:
    pool: the pool (`jal.data.Dataset`): images [N, H, W, C] and item ids.
    labeled_mask: [N] bool, the labelled set L.
    labels: [N] int32 labels revealed so far (-1 where not asked).
    model: the round's trained task model (a Flax module returning a `jal.models.ModelOutput`).
    variables: its variables ({'params', 'batch_stats'}).
    budget: how many items to pick.
    state: the query method's own state from the previous round (None at first, and for stateless methods).
  """

  pool: object
  labeled_mask: np.ndarray
  labels: np.ndarray
  model: object
  variables: dict
  budget: int
  state: object = None

  @property
  def unlabeled_mask(self) -> np.ndarray:
    return ~self.labeled_mask


class Querier(Protocol):
  """How every query method enters the loop: `query(context, rng) -> (indices [budget], scalars, new state)`.

  `name` is recorded in the history; `needs` lists the task-model outputs it reads ('probs', 'embeddings', 'mc'),
  so a comparison can train models with the dropout slot when 'mc' is needed. A method with state that should
  survive a restart also defines `state_template(pool)`: the abstract (shape-only) state a checkpoint restores
  into. Registered strategies become `StrategyQuerier`s; AutoAL is `jal.autoal.AutoAL`.
  """

  name: str
  needs: frozenset[str]

  def query(self, context: QueryContext, rng: jax.Array) -> tuple[np.ndarray, dict, object]:
    ...


@dataclasses.dataclass(frozen=True)
class StrategyQuerier:
  """A registered strategy as a querier: score the pool with the task model once, then run the kernel.

  MC-dropout strategies run `mc_passes` passes of the head with dropout `mc_dropout_rate`, whether or not the
  model trained with dropout. Records 'time/score' (model outputs over the pool) and 'time/select' (the kernel).
  """

  name: str
  mc_passes: int = 100
  mc_dropout_rate: float = 0.5

  def __post_init__(self):
    get_query(self.name)  # An unknown name fails before any training.
    if self.mc_passes < 1:
      raise ValueError(f'mc_passes must be >= 1 (stochastic passes of MC-dropout), got {self.mc_passes}.')
    if not 0.0 < self.mc_dropout_rate < 1.0:
      raise ValueError(f'mc_dropout_rate must be in (0, 1), got {self.mc_dropout_rate}.')

  @property
  def needs(self) -> frozenset[str]:
    return get_query(self.name).needs

  def query(self, context: QueryContext, rng: jax.Array) -> tuple[np.ndarray, dict, object]:
    start = time.perf_counter()
    inputs = pool_inputs(self.name, context.model, context.variables, context.pool.images, context.unlabeled_mask,
                         context.labeled_mask, jax.random.fold_in(rng, 0), self.mc_passes,
                         mc_rate=self.mc_dropout_rate)
    jax.block_until_ready(inputs)
    score_seconds = time.perf_counter() - start
    start = time.perf_counter()
    indices = select(self.name, inputs, context.budget, jax.random.fold_in(rng, 1))
    return indices, {'time/score': score_seconds, 'time/select': time.perf_counter() - start}, context.state


def as_querier(strategy: str | Querier, mc_passes: int = 100, mc_dropout_rate: float = 0.5) -> Querier:
  """A registered strategy's name -> its `StrategyQuerier`; a querier object passes through unchanged."""
  return StrategyQuerier(strategy, mc_passes, mc_dropout_rate) if isinstance(strategy, str) else strategy
