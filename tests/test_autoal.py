"""Tests for jal.autoal: the EM fit, the threshold, the relaxed selection and its losses, the three steps (rows
aligned, gradients alive), the query, and a two-round AutoAL session."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.mixture import GaussianMixture

from jal import autoal, data, loop, mixture
from jal.models import ModelConfig
from jal.search_space import Architecture
from jal.train import TrainConfig

SMALL = autoal.AutoALConfig(candidates=autoal.THREE_CANDIDATES, width=4, batch_size=32, pretrain_steps=5,
                            cycles=2, mc_passes=3, num_threshold_samples=512)


def _mixture(weights, means, covariances):
  return mixture.GaussianMixture(*(jnp.asarray(v, jnp.float32) for v in (weights, means, covariances)))


def test_em_matches_scikit_learn_in_one_dimension():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(-3, 0.5, 300), rng.normal(0, 1, 200), rng.normal(4, 0.7, 250)])
  weights, means, variances = np.full(3, 1 / 3), np.array([-1.0, 0.5, 2.0]), np.full(3, 2.0)
  reference = GaussianMixture(3, covariance_type='full', max_iter=40, tol=0.0, reg_covar=1e-6,
                              weights_init=weights, means_init=means[:, None],
                              precisions_init=1 / variances[:, None, None], init_params='random_from_data')
  with pytest.warns(Warning):  # tol=0: scikit-learn runs every iteration and says it did not converge.
    reference.fit(x[:, None])
  fitted = mixture.fit_mixture(jnp.asarray(x[:, None]), _mixture(weights, means[:, None], variances[:, None, None]),
                               iterations=40)
  np.testing.assert_allclose(fitted.weights, reference.weights_, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(fitted.means, reference.means_, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(fitted.covariances, reference.covariances_, rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(sorted(np.asarray(fitted.means[:, 0])), [-3, 0, 4], atol=0.15)


def test_em_matches_scikit_learn_over_the_joint_scores_of_several_candidates():
  """K = 3 candidates' scores per item, correlated within components: full covariances, as scikit-learn's."""
  rng = np.random.default_rng(1)
  a = rng.multivariate_normal([0, 0, 0], [[1, 0.8, 0.1], [0.8, 1, 0.2], [0.1, 0.2, 0.5]], 400)
  b = rng.multivariate_normal([3, -2, 1], [[0.3, -0.1, 0], [-0.1, 0.4, 0.1], [0, 0.1, 0.2]], 200)
  x = np.concatenate([a, b])
  weights, means = np.array([0.5, 0.5]), np.array([[0.5, 0.0, 0.0], [2.0, -1.0, 0.5]])
  covariances = np.stack([np.eye(3)] * 2)
  reference = GaussianMixture(2, covariance_type='full', max_iter=30, tol=0.0, reg_covar=1e-6, weights_init=weights,
                              means_init=means, precisions_init=np.linalg.inv(covariances),
                              init_params='random_from_data')
  with pytest.warns(Warning):
    reference.fit(x)
  fitted = mixture.fit_mixture(jnp.asarray(x), _mixture(weights, means, covariances), iterations=30)
  np.testing.assert_allclose(fitted.weights, reference.weights_, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(fitted.means, reference.means_, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(fitted.covariances, reference.covariances_, rtol=1e-3, atol=1e-4)
  assert float(fitted.log_likelihood(jnp.asarray(x, jnp.float32))) == pytest.approx(reference.score(x), abs=1e-4)
  # Samples reproduce the fitted moments, correlations included.
  draws = np.asarray(fitted.sample(jax.random.key(0), 40_000))
  np.testing.assert_allclose(draws.mean(0), x.mean(0), atol=0.05)
  np.testing.assert_allclose(np.corrcoef(draws.T), np.corrcoef(x.T), atol=0.03)


def test_em_from_its_own_start_fits_tied_scores_as_well_as_scikit_learn():
  """A real batch: most rows unmarked share one score, a few marked rows are spread out. Quantile starts put all
  five means on the tied value and EM never separates them; the k-means++ start finds every cluster."""
  rng = np.random.default_rng(0)
  x = np.concatenate([np.zeros(150), rng.normal(1, 0.1, 20), rng.normal(3, 0.2, 20), rng.normal(6, 0.3, 10)])
  reference = GaussianMixture(5, n_init=5, random_state=0, reg_covar=1e-6, max_iter=500).fit(x[:, None])
  z = jnp.asarray(x[:, None], jnp.float32)
  init = mixture.init_mixture(z, 5, jax.random.key(0))
  fitted = mixture.fit_mixture(z, init, iterations=200)
  ours = float(fitted.log_likelihood(z))
  assert ours >= reference.score(x[:, None]) - 0.05
  for centre in (0.0, 1.0, 3.0, 6.0):
    assert np.min(np.abs(np.asarray(fitted.means[:, 0]) - centre)) < 0.3
  assert len({round(float(m), 3) for m in init.means[:, 0]}) >= 4  # A spread start, not five copies of 0.
  # The previous code's start, kept for the ablation: on these scores it puts four means on the tied value.
  quantiles = mixture.quantile_mixture(z, 5)
  np.testing.assert_allclose(quantiles.means[:4], 0.0)
  stuck = mixture.fit_mixture(z, quantiles, iterations=200)
  assert float(stuck.log_likelihood(z)) < ours - 0.2


def test_mixture_thresholds_are_each_candidates_upper_percentile_of_the_joint_scores():
  rng = np.random.default_rng(1)
  first = np.concatenate([rng.normal(0.01, 0.001, 900), rng.normal(0.02, 0.002, 100)])
  second = 5.0 * first + rng.normal(0, 0.02, 1000)  # Another scale, correlated with the first.
  scores = np.stack([first, second], 1).astype(np.float32)
  config = dataclasses.replace(SMALL, num_threshold_samples=20_000)
  thresholds = np.asarray(autoal.mixture_thresholds(jnp.asarray(scores), 0.05, jax.random.key(0), config))
  assert abs(thresholds[0] - np.percentile(first, 95)) < 0.001  # Within a quarter of the upper mode's spread.
  assert abs(thresholds[1] - np.percentile(second, 95)) < 0.005
  assert 45 <= np.sum(first > thresholds[0]) <= 55 and 40 <= np.sum(second > thresholds[1]) <= 60


def test_regulariser_is_zero_at_the_target_and_differentiable_only_when_asked():
  selection = jnp.array([0.9, 0.8, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0])  # α = 2.0.
  assert abs(float(autoal.selection_regulariser(selection, 0.25))) < 1e-6  # t·B = 2.
  grad = jax.grad(autoal.selection_regulariser)(selection, 0.5)            # t·B = 4 ≠ α.
  assert np.all(np.abs(np.asarray(grad)) > 1e-3) and np.all(np.asarray(grad) > 0)  # More selection helps.
  frozen = jax.grad(autoal.selection_regulariser)(selection, 0.5, False)   # The official code's constant count.
  assert np.all(np.asarray(frozen) == 0)


@pytest.fixture(scope='module')
def real_batch(fashion_mnist):
  """A fresh FitNet and two scored batches of 32 real Fashion-MNIST images."""
  networks = autoal.make_networks(SMALL, 10)
  state = autoal.init_networks(networks, jax.random.key(0), fashion_mnist.pool.image_shape)
  pool = fashion_mnist.pool
  batches = autoal.make_batches(networks, state, pool.images, pool.labels, np.arange(64), 32, math.ceil(0.1 * 32),
                               jax.random.key(1))
  return networks, state, batches


def test_batches_are_scored_by_every_candidate_on_one_scale(real_batch):
  networks, _, batches = real_batch
  assert len(batches) == 2
  for batch in batches:
    scores = np.asarray(batch.scores)
    assert scores.shape == (32, 3) and np.all(np.isfinite(scores))
    # Normal quantiles of each candidate's ranks over the batch: distinct scores take exactly the 32 quantiles.
    quantiles = scipy.stats.norm.ppf((np.arange(32) + 0.5) / 32)
    for column in scores.T:
      if len(np.unique(column)) == 32:
        np.testing.assert_allclose(np.sort(column), quantiles, atol=1e-4)
      assert abs(column.mean()) < 0.1 and column.max() <= quantiles[-1] + 1e-4


def test_rank_normalisation_is_the_normal_quantile_of_mid_ranks_over_the_mask():
  rng = np.random.default_rng(0)
  scores = np.stack([rng.exponential(size=50), -rng.chisquare(2, size=50), np.repeat(np.arange(10.0), 5)], 1)
  mask = np.arange(50) % 5 != 0  # 40 rows ranked; the others are placed among them.
  out = np.asarray(autoal.rank_normalise(jnp.asarray(scores, jnp.float32), jnp.asarray(mask)))
  for k in range(3):
    ranks = scipy.stats.rankdata(scores[mask, k])  # 1..40, ties at their mean rank.
    np.testing.assert_allclose(out[mask, k], scipy.stats.norm.ppf((ranks - 0.5) / 40), atol=1e-4)
    order = np.argsort(scores[:, k], kind='stable')
    assert np.all(np.diff(out[order, k]) >= -1e-6)  # Every row, masked or not, keeps its order.
  assert np.allclose(np.asarray(autoal.normalise(jnp.asarray(scores), None, 'standard')).std(0), 1.0, atol=1e-4)
  with pytest.raises(ValueError, match='normalisation'):
    autoal.normalise(jnp.asarray(scores), None, 'minmax')


def test_a_skewed_candidate_reaches_the_query_at_equal_weights_only_under_rank_normalisation():
  """Entropy-like scores (a long upper tail) beside k-means-like ones (nearness to a centre: bounded above, a long
  lower tail). Standardised, the second candidate's top items sit about 1 std above the mean where the first's sit
  3 above, and at equal weights the query holds none of them; under ranks each holds its share."""
  rng = np.random.default_rng(1)
  n, budget = 4000, 40
  raw = np.stack([rng.exponential(size=n), -rng.chisquare(2, size=n) ** 2], 1).astype(np.float32)
  unlabeled = np.ones(n, bool)
  weights = np.full((n, 2), 0.5, np.float32)
  own = autoal.top_sets(raw, unlabeled, budget)
  shares = {}
  for method in autoal.NORMALISATIONS:
    scores = np.asarray(autoal.normalise(jnp.asarray(raw), jnp.asarray(unlabeled), method))
    integrated = autoal.integrated_scores(weights, scores, unlabeled, budget, jax.random.key(0),
                                          autoal.AutoALConfig(candidates=('entropy', 'kmeans')))
    picks = np.asarray(autoal.query_lib.top_scores(jnp.asarray(integrated), jnp.asarray(unlabeled), budget))
    shares[method] = own[picks].mean(0)
  assert shares['standard'][1] <= 0.1 and shares['standard'][0] >= 0.9
  assert shares['rank'][0] >= 0.35 and shares['rank'][1] >= 0.35


def _search_gradient(networks, state, batch, config):
  """SearchNet's gradient of its objective under `config` (the head included)."""
  networks = dataclasses.replace(networks, config=config)
  return jax.grad(lambda p: autoal.search_loss(p, state.search.batch_stats, state.fit, state.loss_module.params,
                                               batch, jax.random.key(2), networks, jnp.float32(0.1))[0])(
      state.search.params)


