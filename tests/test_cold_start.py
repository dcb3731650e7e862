"""Tests for jal.cold_start: the pixel embedding against scikit-learn's PCA, typicality, TypiClust and k-means on
separated clusters, and the loop starting from a cold-start set."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from jal import cold_start, data, loop
from jal.models import ModelConfig
from jal.search_space import Architecture
from jal.train import TrainConfig


def _blobs(seed=0, clusters=5, per_cluster=60, outliers=True):
  """[N, 2] points in `clusters` tight, well separated blobs, each with one far outlier; and each point's blob."""
  rng = np.random.default_rng(seed)
  centres = np.stack([np.cos(np.arange(clusters) * 2 * np.pi / clusters),
                      np.sin(np.arange(clusters) * 2 * np.pi / clusters)], 1) * 20
  points = np.concatenate([c + rng.normal(size=(per_cluster, 2)) for c in centres])
  blob = np.repeat(np.arange(clusters), per_cluster)
  if outliers:
    points = np.concatenate([points, centres + 4.0])
    blob = np.concatenate([blob, np.arange(clusters)])
  return points.astype(np.float32), blob, centres


def test_the_pixel_embedding_is_scikit_learns_pca_up_to_sign():
  images = np.random.default_rng(0).normal(size=(300, 6, 6, 1)).astype(np.float32)
  ours = cold_start.pixel_embeddings(images, components=5)
  theirs = PCA(5).fit_transform(images.reshape(300, -1))
  for k in range(5):
    sign = np.sign(ours[:, k] @ theirs[:, k])
    np.testing.assert_allclose(ours[:, k] * sign, theirs[:, k], atol=1e-3)


def test_typicality_is_highest_inside_a_dense_blob_and_lowest_for_an_outlier():
  points = np.concatenate([np.random.default_rng(1).normal(size=(50, 2)), [[8.0, 8.0]]]).astype(np.float32)
  scores = cold_start.typicality(points, neighbours=10)
  assert np.argmin(scores) == 50 and np.linalg.norm(points[np.argmax(scores)]) < 1.0


@pytest.mark.parametrize('method', ['typiclust', 'kmeans'])
def test_a_cold_start_takes_one_item_per_cluster_and_typiclust_never_an_outlier(method):
  points, blob, centres = _blobs()
  chosen = cold_start.initial_items(method, points, 5, seed=0, embed=lambda x: x)
  assert len(set(chosen.tolist())) == 5 and sorted(blob[chosen].tolist()) == [0, 1, 2, 3, 4]
  if method == 'typiclust':
    assert all(i < 300 for i in chosen)  # The outliers are the last 5 points.
    assert np.all(np.linalg.norm(points[chosen] - centres[blob[chosen]], axis=1) < 1.5)
  again = cold_start.initial_items(method, points, 5, seed=0, embed=lambda x: x)
  np.testing.assert_array_equal(chosen, again)


def test_random_is_the_papers_draw_and_bad_requests_are_refused():
  np.testing.assert_array_equal(cold_start.initial_items('random', np.zeros((50, 2, 2, 1)), 7, seed=3),
                                np.random.default_rng(3).choice(50, 7, replace=False))
  with pytest.raises(ValueError, match=r"Unknown initial-set method 'centres'; use one of \('random', 'kmeans'"):
    cold_start.initial_items('centres', np.zeros((50, 2, 2, 1)), 7, seed=0)
  with pytest.raises(ValueError, match='1 <= size <= 50'):
    cold_start.initial_items('typiclust', np.zeros((50, 2, 2, 1)), 51, seed=0)


def test_the_loop_starts_from_the_cold_start_set(fashion_mnist):
  pool = data.Dataset(fashion_mnist.pool.images[:400], fashion_mnist.pool.labels[:400], 10)
  splits = data.Splits(pool, None, fashion_mnist.test.subset(np.arange(100)), fashion_mnist.mean, fashion_mnist.std)
  config = loop.LoopConfig(loop.BudgetSchedule(10, 10, 10), TrainConfig(epochs=1, examples_per_epoch=32,
                                                                        batch_size=32),
                           ModelConfig(width=4), initial='typiclust')
  state = loop.run(splits, config, 'margin', loop.fixed(Architecture(1, 1)), seed=2)
  expected = cold_start.initial_items('typiclust', pool.images, 10, seed=2)
  np.testing.assert_array_equal(np.flatnonzero(state.labeled_mask), np.sort(expected))
  # Ten clusters of Fashion-MNIST's pixels: the set covers more classes than chance would need to be lucky for.
  assert len(set(pool.labels[expected].tolist())) >= 5
  with pytest.raises(ValueError, match='Unknown initial-set method'):
    loop.LoopConfig(config.schedule, config.train, initial='centres')
  seeded = data.Dataset(pool.images, np.where(np.arange(400) < 10, pool.labels, -1), 10, unknown_labels=True)
  seeded_splits = data.Splits(seeded, None, splits.test, splits.mean, splits.std)
  with pytest.raises(ValueError, match='seed labels, which are the initial set'):
    loop.run(seeded_splits, config, 'margin', loop.fixed(Architecture(1, 1)), seed=2)
