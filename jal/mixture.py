"""Gaussian mixtures in D dimensions with full covariances, fitted by EM in JAX (scikit-learn's updates), for
AutoAL's thresholds (Wang, Zhan & Huang, ICML 2025): a mixture over the candidates' [N, K] score vectors, sampled
to place each strategy's threshold. Jittable, so a fit runs inside a training step.

  init_mixture       a k-means++ start (scikit-learn's default init), spread over the data even when most points tie
  quantile_mixture   per-dimension quantile means, the previous start, kept for an ablation
  fit_mixture        EM from a start
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class GaussianMixture:
  """M components in D dimensions: weights [M], means [M, D], covariances [M, D, D]."""

  weights: jax.Array
  means: jax.Array
  covariances: jax.Array

  def log_prob_components(self, x: jax.Array) -> jax.Array:
    """[N, M] log(w_m N(x_n | mu_m, Sigma_m)) for x [N, D]."""
    chol = jnp.linalg.cholesky(self.covariances)                                   # [M, D, D]
    diff = x[None, :, :] - self.means[:, None, :]                                  # [M, N, D]
    solved = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(diff, 1, 2), lower=True)  # [M, D, N]
    mahalanobis = jnp.sum(solved**2, axis=1)                                       # [M, N]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)  # [M]
    dim = x.shape[1]
    log_normal = -0.5 * (dim * jnp.log(2 * jnp.pi) + log_det[:, None] + mahalanobis)
    return (jnp.log(self.weights)[:, None] + log_normal).T

  def log_likelihood(self, x: jax.Array) -> jax.Array:
    """Mean log-density of x [N, D] (scikit-learn's `score`)."""
    return jnp.mean(jax.nn.logsumexp(self.log_prob_components(x), axis=1))

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """[num, D] draws."""
    component_rng, normal_rng = jax.random.split(rng)
    component = jax.random.categorical(component_rng, jnp.log(self.weights), shape=(num,))
    noise = jax.random.normal(normal_rng, (num, self.means.shape[1]))
    chol = jnp.linalg.cholesky(self.covariances)
    return self.means[component] + jnp.einsum('nij,nj->ni', chol[component], noise)


def _hard_mixture(x: jax.Array, centres: jax.Array, reg_covar: float) -> GaussianMixture:
  """Weights, means and covariances of the hard clusters of x [N, D] around centres [M, D]."""
  num, dim = x.shape
  components = centres.shape[0]
  assign = jax.nn.one_hot(jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), axis=1), components)
  counts = assign.sum(0)
  diff = x[None, :, :] - centres[:, None, :]
  scatter = jnp.einsum('nm,mni,mnj->mij', assign, diff, diff) / jnp.maximum(counts, 1.0)[:, None, None]
  overall = jnp.cov(x.T, bias=True).reshape(dim, dim)
  covariances = jnp.where((counts > 1)[:, None, None], scatter, overall[None]) + reg_covar * jnp.eye(dim)
  eps = 10 * jnp.finfo(jnp.float32).eps
  weights = (counts + eps) / (num + eps * components)
  return GaussianMixture(weights, centres, covariances)


@functools.partial(jax.jit, static_argnames=('num_components', 'lloyd_iterations'))
def init_mixture(x: jax.Array, num_components: int, rng: jax.Array, lloyd_iterations: int = 10,
                 reg_covar: float = 1e-6) -> GaussianMixture:
  """A start spread over x [N, D], as scikit-learn's k-means init: k-means++ seeds drawn with `rng` (each next seed
  with probability proportional to its squared distance from those chosen), a few Lloyd steps, then the hard
  clusters' weights, means and covariances.

  On tied data (most rows of a batch unmarked share one score) quantile starts put every mean on the tied value and
  EM never separates them; k-means++ never picks a point already chosen while another is left. With fewer distinct
  points than components the extra components duplicate a centre with a tiny weight.
  """
  x = x.astype(jnp.float32)
  keys = jax.random.split(rng, num_components)
  first = x[jax.random.randint(keys[0], (), 0, x.shape[0])]
  centres = jnp.broadcast_to(first, (num_components, x.shape[1]))

  def pick(m, centres):
    chosen = jnp.where(jnp.arange(num_components) < m, 0.0, jnp.inf)
    distance = jnp.min(jnp.sum((x[:, None] - centres[None]) ** 2, -1) + chosen[None, :], axis=1)
    logits = jnp.where(distance > 0, jnp.log(jnp.maximum(distance, 1e-30)), -jnp.inf)
    logits = jnp.where(jnp.all(distance <= 0), 0.0, logits)  # Nothing left to spread to: any point.
    return centres.at[m].set(x[jax.random.categorical(keys[m], logits)])

  centres = jax.lax.fori_loop(1, num_components, pick, centres)

  def lloyd(_, centres):
    assign = jax.nn.one_hot(jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), axis=1), num_components)
    counts = assign.sum(0)
    return jnp.where((counts > 0)[:, None], assign.T @ x / jnp.maximum(counts, 1.0)[:, None], centres)

  centres = jax.lax.fori_loop(0, lloyd_iterations, lloyd, centres)
  return _hard_mixture(x, centres, reg_covar)


def quantile_mixture(x: jax.Array, num_components: int, reg_covar: float = 1e-6) -> GaussianMixture:
  """The previous start, kept for the ablation: means at evenly spaced per-dimension quantiles of x [N, D], equal
  weights, x's covariance. On tied data every mean lands on the tied value and EM cannot separate them."""
  quantiles = (jnp.arange(num_components) + 0.5) / num_components
  dim = x.shape[1]
  covariance = jnp.cov(x.T, bias=True).reshape(dim, dim) + reg_covar * jnp.eye(dim)
  return GaussianMixture(jnp.full(num_components, 1.0 / num_components), jnp.quantile(x, quantiles, axis=0),
                         jnp.broadcast_to(covariance, (num_components, dim, dim)))


@functools.partial(jax.jit, static_argnames=('iterations',))
def fit_mixture(x: jax.Array, init: GaussianMixture, iterations: int, reg_covar: float = 1e-6) -> GaussianMixture:
  """EM on x [N, D] from `init`, `iterations` E+M steps (scikit-learn's full-covariance updates: responsibilities,
  then weights, means and covariances + reg_covar·I)."""
  x = x.astype(jnp.float32)
  eps = 10 * jnp.finfo(jnp.float32).eps
  eye = jnp.eye(x.shape[1])

  def em(_, gmm):
    resp = jax.nn.softmax(gmm.log_prob_components(x), axis=1)  # E-step: [N, M].
    counts = resp.sum(0) + eps
    means = resp.T @ x / counts[:, None]
    diff = x[None, :, :] - means[:, None, :]
    covariances = jnp.einsum('nm,mni,mnj->mij', resp, diff, diff) / counts[:, None, None] + reg_covar * eye
    return GaussianMixture(counts / x.shape[0], means, covariances)

  return jax.lax.fori_loop(0, iterations, em, init)