def test_searchnet_gradient_of_the_informativeness_term_alone_is_finite_and_nonzero(real_batch):
  networks, state, batches = real_batch
  # λ = 0 and no ranking loss: only -mean(s̄·ℓ) moves SearchNet, and it must.
  grads = _search_gradient(networks, state, batches[0],
                           dataclasses.replace(SMALL, reg_weight=0.0, backbone_loss_weight=0.0))
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  assert float(optax_global_norm(grads)) > 1e-6


def test_searchnet_weights_keep_their_gradient_where_the_sigmoid_saturates(real_batch):
  """The official code's τ = 1e-11 saturated its one sigmoid and gave SearchNet zero gradient. Weighting each
  candidate's relaxed selection by W keeps W's gradient alive at any τ: it is the candidate's selection itself."""
  networks, state, batches = real_batch
  saturated = dataclasses.replace(SMALL, temperature=1e-11, differentiable_reg=False, backbone_loss_weight=0.0)
  grads = _search_gradient(networks, state, batches[0], saturated)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  assert float(optax_global_norm(grads)) > 1e-6


def optax_global_norm(tree):
  return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree_util.tree_leaves(tree)))


def _memorising_fitnet(fashion_mnist, config):
  """A FitNet that has memorised 32 images, so that its loss is high exactly where a label is then changed."""
  networks = autoal.make_networks(config, 10)
  state = autoal.init_networks(networks, jax.random.key(0), fashion_mnist.pool.image_shape)
  images = jnp.asarray(fashion_mnist.pool.images[:32])
  labels = jnp.asarray(fashion_mnist.pool.labels[:32])
  fit = state.fit
  for step in range(100):
    fit, _ = autoal._pretrain_step(fit, images, labels, jax.random.key(step), model=networks.fitnet,
                                   tx=networks.fit_tx, augment_config=autoal.AugmentConfig(flip=False, shift=0))
  assert float(autoal._per_sample_loss(networks, fit, images, labels).mean()) < 0.5
  return networks, state.replace(fit=fit), images, labels


