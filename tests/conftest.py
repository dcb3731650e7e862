"""Shared fixtures: tiny synthetic problems and a Fashion-MNIST subset."""

import os
import shutil
import tempfile

import jax
import numpy as np
import pytest

from jal import data

# One persistent XLA compilation cache for the whole session, shared by the tests in this process, by the xdist
# workers (they inherit the controller's environment) and by the binaries the tests start: the smoke configs compile
# the same small networks again and again, and compiling is most of their time. Fresh per session (CI starts cold)
# and removed at its end; a cache the user set is left alone.
_CREATED_CACHE = None
if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
  _CREATED_CACHE = os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jal-tests-xla-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs',
                  float(os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']))


def pytest_sessionfinish(session):
  """The process that made the session's cache (the xdist controller, or the only process) removes it."""
  del session
  if _CREATED_CACHE is not None:
    shutil.rmtree(_CREATED_CACHE, ignore_errors=True)


@pytest.fixture(scope='session')
def fashion_mnist():
  """Normalised Fashion-MNIST splits (2,000-image pool, 1,000 test images), or skip if the package is absent."""
  if not os.path.isdir(data.FASHION_MNIST_DIR):
    pytest.skip('Debian package dataset-fashion-mnist is not installed (.ci/run installs it).')
  return data.load_splits(pool_size=2000, test_size=1000, seed=0)


@pytest.fixture(scope='session')
def tiny_problem():
  """64 8x8x1 images whose class (of 2) is the sign of a central patch: learnable in a few steps."""
  rng = np.random.default_rng(0)
  images = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
  labels = (images[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
  return images, labels
