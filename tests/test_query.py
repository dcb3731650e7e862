"""Tests for jal.query: each strategy against a reference or a hand-computed case, and selection properties."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import models, query
from jal.models import ModelConfig, build_model, init_variables
from jal.predict import predict
from jal.search_space import Architecture


def _inputs(n=60, classes=4, dim=6, labeled=10, seed=0):
  rng = np.random.default_rng(seed)
  probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(n, classes)) * 2, jnp.float32))
  embeddings = jnp.asarray(rng.normal(size=(n, dim)), jnp.float32)
  passes = jax.nn.softmax(jnp.asarray(rng.normal(size=(7, n, classes)) * 2, jnp.float32))
  mc = query.MCDropoutStats(passes.mean(0), (passes**2).mean(0), query.entropy(passes).mean(0))
  labeled_mask = np.zeros(n, bool)
  labeled_mask[rng.choice(n, labeled, replace=False)] = True
  predicted_loss = jnp.asarray(rng.exponential(size=n), jnp.float32)  # A loss-prediction module's output.
  return query.QueryInputs(jnp.asarray(~labeled_mask), jnp.asarray(labeled_mask), probs, embeddings, mc,
                           predicted_loss), passes


def _top(scores, unlabeled, b):
  """Reference top-b: highest score first, ties to the lower index, labelled excluded."""
  order = sorted(np.flatnonzero(unlabeled), key=lambda i: (-scores[i], i))
  return order[:b]


@pytest.mark.parametrize('name, score', [
    ('least_confidence', lambda p, mc, passes: -p.max(1)),
    ('softmax_response', lambda p, mc, passes: -p.max(1)),
    ('margin', lambda p, mc, passes: -(np.sort(p, 1)[:, -1] - np.sort(p, 1)[:, -2])),
    ('entropy', lambda p, mc, passes: -(p * np.log(p + 1e-12)).sum(1)),
    ('bald', lambda p, mc, passes: (
        -(passes.mean(0) * np.log(passes.mean(0) + 1e-12)).sum(1)
        + (passes * np.log(passes + 1e-12)).sum(2).mean(0))),
    ('variation_ratio', lambda p, mc, passes: 1 - passes.mean(0).max(1)),
    ('mean_std', lambda p, mc, passes: passes.std(0).mean(1)),
    ('mc_variance', lambda p, mc, passes: np.take_along_axis(
        passes, np.broadcast_to(p.argmax(1)[None, :, None], (passes.shape[0], p.shape[0], 1)), 2)[..., 0].var(0)),
])
def test_score_strategies_match_numpy(name, score):
  inputs, passes = _inputs()
  expected = _top(score(np.asarray(inputs.probs), inputs.mc, np.asarray(passes)),
                  np.asarray(inputs.unlabeled_mask), 12)
  selected = query.select(name, inputs, 12, jax.random.key(0))
  np.testing.assert_array_equal(selected, expected)
  # The per-item score is the same function: the query is its top 12.
  np.testing.assert_allclose(query.score(name, inputs, 12, jax.random.key(0)),
                             score(np.asarray(inputs.probs), inputs.mc, np.asarray(passes)), rtol=1e-5, atol=1e-6)


def test_order_strategies_score_items_by_the_criterion_of_their_first_pick():
  inputs, _ = _inputs(n=80)
  unlabeled, points = np.asarray(inputs.unlabeled_mask), np.asarray(inputs.embeddings)
  key = jax.random.key(3)
  # coreset: squared distance to the nearest labelled item; its first pick is the farthest.
  distances = ((points[:, None] - points[np.asarray(inputs.labeled_mask)][None]) ** 2).sum(-1).min(1)
  coreset_score = query.score('coreset', inputs, 5, key)
  np.testing.assert_allclose(coreset_score, distances, rtol=1e-4, atol=1e-4)
  assert query.select('coreset', inputs, 5, key)[0] == np.flatnonzero(unlabeled)[coreset_score[unlabeled].argmax()]
  # BADGE: the gradient embedding's squared norm; its first seed is the largest.
  probs = np.asarray(inputs.probs)
  a = probs - np.eye(probs.shape[1])[probs.argmax(1)]
  badge_score = query.score('badge', inputs, 5, key)
  np.testing.assert_allclose(badge_score, (a**2).sum(1) * (points**2).sum(1), rtol=1e-4)
  assert query.select('badge', inputs, 5, key)[0] == np.flatnonzero(unlabeled)[badge_score[unlabeled].argmax()]
  # k-means: items near the centres (the same centres as the query's, same key) score highest, and the query
  # takes one such item per centre.
  kmeans_score = query.score('kmeans', inputs, 5, key)
  picks = query.select('kmeans', inputs, 5, key)
  assert np.all(kmeans_score <= 0) and np.all(kmeans_score[picks] >= np.quantile(kmeans_score[unlabeled], 0.8))


def test_a_strategy_without_a_score_says_so():
  query.register_query('_no_score', lambda inputs, budget, rng: jnp.arange(budget), ())
  try:
    inputs, _ = _inputs()
    with pytest.raises(ValueError, match='no per-item score'):
      query.score('_no_score', inputs, 3, jax.random.key(0))
  finally:
    del query.QUERIES['_no_score']


def test_hand_computed_orderings():
  probs = jnp.asarray([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.34, 0.33, 0.33], [0.6, 0.4, 0.0]])
  mask = jnp.ones(4, bool)
  inputs = query.QueryInputs(mask, ~mask, probs)
  assert query.select('entropy', inputs, 4, jax.random.key(0)).tolist() == [2, 1, 3, 0]
  assert query.select('margin', inputs, 4, jax.random.key(0)).tolist() == [2, 1, 3, 0]
  assert query.select('least_confidence', inputs, 4, jax.random.key(0)).tolist() == [2, 1, 3, 0]
  # Margin and confidence disagree: [0.5, 0.5, 0] has margin 0 but confidence 0.5.
  probs = jnp.asarray([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
  inputs = query.QueryInputs(jnp.ones(2, bool), jnp.zeros(2, bool), probs)
  assert query.select('margin', inputs, 1, jax.random.key(0)).tolist() == [0]
  assert query.select('least_confidence', inputs, 1, jax.random.key(0)).tolist() == [1]


def test_ties_go_to_the_lower_index():
  probs = jnp.full((6, 2), 0.5)
  inputs = query.QueryInputs(jnp.asarray([False, True, True, True, True, True]), jnp.asarray([True] + [False] * 5),
                             probs)
  assert query.select('entropy', inputs, 3, jax.random.key(0)).tolist() == [1, 2, 3]


def _numpy_k_center(points, labeled_mask, unlabeled_mask, b):
  """Brute force, with the full distance matrix (what the DeepAL toolbox does)."""
  d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
  min_d = d[:, labeled_mask].min(1) if labeled_mask.any() else np.full(len(points), np.inf)
  chosen = []
  for _ in range(b):
    candidates = np.where(unlabeled_mask & ~np.isin(np.arange(len(points)), chosen), min_d, -1)
    i = int(np.argmax(candidates))
    chosen.append(i)
    min_d = np.minimum(min_d, d[:, i])
  return chosen


@pytest.mark.parametrize('seed, labeled', [(0, 10), (1, 1), (2, 40)])
def test_coreset_equals_brute_force_k_center(seed, labeled):
  inputs, _ = _inputs(n=300, dim=5, labeled=labeled, seed=seed)
  expected = _numpy_k_center(np.asarray(inputs.embeddings, np.float64), np.asarray(inputs.labeled_mask),
                             np.asarray(inputs.unlabeled_mask), 20)
  np.testing.assert_array_equal(query.select('coreset', inputs, 20, jax.random.key(0)), expected)


def test_min_squared_distances_streams_blocks():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(100, 3)).astype(np.float32)
  mask = rng.random(100) < 0.3
  expected = ((points[:, None] - points[None, mask]) ** 2).sum(-1).min(1)
  got = query.min_squared_distances(jnp.asarray(points), jnp.asarray(mask), block_size=7)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  assert np.isinf(np.asarray(query.min_squared_distances(jnp.asarray(points), jnp.zeros(100, bool)))).all()


def _clusters(num_clusters=5, per_cluster=30, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_clusters, 4)) * 20
  points = np.concatenate([c + rng.normal(size=(per_cluster, 4)) for c in centres]).astype(np.float32)
  return points, np.repeat(np.arange(num_clusters), per_cluster)


@pytest.mark.parametrize('name', ['kmeans', 'coreset'])
def test_diversity_strategies_cover_every_cluster(name):
  points, cluster = _clusters()
  mask = jnp.ones(len(points), bool)
  inputs = query.QueryInputs(mask, ~mask, embeddings=jnp.asarray(points))
  selected = query.select(name, inputs, 5, jax.random.key(1))
  assert len(set(selected.tolist())) == 5
  assert sorted(cluster[selected].tolist()) == [0, 1, 2, 3, 4]


def test_badge_spreads_over_clusters_and_matches_explicit_gradient_embeddings():
  points, cluster = _clusters(num_clusters=4, per_cluster=25)
  rng = np.random.default_rng(0)
  probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(len(points), 3)), jnp.float32))
  mask = jnp.ones(len(points), bool)
  inputs = query.QueryInputs(mask, ~mask, probs=probs, embeddings=jnp.asarray(points))
  selected = query.select('badge', inputs, 8, jax.random.key(2))
  assert len(set(selected.tolist())) == 8
  assert set(cluster[selected].tolist()) == {0, 1, 2, 3}
  # The factorised distances equal those of the explicit N x (C*D) gradient embeddings.
  a = np.asarray(probs) - np.eye(3)[np.asarray(probs).argmax(1)]
  g = (a[:, :, None] * points[:, None, :]).reshape(len(points), -1)
  first = int(np.argmax((g**2).sum(1)))
  assert selected[0] == first


def test_random_is_deterministic_per_key_and_differs_across_keys():
  inputs, _ = _inputs()
  a = query.select('random', inputs, 10, jax.random.key(0))
  np.testing.assert_array_equal(a, query.select('random', inputs, 10, jax.random.key(0)))
  assert not np.array_equal(a, query.select('random', inputs, 10, jax.random.key(1)))


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(st.sampled_from(sorted(query.QUERIES)), st.integers(0, 1000), st.integers(1, 30),
                  st.integers(0, 25))
def test_selections_are_unique_unlabelled_and_exactly_b(name, seed, budget, labeled):
  inputs, _ = _inputs(n=60, labeled=labeled, seed=seed)
  budget = min(budget, 60 - labeled)
  selected = query.select(name, inputs, budget, jax.random.key(seed))
  assert selected.shape == (budget,)
  assert len(set(selected.tolist())) == budget
  assert np.asarray(inputs.unlabeled_mask)[selected].all()


def test_budget_larger_than_unlabelled_pool_is_a_clear_error():
  inputs, _ = _inputs(n=20, labeled=15)
  with pytest.raises(ValueError, match='only 5 unlabelled items remain'):
    query.select('entropy', inputs, 6, jax.random.key(0))


def test_bad_query_calls_are_rejected():
  inputs, _ = _inputs()
  with pytest.raises(ValueError, match="Unknown query strategy 'entropi'"):
    query.select('entropi', inputs, 3, jax.random.key(0))
  with pytest.raises(ValueError, match='needs QueryInputs.mc'):
    query.select('bald', inputs.replace(mc=None), 3, jax.random.key(0))
  with pytest.raises(ValueError, match='disjoint'):
    query.select('entropy', inputs.replace(labeled_mask=jnp.ones(60, bool)), 3, jax.random.key(0))
  with pytest.raises(ValueError, match='positive int'):
    query.select('entropy', inputs, 0, jax.random.key(0))


def test_user_strategy_plugs_in():
  def lowest_index(inputs, budget, rng):
    """The first unlabelled items."""
    del rng
    return query.top_scores(-jnp.arange(inputs.unlabeled_mask.shape[0]), inputs.unlabeled_mask, budget)

  inputs, _ = _inputs()
  expected = np.flatnonzero(np.asarray(inputs.unlabeled_mask))[:4]
  np.testing.assert_array_equal(query.select(lowest_index, inputs, 4, jax.random.key(0)), expected)
  query.register_query('lowest_index', lowest_index)
  try:
    np.testing.assert_array_equal(query.select('lowest_index', inputs, 4, jax.random.key(0)), expected)
  finally:
    del query.QUERIES['lowest_index']


def test_mc_dropout_runs_only_the_head_and_matches_explicit_passes():
  model = build_model(Architecture(1, 1), 3, ModelConfig(width=8, dropout_rate=0.5))
  variables = init_variables(model, jax.random.key(0), (8, 8, 1))
  images = jax.random.normal(jax.random.key(1), (37, 8, 8, 1))
  embeddings = predict(model, variables, images).embeddings
  stats = query.mc_dropout_stats(model, variables, embeddings, 5, jax.random.key(2))
  keys = jax.random.split(jax.random.key(2), 5)
  head = models.Head(3, 0.5)
  passes = jnp.stack([jax.nn.softmax(head.apply({'params': variables['params']['head']}, embeddings,
                                                dropout=True, rngs={'dropout': k})) for k in keys])
  chex.assert_trees_all_close(stats.mean_probs, passes.mean(0), atol=1e-5)
  chex.assert_trees_all_close(stats.mean_sq_probs, (passes**2).mean(0), atol=1e-5)
  chex.assert_trees_all_close(stats.mean_entropy, query.entropy(passes).mean(0), atol=1e-5)
  assert float(jnp.max(stats.mean_sq_probs - stats.mean_probs**2)) > 1e-4  # The passes differ.
  # In chunks of 10 items: chunks draw their own masks, so no two chunks repeat each other's statistics.
  chunked = query.mc_dropout_stats(model, variables, embeddings, 5, jax.random.key(2), max_elements=5 * 8 * 10)
  chex.assert_shape(chunked.mean_probs, (37, 3))
  chex.assert_trees_all_close(chunked.mean_probs.sum(-1), jnp.ones(37), atol=1e-5)
  repeated = jnp.concatenate([embeddings[:10], embeddings[:10]])  # Two chunks holding the same items.
  twice = query.mc_dropout_stats(model, variables, repeated, 5, jax.random.key(2), max_elements=5 * 8 * 10)
  assert not np.allclose(twice.mean_probs[:10], twice.mean_probs[10:], atol=1e-4)
  with pytest.raises(ValueError, match='dropout rate'):
    query.mc_dropout_stats(build_model(Architecture(1, 1), 3, ModelConfig(width=8)), variables, embeddings, 5,
                           jax.random.key(0))


def test_a_pool_file_streams_through_scoring_and_selection_as_the_array_in_memory(tmp_path):
  """Raw uint8 pixels from a .npy file, normalised on the device chunk by chunk, give the in-memory scores."""
  from jal import data
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (300, 8, 8, 1), dtype=np.uint8)
  np.save(tmp_path / 'pool.npy', pixels)
  pool = data.NpyPool(str(tmp_path / 'pool.npy'))
  assert (len(pool), pool.shape, pool.dtype) == (300, (300, 8, 8, 1), np.uint8)
  np.testing.assert_array_equal(pool[10:20], pixels[10:20])
  mean, std = data.streaming_normalization_stats(pool, chunk=64)
  np.testing.assert_allclose((mean, std), data.normalization_stats(pixels), rtol=1e-5)

  model = build_model(Architecture(1, 1), 3, ModelConfig(width=4))
  variables = init_variables(model, jax.random.key(0), (8, 8, 1))
  normalised = ((pixels / 255.0 - mean) / std).astype(np.float32)
  expected = predict(model, variables, normalised, batch_size=64)
  streamed = predict(model, variables, pool, batch_size=64, normalization=(mean, std), to_host=True)
  assert isinstance(streamed.probs, np.ndarray) and streamed.embeddings.shape == (300, 4)
  np.testing.assert_allclose(streamed.probs, expected.probs, atol=1e-5)
  half = predict(model, variables, pool, batch_size=64, normalization=(mean, std), to_host=True, dtype=np.float16)
  assert half.embeddings.dtype == np.float16

  labeled = np.zeros(300, bool)
  labeled[:20] = True
  for name in ('entropy', 'coreset', 'badge'):
    in_memory = query.pool_inputs(name, model, variables, normalised, ~labeled, labeled, jax.random.key(1))
    streaming = query.pool_inputs(name, model, variables, pool, ~labeled, labeled, jax.random.key(1),
                                  batch_size=64, normalization=(mean, std))
    np.testing.assert_array_equal(query.select(name, streaming, 10, jax.random.key(2)),
                                  query.select(name, in_memory, 10, jax.random.key(2)))


def _balanced_reference(scores, predicted, unlabeled, budget, classes):
  """Each predicted class's top budget // C unlabelled items, then the best of the rest (ties: lower index)."""
  quota = budget // classes
  first = [i for c in range(classes) for i in _top(np.where(predicted == c, scores, -np.inf), unlabeled
                                                  & (predicted == c), quota)]
  rest = [i for i in _top(scores, unlabeled, len(scores)) if i not in first]
  return sorted(first, key=lambda i: (-scores[i], i)) + rest[:budget - len(first)]


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(st.integers(0, 1000), st.integers(1, 30), st.integers(0, 25))
def test_a_balanced_query_takes_each_predicted_class_its_share(seed, budget, labeled):
  inputs, _ = _inputs(n=60, labeled=labeled, seed=seed)
  inputs = inputs.replace(probs=inputs.probs ** jnp.asarray([1.0, 1.0, 1.0, 6.0]))  # Class 3 rarely predicted.
  inputs = inputs.replace(probs=inputs.probs / inputs.probs.sum(-1, keepdims=True))
  budget = min(budget, 60 - labeled)
  probs, unlabeled = np.asarray(inputs.probs), np.asarray(inputs.unlabeled_mask)
  selected = query.select('margin+balanced', inputs, budget, jax.random.key(seed))
  margin = np.asarray(query.score('margin', inputs, budget, jax.random.key(seed)))
  assert selected.tolist() == _balanced_reference(margin, probs.argmax(1), unlabeled, budget, 4)
  assert len(set(selected.tolist())) == budget and unlabeled[selected].all()


def test_every_scored_strategy_has_a_balanced_variant_and_others_say_why_not():
  inputs, _ = _inputs(n=80, labeled=10)
  predicted = np.asarray(inputs.probs).argmax(1)
  for name in ('entropy+balanced', 'coreset+balanced', 'bald+balanced'):
    picked = query.select(name, inputs, 20, jax.random.key(0))
    counts = np.bincount(predicted[picked], minlength=4)
    available = np.bincount(predicted[np.asarray(inputs.unlabeled_mask)], minlength=4)
    assert (counts >= np.minimum(available, 5)).all()  # Every class its 20 // 4 where it has them.
  assert query.get_query('margin+balanced') is query.get_query('margin+balanced')  # One compile per variant.
  query.register_query('order_only', lambda inputs, budget, rng: jnp.arange(budget, dtype=jnp.int32))
  try:
    with pytest.raises(ValueError, match="'order_only' has no per-item score to balance"):
      query.get_query('order_only+balanced')
  finally:
    del query.QUERIES['order_only']
  with pytest.raises(ValueError, match=r"also as '<name>\+balanced'"):
    query.get_query('nope+balanced')