def test_rows_stay_aligned_searchnet_learns_which_candidate_marks_high_loss(fashion_mnist):
  config = dataclasses.replace(SMALL, candidates=('entropy', 'margin'), width=16, search_lr=0.05, reg_weight=0.0)
  networks, state, images, labels = _memorising_fitnet(fashion_mnist, config)
  hard = np.arange(32) < 8                       # Rows whose label is then changed: FitNet's loss is high there.
  flipped = jnp.where(hard, (labels + 1) % 10, labels)
  marks = np.stack([hard, ~hard], axis=1).astype(np.float32)  # Candidate 0 marks the hard rows, 1 the rest.

  def weight_of_first_after_steps(batch):
    s = state
    for step in range(15):
      s, _ = autoal.search_step(s, batch, jax.random.key(step), jnp.float32(8 / 32), networks=networks)
    return float(autoal.strategy_weights(networks, s, np.asarray(images))[:, 0].mean())

  before = float(autoal.strategy_weights(networks, state, np.asarray(images))[:, 0].mean())
  aligned = weight_of_first_after_steps(autoal.SearchBatch(images, flipped, jnp.asarray(marks)))  # 0/1 scores.
  swapped = weight_of_first_after_steps(autoal.SearchBatch(images, flipped, jnp.asarray(marks[:, ::-1].copy())))
  # SearchNet moves weight to whichever candidate marks the rows with high loss: the loss and the marks of a row
  # must be the same example's, or this signal disappears.
  assert aligned > before + 0.02
  assert swapped < before - 0.02


