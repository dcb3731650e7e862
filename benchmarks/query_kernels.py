r"""Time and peak memory of every query strategy choosing b items from a pool, and k-center against numpy.

  python benchmarks/query_kernels.py                       # N = 60,000, D = 512, C = 10, b = 1000
  python benchmarks/query_kernels.py --pool=5000 --budget=100

Pool outputs are random (logits, and embeddings of ResNet-18's width, 512); MC-dropout strategies include their
T = 100 head passes. Time excludes compilation. Memory is XLA's temporary allocation of the compiled kernel
(`memory_analysis().temp_size_in_bytes`): the working set beyond inputs and outputs. The numpy reference is
k-center as the DeepAL toolbox writes it (the full pool x pool distance matrix), run on the largest pool that
fits, with peak memory from tracemalloc.
"""

import argparse
import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np

from jal import query
from jal.models import Head


def _numpy_k_center(embeddings, labeled_mask, budget):
  """DeepAL-style greedy k-center: the full distance matrix, then b greedy picks."""
  sq = (embeddings**2).sum(1)
  distances = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * embeddings @ embeddings.T, 0))
  min_distances = distances[:, labeled_mask].min(axis=1)
  labeled = labeled_mask.copy()
  chosen = []
  for _ in range(budget):
    index = int(np.argmax(np.where(labeled, -1, min_distances)))
    chosen.append(index)
    labeled[index] = True
    min_distances = np.minimum(min_distances, distances[:, index])
  return chosen


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--pool', type=int, default=60_000)
  parser.add_argument('--dim', type=int, default=512)
  parser.add_argument('--classes', type=int, default=10)
  parser.add_argument('--budget', type=int, default=1000)
  parser.add_argument('--labeled', type=int, default=2000)
  parser.add_argument('--mc-passes', type=int, default=100)
  parser.add_argument('--numpy-pools', default='5000,10000,20000', help='pool sizes for the numpy k-center')
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(args.pool, args.classes)) * 2, jnp.float32)
  embeddings = jnp.asarray(np.abs(rng.normal(size=(args.pool, args.dim))), jnp.float32)
  labeled_mask = np.zeros(args.pool, bool)
  labeled_mask[rng.choice(args.pool, args.labeled, replace=False)] = True
  base = query.QueryInputs(jnp.asarray(~labeled_mask), jnp.asarray(labeled_mask), jax.nn.softmax(logits),
                           embeddings)
  head = Head(args.classes, 0.5)
  head_variables = {'params': head.init(jax.random.key(0), embeddings[:1])['params']}
  variables = {'params': {'head': head_variables['params']}}

  class _Model:  # What mc_dropout_stats reads of a model.
    num_classes = args.classes
    dropout_rate = 0.5

  print(f'# query kernels: JAX {jax.__version__} ({jax.default_backend()}), pool {args.pool}, D {args.dim}, '
        f'C {args.classes}, |L| {args.labeled}, b {args.budget}, T {args.mc_passes}')
  print('| strategy | score s | select s | total s | select temp MiB |')
  print('|---|---|---|---|---|')
  for name in sorted(query.QUERIES):
    spec = query.QUERIES[name]
    inputs = base

    def score(inputs=base, spec=spec):
      if 'mc' in spec.needs:
        stats = query.mc_dropout_stats(_Model, variables, embeddings, args.mc_passes, jax.random.key(1))
        inputs = inputs.replace(mc=stats)
      return jax.block_until_ready(inputs)

    inputs = score()  # Compile.
    start = time.perf_counter()
    inputs = score()
    score_seconds = time.perf_counter() - start
    compiled = jax.jit(spec.fn, static_argnums=1).lower(inputs, args.budget, jax.random.key(2)).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    jax.block_until_ready(compiled(inputs, jax.random.key(2)))
    start = time.perf_counter()
    selected = jax.block_until_ready(compiled(inputs, jax.random.key(2)))
    select_seconds = time.perf_counter() - start
    assert len(set(np.asarray(selected).tolist())) == args.budget
    print(f'| {name} | {score_seconds:.3f} | {select_seconds:.3f} | {score_seconds + select_seconds:.3f} | '
          f'{temp:.1f} |', flush=True)

  print('\n# k-center: jal (streamed, jitted) against numpy with the full distance matrix (DeepAL)')
  print('| pool | jal s | jal temp MiB | numpy s | numpy peak MiB | same picks |')
  print('|---|---|---|---|---|---|')
  for pool in [int(p) for p in args.numpy_pools.split(',')] + [args.pool]:
    points = np.asarray(embeddings[:pool], np.float64)
    mask = labeled_mask[:pool]
    inputs = query.QueryInputs(jnp.asarray(~mask), jnp.asarray(mask), embeddings=jnp.asarray(points, jnp.float32))
    compiled = jax.jit(query.coreset, static_argnums=1).lower(inputs, args.budget, jax.random.key(0)).compile()
    jax.block_until_ready(compiled(inputs, jax.random.key(0)))
    start = time.perf_counter()
    picks = np.asarray(jax.block_until_ready(compiled(inputs, jax.random.key(0))))
    jal_seconds = time.perf_counter() - start
    temp = compiled.memory_analysis().temp_size_in_bytes / 2**20
    needed = pool * pool * 8 * 3 / 2**30  # Three float64 N x N temporaries.
    if pool == args.pool and needed > 12:
      print(f'| {pool} | {jal_seconds:.2f} | {temp:.1f} | needs ~{needed:.0f} GiB: not run | — | — |')
      continue
    tracemalloc.start()
    start = time.perf_counter()
    reference = _numpy_k_center(points, mask, args.budget)
    numpy_seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    same = np.mean(np.asarray(reference) == picks)
    print(f'| {pool} | {jal_seconds:.2f} | {temp:.1f} | {numpy_seconds:.2f} | {peak:.0f} | {same:.3f} |',
          flush=True)


if __name__ == '__main__':
  main()
