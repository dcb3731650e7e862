r"""Scoring and selecting over a pool that is never whole in memory: peak RSS and seconds at two pool sizes.

  python benchmarks/large_pool.py --sizes=250000,1000000 --budget=1000 --dir=/tmp/jal_pools

For each size N, a uint8 pool file of N Fashion-MNIST-shaped images (the 60,000 training images, each copy
shifted and flipped so no two items are equal; written in chunks) and, in a fresh process so its peak RSS is its
own: streaming normalisation statistics; the task model A(1,2) at width 16 trained on 1,000 of its items (320 SGD
steps of 128); one pass of the model over the pool read 4,096 rows at a time from the file (`jal.data.NpyPool`),
normalised on the device, probabilities and embeddings gathered on the host in float16; then entropy, coreset
(greedy k-center) and BADGE select `budget` items each. Prints a markdown table: seconds per phase and the
process's peak RSS (ru_maxrss), so the two sizes show how time and memory grow with N.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_pool(path: str, size: int) -> None:
  """N 28x28x1 uint8 images: Fashion-MNIST's training images, copy k shifted by (k mod 5 - 2, k // 5 mod 5 - 2)
  pixels and flipped on odd k; written chunk by chunk (never N images in memory)."""
  from jal import data
  if os.path.exists(path) and np.load(path, mmap_mode='r').shape[0] == size:
    return
  base = data.load_fashion_mnist('train').images  # [60000, 28, 28, 1] uint8
  out = np.lib.format.open_memmap(path + '.tmp', mode='w+', dtype=np.uint8, shape=(size, 28, 28, 1))
  for copy, start in enumerate(range(0, size, len(base))):
    count = min(len(base), size - start)
    block = np.roll(base[:count], (copy % 5 - 2, copy // 5 % 5 - 2), axis=(1, 2))
    out[start:start + count] = block[:, :, ::-1] if copy % 2 else block
    out.flush()
  del out
  os.replace(path + '.tmp', path)


def worker(path: str, budget: int) -> dict:
  import jax

  from jal import data, query
  from jal.models import ModelConfig, build_model
  from jal.search_space import Architecture
  from jal.train import TrainConfig, train

  times, peaks = {}, {}
  pool = data.NpyPool(path)
  start = time.perf_counter()
  mean, std = data.streaming_normalization_stats(pool)
  times['stats'], peaks['stats'] = time.perf_counter() - start, _peak_mib()

  labeled = np.zeros(len(pool), bool)
  labeled[np.random.default_rng(0).choice(len(pool), 1000, replace=False)] = True
  train_idx = np.flatnonzero(labeled)
  train_images = ((pool[train_idx] / 255.0 - mean) / std).astype(np.float32)  # Only L in memory.
  train_labels = np.resize(data.load_fashion_mnist('train').labels, len(pool))[train_idx]
  model = build_model(Architecture(1, 2), 10, ModelConfig(width=16))
  start = time.perf_counter()
  config = TrainConfig(epochs=5, examples_per_epoch=8192, batch_size=128)
  variables = train(model, config, train_images, train_labels, jax.random.key(0)).state_for_seed(0).variables
  times['train'], peaks['train'] = time.perf_counter() - start, _peak_mib()

  start = time.perf_counter()
  inputs = query.pool_inputs('badge', model, variables, pool, ~labeled, labeled, jax.random.key(1),
                             batch_size=4096, normalization=(mean, std), dtype=np.float16)
  times['score'], peaks['score'] = time.perf_counter() - start, _peak_mib()
  for name in ('entropy', 'coreset', 'badge'):
    start = time.perf_counter()
    picked = query.select(name, inputs, budget, jax.random.key(2))
    assert len(set(picked.tolist())) == budget and not labeled[picked].any()
    times[name], peaks[name] = time.perf_counter() - start, _peak_mib()
  return {'size': len(pool), 'times': times, 'peaks': peaks, 'peak_mib': _peak_mib(),
          'outputs_mib': (inputs.probs.nbytes + inputs.embeddings.nbytes) / 2**20,
          'pool_file_mib': os.path.getsize(path) / 2**20}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sizes', default='250000,1000000')
  parser.add_argument('--budget', type=int, default=1000)
  parser.add_argument('--dir', default='/tmp/jal_pools')
  parser.add_argument('--worker', default=None, help='Internal: measure one pool file in this process.')
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args.worker, args.budget)))
    return
  os.makedirs(args.dir, exist_ok=True)
  results = []
  for size in (int(s) for s in args.sizes.split(',')):
    path = os.path.join(args.dir, f'pool_{size}.npy')
    make_pool(path, size)
    out = subprocess.run([sys.executable, __file__, f'--worker={path}', f'--budget={args.budget}'],
                         capture_output=True, text=True, check=True)
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  import jax
  print(f'{time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'JAX {jax.__version__} ({jax.default_backend()}); budget {args.budget}, A(1,2) width 16, chunks of 4096.\n')
  print('| pool N | pool file | stats s | train on 1,000 s | score s (img/s) | entropy s | coreset s | BADGE s | '
        'outputs on host | peak RSS after scoring | peak RSS |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for r in results:
    t = r['times']
    print(f"| {r['size']:,} | {r['pool_file_mib']:,.0f} MiB | {t['stats']:.1f} | {t['train']:.1f} | {t['score']:.1f} "
          f"({r['size'] / t['score']:,.0f}) | {t['entropy']:.2f} | {t['coreset']:.1f} | {t['badge']:.1f} | "
          f"{r['outputs_mib']:.0f} MiB | {r['peaks']['score']:,.0f} MiB | {r['peak_mib']:,.0f} MiB |")
  if len(results) == 2:
    a, b = results
    ratio = b['size'] / a['size']
    grows = {k: b['times'][k] / a['times'][k] for k in ('score', 'coreset', 'badge')}
    print(f"\nN x{ratio:.1f}: score time x{grows['score']:.2f}, coreset x{grows['coreset']:.2f}, BADGE "
          f"x{grows['badge']:.2f}, peak RSS x{b['peak_mib'] / a['peak_mib']:.2f}.")


if __name__ == '__main__':
  main()