def test_fit_and_loss_module_steps_learn(fashion_mnist):
  config = dataclasses.replace(SMALL, candidates=('entropy', 'margin', 'least_confidence'), width=16)
  networks, state, images, labels = _memorising_fitnet(fashion_mnist, config)
  hard = np.arange(32) < 8
  batch = autoal.SearchBatch(images, jnp.where(hard, (labels + 1) % 10, labels),
                             jnp.asarray(np.stack([hard, ~hard, hard], 1).astype(np.float32)))
  first = last = None
  s = state
  for step in range(40):
    s, metrics = autoal.loss_module_step(s, batch, jax.random.key(step), networks=networks)
    first = float(metrics['autoal/ranking_loss']) if first is None else first
    last = float(metrics['autoal/ranking_loss'])
  assert last < first  # The loss module learns to rank FitNet's losses.
  s, metrics = autoal.fit_step(s, batch, jax.random.key(0), jnp.float32(0.25), networks=networks)
  assert np.isfinite(float(metrics['autoal/fit_loss']))
  assert int(s.fit.step) == int(state.fit.step) + 1


def test_fit_step_learns_the_rows_the_selection_holds(fashion_mnist):
  """min mean(s̄·ℓ): FitNet lowers its loss most on the rows the relaxed selection holds (the sign and the
  weighting of fit_step). Rows 0-7 get wrong labels; the candidates mark rows 0-3, or rows 4-7: whichever half is
  marked is the half learnt."""
  config = dataclasses.replace(SMALL, candidates=('entropy', 'margin'), width=16, reg_weight=0.0)
  networks, state, images, labels = _memorising_fitnet(fashion_mnist, config)
  rows = np.arange(32)
  wrong = jnp.where(rows < 8, (labels + 1 + rows % 8) % 10, labels)  # Other shifts: one row teaches no other.

  def losses(fit):  # In train mode, the mode fit_step's objective is computed in (batch statistics).
    output, _ = networks.fitnet.apply(fit.variables, images, train=True, mutable=['batch_stats'])
    return np.asarray(autoal.optax.softmax_cross_entropy_with_integer_labels(output.logits, wrong))

  def learned(marked):
    batch = autoal.SearchBatch(images, wrong, jnp.asarray(np.stack([marked, marked], 1).astype(np.float32)))
    # t = 2/32: the threshold falls among the 4 marked rows (at 4/32 it would sit on the tied unmarked score).
    selection, _ = autoal.relaxed_selection(jnp.zeros((32, 2)), batch.scores, 2 / 32, jax.random.key(0), config)
    assert float(jnp.min(selection[marked])) > 0.3 > 0.1 > float(jnp.max(selection[~marked]))
    s = state
    for step in range(10):
      s, _ = autoal.fit_step(s, batch, jax.random.key(step), jnp.float32(2 / 32), networks=networks)
    drop = losses(state.fit) - losses(s.fit)
    return drop[:4].mean(), drop[4:8].mean()

  first_marked = learned(rows < 4)
  second_marked = learned((rows >= 4) & (rows < 8))
  assert first_marked[0] > first_marked[1] + 1.0
  assert second_marked[1] > second_marked[0] + 1.0


