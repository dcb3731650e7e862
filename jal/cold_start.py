"""The initial labelled set: at random, or chosen on embeddings before any label exists (a cold start).

At 100 labels the initial set is most of what a model learns from, so its choice matters most there:

  random      k items uniformly (the papers' protocol; the same items for a seed whatever else differs)
  kmeans      k-means with k centres on the embeddings, the item nearest each centre (a spread of the pool)
  typiclust   TypiClust's initial selection (Hacohen et al., ICML 2022): k-means with k clusters, then from each
              the most typical item, typicality(x) = 1 / (mean distance to its K = 20 nearest neighbours in its
              cluster): dense, representative points rather than outliers

Embeddings: the caller's (`embed`, e.g. a pretrained backbone's pooled features: the binaries use
`--config.model.init_from`'s), else the first 50 principal components of the normalised pixels
(`pixel_embeddings`), a fixed embedding that needs no network.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jal import query as query_lib
from jal.data import row_blocks

COLD_STARTS = ('random', 'kmeans', 'typiclust')
PIXEL_COMPONENTS = 50  # Principal components of the pixel embedding.
PCA_FIT_ITEMS = 10_000  # Items the pixel embedding's basis is fitted to (at random).


def random_items(pool_size: int, size: int, seed: int) -> np.ndarray:
  """[size] items uniformly without replacement, depending on `seed` only."""
  return np.random.default_rng(seed).choice(pool_size, size, replace=False)


def pixel_embeddings(images, components: int = PIXEL_COMPONENTS, fit_items: int = PCA_FIT_ITEMS, seed: int = 0
                     ) -> np.ndarray:
  """[N, components] float32: the images' flattened pixels projected on their first principal components, the
  basis fitted to up to `fit_items` of them at random and the projection read a block of rows at a time (a pool
  on disk is never whole in memory)."""
  n = images.shape[0]
  fit = np.sort(np.random.default_rng(seed).choice(n, min(n, fit_items), replace=False))
  sample = np.asarray(images[fit], np.float32).reshape(len(fit), -1)
  mean = sample.mean(0)
  _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
  basis = vt[:components].T.astype(np.float32)
  return np.concatenate([(np.asarray(block, np.float32).reshape(len(block), -1) - mean) @ basis
                         for block in row_blocks(images)])


def typicality(points: np.ndarray, neighbours: int = 20) -> np.ndarray:
  """[n] 1 / (mean Euclidean distance to the `neighbours` nearest other points) of [n, D] points (TypiClust)."""
  n = len(points)
  if n == 1:
    return np.ones(1)
  k = min(neighbours, n - 1)
  sq = np.sum(points**2, axis=1)
  distances = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * points @ points.T, 0.0))
  np.fill_diagonal(distances, np.inf)
  nearest = np.partition(distances, k - 1, axis=1)[:, :k]
  return 1.0 / (nearest.mean(1) + 1e-12)


def typiclust(embeddings: np.ndarray, size: int, rng: jax.Array, neighbours: int = 20, max_members: int = 5000
              ) -> np.ndarray:
  """[size] items: the most typical member of each of `size` k-means clusters of the [N, D] embeddings (a
  cluster larger than `max_members` is scored on that many of its members at random). A cluster left empty by
  Lloyd's iterations gives its place to the most typical item not yet chosen overall."""
  cluster_rng, member_rng = jax.random.split(rng)
  points = np.asarray(embeddings, np.float32)
  assignment = np.asarray(query_lib.kmeans_clusters(jnp.asarray(points), jnp.ones(len(points), bool), size,
                                                    cluster_rng))
  sampler = np.random.default_rng(np.asarray(jax.random.key_data(member_rng)))
  chosen, best_score = [], np.full(len(points), -np.inf)
  for cluster in range(size):
    members = np.flatnonzero(assignment == cluster)
    if len(members) > max_members:
      members = np.sort(sampler.choice(members, max_members, replace=False))
    if len(members) == 0:
      continue
    scores = typicality(points[members], neighbours)
    best_score[members] = scores
    chosen.append(int(members[np.argmax(scores)]))
  if len(chosen) < size:  # Empty clusters: the most typical of the rest.
    best_score[chosen] = -np.inf
    chosen.extend(np.argsort(-best_score, kind='stable')[:size - len(chosen)].tolist())
  return np.asarray(chosen, np.int64)


def initial_items(method: str, images, size: int, seed: int,
                  embed: Callable[[object], np.ndarray] | None = None) -> np.ndarray:
  """[size] distinct pool items for the initial labelled set by `method` (`COLD_STARTS`), depending on `seed`,
  the pool and the embedding only: every method of a comparison on a seed starts from the same set.

  Raises:
    ValueError: on an unknown method or a size outside [1, N].
  """
  if method not in COLD_STARTS:
    raise ValueError(f'Unknown initial-set method {method!r}; use one of {COLD_STARTS} (--config.initial).')
  n = images.shape[0]
  if not 1 <= size <= n:
    raise ValueError(f'The initial set needs 1 <= size <= {n} (the pool), got {size}.')
  if method == 'random':
    return random_items(n, size, seed)
  embeddings = np.asarray(embed(images) if embed is not None else pixel_embeddings(images, seed=seed), np.float32)
  rng = jax.random.fold_in(jax.random.key(seed), 0xC01D)
  if method == 'kmeans':
    inputs = query_lib.QueryInputs(jnp.ones(n, bool), jnp.zeros(n, bool), embeddings=jnp.asarray(embeddings))
    return np.asarray(query_lib.select('kmeans', inputs, size, rng), np.int64)
  return typiclust(embeddings, size, rng)