def test_make_batches_keeps_each_rows_image_label_and_scores_together(fashion_mnist):
  """Through the batch-making code (where the official code misaligned rows): each row's label is its image's,
  and each row's scores are the candidates' scores computed on that row's image."""
  # z-scores here, so that each row's scores can be checked to float precision (ranks of near-equal scores of an
  # untrained FitNet would flip on rounding); the rank normalisation has its own test.
  config = dataclasses.replace(SMALL, candidates=('least_confidence', 'margin'), normalise='standard')
  networks = autoal.make_networks(config, 10)
  state = autoal.init_networks(networks, jax.random.key(0), fashion_mnist.pool.image_shape)
  pool = fashion_mnist.pool
  indices = np.arange(100, 164)
  batches = autoal.make_batches(networks, state, pool.images, pool.labels, indices, 32, 4, jax.random.key(3))
  flat = pool.images.reshape(len(pool), -1)
  for batch in batches:
    rows = [int(np.flatnonzero((flat[indices] == image.reshape(-1)).all(1))[0]) + 100
            for image in np.asarray(batch.images)]
    np.testing.assert_array_equal(np.asarray(batch.labels), pool.labels[rows])
    probs = np.asarray(jax.nn.softmax(networks.fitnet.apply(state.fit.variables, batch.images, train=False).logits))
    top2 = np.sort(probs, 1)[:, -2:]
    expected = np.stack([-probs.max(1), -(top2[:, 1] - top2[:, 0])], 1)
    expected = (expected - expected.mean(0)) / (expected.std(0) + 1e-6)
    np.testing.assert_allclose(np.asarray(batch.scores), expected, atol=2e-3)


def test_searchnet_starts_at_uniform_candidate_weights(fashion_mnist):
  """The initial query is an unweighted vote of the candidates, whatever the seed (it used to be a random,
  seed-dependent weighting: per-candidate means 0.03-0.49)."""
  networks = autoal.make_networks(SMALL, 10)
  for seed in range(3):
    state = autoal.init_networks(networks, jax.random.key(seed), fashion_mnist.pool.image_shape)
    weights = autoal.strategy_weights(networks, state, fashion_mnist.pool.images[:64])
    np.testing.assert_allclose(weights, 1.0 / len(SMALL.candidates), atol=1e-6)
  # The previous code's start, kept for the ablation: a random head, a seed-dependent weighting.
  random_head = autoal.make_networks(dataclasses.replace(SMALL, head_init='random'), 10)
  state = autoal.init_networks(random_head, jax.random.key(0), fashion_mnist.pool.image_shape)
  weights = autoal.strategy_weights(random_head, state, fashion_mnist.pool.images[:64])
  assert np.abs(weights.mean(0) - 1.0 / len(SMALL.candidates)).max() > 0.01


def test_every_optimiser_state_is_stepped_once_per_cycle(fashion_mnist):
  """FitNet, SearchNet and the loss module each take one step per cycle: SearchNet's momentum is its own (the
  ranking loss reaches its backbone inside search_step, not through a second step on the same optax state)."""
  config = dataclasses.replace(SMALL, pretrain_steps=0, cycles=3)
  networks = autoal.make_networks(config, 10)
  state = autoal.init_networks(networks, jax.random.key(0), fashion_mnist.pool.image_shape)
  labeled = np.zeros(len(fashion_mnist.pool), bool)
  labeled[:64] = True
  after, metrics = autoal.search(networks, state, fashion_mnist.pool.images, fashion_mnist.pool.labels, labeled,
                                 0.01, jax.random.key(1), query_size=5)
  assert (int(after.fit.step), int(after.search.step), int(after.loss_module.step)) == (3, 3, 3)
  # B = 32 of the 32-item half; t·B = 0.32 would mark one item: at least two.
  assert (metrics['autoal/batch_size'], metrics['autoal/marks']) == (32, 2)


def test_without_its_main_term_only_searchnets_backbone_learns_so_its_weights_stay_equal(real_batch):
  """The paper's "loss prediction only" ablation: the ranking loss reaches SearchNet's backbone only, so its
  K-way head keeps the uniform start and the query weighs the candidates equally; with the main term it moves."""
  networks, state, batches = real_batch
  norm = lambda grads, head: float(optax_global_norm(  # noqa: E731
      {k: v for k, v in grads.items() if (k == 'head') == head}))
  alone = _search_gradient(networks, state, batches[0], dataclasses.replace(SMALL, informativeness_weight=0.0))
  both = _search_gradient(networks, state, batches[0], SMALL)
  assert 'head' in alone and norm(alone, head=True) == 0.0 and norm(alone, head=False) > 1e-6
  assert norm(both, head=True) > 1e-6


def test_search_batches_default_to_the_query_size_with_at_least_two_marks():
  config = autoal.AutoALConfig()
  assert config.batch_shape(num_items=300, query_size=100, query_fraction=100 / 9500) == (100, 2)
  assert config.batch_shape(num_items=50, query_size=100, query_fraction=100 / 9500) == (50, 2)
  assert config.batch_shape(num_items=300, query_size=100, query_fraction=0.05) == (100, 5)
  assert dataclasses.replace(config, batch_size=64).batch_shape(300, 100, 0.05) == (64, 4)


def _relaxed_count(temperature, scores, fraction):
  config = dataclasses.replace(SMALL, temperature=temperature, num_threshold_samples=4096)
  selection, _ = autoal.relaxed_selection(jnp.zeros(scores.shape), jnp.asarray(scores), fraction,
                                          jax.random.key(0), config)
  return float(jnp.sum(selection))


def test_the_calibrated_temperature_brings_the_relaxed_count_to_the_query_size(real_batch):
  """α = Σ s̄ should be q = t·B, what L_re asks for; α / q lies in [0.5, 2] with the calibrated τ, on real scores
  and where two candidates' scores coincide (the case where a threshold sat on tied scores before)."""
  _, _, batches = real_batch
  real = np.asarray(batches[0].scores)
  assert 0.5 <= _relaxed_count('calibrated', real, 4 / 32) / 4 <= 2.0
  coinciding = np.concatenate([real[:, :1], real[:, :1], real[:, 1:2]], 1)
  assert 0.5 <= _relaxed_count('calibrated', coinciding, 4 / 32) / 4 <= 2.0
  many = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)  # q = 2 of 100.
  calibrated, std = _relaxed_count('calibrated', many, 0.02), _relaxed_count('std', many, 0.02)
  assert 0.5 <= calibrated / 2 <= 2.0 < std / 2  # τ = std(s) leaves every row a share: α overshoots.
  # Where τ's floor binds (here at 1.69 q with τ alone), the thresholds rise together until α is q.
  assert abs(calibrated / 2 - 1.0) < 0.05
  thresholds = autoal.mixture_thresholds(jnp.asarray(many), 0.02, jax.random.key(0), SMALL)
  weights = jnp.full(many.shape, 1 / 3)
  raised, temperature = autoal.calibrated_selection(jnp.asarray(many), thresholds, weights, 2.0, SMALL)
  assert np.all(np.asarray(raised - thresholds) > 0) and np.ptp(np.asarray(raised - thresholds)) < 1e-6


def test_the_query_takes_items_for_different_candidates_reasons_and_equals_neither_candidates_query():
  """Two regions of a pool need two candidates: SearchNet weighs candidate 0 on region A and candidate 1 on B.
  Each candidate alone would query the other region (its highest scores lie there); the integrated query takes
  region A's items candidate 0 wants and region B's items candidate 1 wants."""
  rng = np.random.default_rng(0)
  n, budget = 200, 20
  scores = rng.normal(0.0, 0.3, (n, 2))
  in_a = np.arange(n) < 100
  scores[0:10, 0] = rng.uniform(2, 3, 10)      # Candidate 0 wants 10 items of A ...
  scores[100:120, 0] = rng.uniform(3, 4, 20)   # ... and, more, 20 items of B: its own query is B's.
  scores[120:130, 1] = rng.uniform(2, 3, 10)   # Candidate 1 wants 10 items of B ...
  scores[10:30, 1] = rng.uniform(3, 4, 20)     # ... and, more, 20 items of A: its own query is A's.
  weights = np.where(in_a[:, None], [0.95, 0.05], [0.05, 0.95]).astype(np.float32)
  unlabeled = np.ones(n, bool)
  integrated = autoal.integrated_scores(weights, scores.astype(np.float32), unlabeled, budget, jax.random.key(0),
                                        SMALL)
  picks = np.asarray(autoal.query_lib.top_scores(jnp.asarray(integrated), jnp.asarray(unlabeled), budget))
  own = autoal.top_sets(scores.astype(np.float32), unlabeled, budget)
  assert set(np.flatnonzero(own[:, 0])) == set(range(100, 120)) and set(np.flatnonzero(own[:, 1])) == set(range(10, 30))
  assert set(picks) == set(range(0, 10)) | set(range(120, 130))  # Both regions, each for its own candidate.
  metrics = autoal.query_metrics(weights, scores.astype(np.float32), unlabeled, picks, budget, ('a', 'b'))
  assert metrics['autoal/outside_leader'] == 1.0 and metrics['autoal/chosen_by/a'] == 0.0
  assert metrics['autoal/weight_spread'] == pytest.approx(0.45, abs=1e-3)


def test_fitnet_never_sees_the_simulated_unlabelled_half_before_scoring_it(fashion_mnist, monkeypatch):
  """The scores of the simulated unlabelled half come from a FitNet trained on the other half only: changing the
  labels of the unlabelled half changes nothing in them (a FitNet kept across rounds would have trained on some)."""
  config = dataclasses.replace(SMALL, candidates=('entropy', 'margin'), cycles=1)
  networks = autoal.make_networks(config, 10)
  state = autoal.init_networks(networks, jax.random.key(0), fashion_mnist.pool.image_shape)
  labeled = np.zeros(len(fashion_mnist.pool), bool)
  labeled[:64] = True
  seen = []
  make_batches = autoal.make_batches
  monkeypatch.setattr(autoal, 'make_batches', lambda *args: seen.append(make_batches(*args)) or seen[-1])
  labels = fashion_mnist.pool.labels.copy()
  key = jax.random.key(1)
  autoal.search(networks, state, fashion_mnist.pool.images, labels, labeled, 0.05, key, 5)
  # The search's split (its first key): relabel the simulated unlabelled half only.
  shuffled = np.asarray(jax.random.permutation(jax.random.split(key, 5)[0], np.flatnonzero(labeled)))
  relabelled = labels.copy()
  relabelled[shuffled[32:]] = (labels[shuffled[32:]] + 1) % 10
  # And search from a state that went through another round (SearchNet, loss module and FitNet all moved).
  later, _ = autoal.search(networks, state, fashion_mnist.pool.images, labels, labeled, 0.05, jax.random.key(7), 5)
  autoal.search(networks, later, fashion_mnist.pool.images, relabelled, labeled, 0.05, key, 5)
  np.testing.assert_allclose(np.asarray(seen[0][0].scores), np.asarray(seen[2][0].scores), atol=1e-5)


def test_config_is_checked():
  with pytest.raises(ValueError, match='Unknown query strategy'):
    autoal.AutoALConfig(candidates=('entropy', 'nope'))
  with pytest.raises(ValueError, match='random'):
    autoal.AutoALConfig(candidates=('entropy', 'random'))
  with pytest.raises(ValueError, match='temperature'):
    autoal.AutoALConfig(temperature=0.0)
  with pytest.raises(ValueError, match='temperature'):
    autoal.AutoALConfig(temperature='hot')
  with pytest.raises(ValueError, match='min_marks'):
    autoal.AutoALConfig(min_marks=0)
  with pytest.raises(ValueError, match='mixture_init'):
    autoal.AutoALConfig(mixture_init='kmeans')
  with pytest.raises(ValueError, match='head_init'):
    autoal.AutoALConfig(head_init='zeros')
  with pytest.raises(ValueError, match='normalise'):
    autoal.AutoALConfig(normalise='minmax')
  with pytest.raises(ValueError, match='not both 0'):
    autoal.AutoALConfig(backbone_loss_weight=0.0, informativeness_weight=0.0)
  with pytest.raises(ValueError, match='informativeness_weight'):
    autoal.AutoALConfig(informativeness_weight=-1.0)


def test_autoal_session_of_two_rounds(fashion_mnist):
  splits = data.Splits(
      data.Dataset(fashion_mnist.pool.images[:300], fashion_mnist.pool.labels[:300], 10),
      None, fashion_mnist.test, fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(20, 20, 40),
                           TrainConfig(epochs=2, examples_per_epoch=64, batch_size=32),
                           ModelConfig(width=4, dropout_rate=0.5), mc_passes=3)
  querier = autoal.AutoAL(SMALL)
  state = loop.run(splits, config, querier, loop.fixed(Architecture(1, 1)), seed=0)
  assert [r['num_labeled'] for r in state.history] == [20, 40]
  assert state.num_labeled == 40
  first = state.history[0]
  assert first['strategy'] == 'autoal' and first['query/size'] == 20
  weights = [first[f'autoal/weight/{name}'] for name in SMALL.candidates]
  assert abs(sum(weights) - 1.0) < 1e-4
  assert first['time/search'] > 0 and np.isfinite(first['autoal/search_loss'])
  assert isinstance(state.query_state, autoal.AutoALState)
  assert int(state.query_state.search.step) > 0  # SearchNet trained and persists for the next round.
