r"""Scoring and selecting over a pool that is never whole in memory: peak RSS and seconds at two pool sizes.

  python benchmarks/large_pool.py --sizes=250000,1000000 --budget=1000 --dir=/tmp/jal_pools
  python benchmarks/large_pool.py --whole_round --shape=28x28x1 --strategies=margin,coreset,badge
  python benchmarks/large_pool.py --whole_round --shape=32x32x3 --sizes=1000000 --strategies=margin

`--whole_round`: the active-learning loop itself (`jal.loop.run`) on the on-disk pool, one round per strategy in a
fresh process: the pool an `NpyPool` behind `make_splits` (a normalising `PoolView`), checkpointed every phase
(the pool's fingerprint and per-item digests in streamed passes), A(1,2) width 16 trained on 1,000 labels, the
pool scored, `budget` items selected and labelled, and the model trained on the 2,000; seconds per phase from the
round's row, and the process's peak RSS. 32x32x3 items are the 28x28 ones padded by 2 pixels, the channels the
image shifted right by 0, 1 and 2 pixels.

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


def colour(images: np.ndarray) -> np.ndarray:
  """[n, 28, 28, 1] -> [n, 32, 32, 3] uint8: padded by 2 pixels, channel c the image shifted right by c pixels."""
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  return np.concatenate([np.roll(padded, c, axis=2) for c in range(3)], axis=-1)


def make_pool(path: str, size: int, shape: str = '28x28x1') -> None:
  """N uint8 images: Fashion-MNIST's training images, copy k shifted by (k mod 5 - 2, k // 5 mod 5 - 2) pixels
  and flipped on odd k (in `colour` for 32x32x3); written chunk by chunk (never N images in memory)."""
  from jal import data
  item_shape = tuple(int(d) for d in shape.split('x'))
  if os.path.exists(path) and np.load(path, mmap_mode='r').shape == (size, *item_shape):
    return
  base = data.load_fashion_mnist('train').images  # [60000, 28, 28, 1] uint8
  out = np.lib.format.open_memmap(path + '.tmp', mode='w+', dtype=np.uint8, shape=(size, *item_shape))
  for copy, start in enumerate(range(0, size, len(base))):
    count = min(len(base), size - start)
    block = np.roll(base[:count], (copy % 5 - 2, copy // 5 % 5 - 2), axis=(1, 2))
    block = block[:, :, ::-1] if copy % 2 else block
    out[start:start + count] = colour(block) if item_shape[-1] == 3 else block
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


def round_worker(path: str, budget: int, strategy: str, workdir: str) -> dict:
  """One active-learning round of the loop on the pool file at `path` (see the module docstring)."""
  import jax

  from jal import checkpoint, data, loop
  from jal.models import ModelConfig
  from jal.search_space import Architecture
  from jal.train import TrainConfig

  pool = data.NpyPool(path)
  labels = np.resize(data.load_fashion_mnist('train').labels, len(pool)).astype(np.int32)
  test = data.load_fashion_mnist('test').subset(np.arange(2000))
  if pool.shape[-1] == 3:
    test = data.Dataset(colour(test.images), test.labels, test.num_classes, test.name)
  start = time.perf_counter()
  splits = data.make_splits(data.Dataset(pool, labels, 10, f'pool{len(pool)}'), test)
  setup = time.perf_counter() - start
  config = loop.LoopConfig(loop.BudgetSchedule(1000, budget, 1000 + budget),
                           TrainConfig(epochs=5, examples_per_epoch=8192, batch_size=128), ModelConfig(width=16))
  start = time.perf_counter()
  state = loop.run(splits, config, strategy, loop.fixed(Architecture(1, 2)), seed=0,
                   checkpointer=checkpoint.Checkpointer(workdir, {'benchmark': 'large_pool'}))
  total = time.perf_counter() - start
  first, last = state.history
  assert state.num_labeled == 1000 + budget and first['query/size'] == budget
  return {'size': len(pool), 'shape': 'x'.join(map(str, pool.shape[1:])), 'strategy': strategy, 'setup': setup,
          'total': total, 'train': first['time/train'], 'score': first['time/score'],
          'select': first['time/select'], 'final_train': last['time/train'],
          'accuracy': last['test/accuracy'], 'peak_mib': _peak_mib(), 'pool_file_mib': os.path.getsize(path) / 2**20,
          'backend': jax.default_backend()}


def whole_rounds(args) -> None:
  import tempfile

  import jax
  results = []
  for size in (int(s) for s in args.sizes.split(',')):
    path = os.path.join(args.dir, f'pool_{size}_{args.shape}.npy')
    make_pool(path, size, args.shape)
    for strategy in args.strategies.split(','):
      with tempfile.TemporaryDirectory() as workdir:
        out = subprocess.run([sys.executable, __file__, f'--round_worker={path}', f'--budget={args.budget}',
                              f'--strategies={strategy}', f'--dir={workdir}'], capture_output=True, text=True)
      if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
      results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  print(f'{time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
        f'JAX {jax.__version__} ({jax.default_backend()}); one round of jal.loop.run on an on-disk uint8 pool: '
        f'A(1,2) width 16, 1,000 labels + {args.budget}, 5 x 8,192 examples per training.\n')
  print('| pool N | item | pool file | strategy | splits s | train on 1,000 s | score s (img/s) | select s | '
        f'train on {1000 + args.budget:,} s | round s | peak RSS |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for r in results:
    print(f"| {r['size']:,} | {r['shape']} | {r['pool_file_mib']:,.0f} MiB | {r['strategy']} | {r['setup']:.1f} | "
          f"{r['train']:.1f} | {r['score']:.1f} ({r['size'] / r['score']:,.0f}) | {r['select']:.1f} | "
          f"{r['final_train']:.1f} | {r['total']:.1f} | {r['peak_mib']:,.0f} MiB |")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sizes', default='250000,1000000')
  parser.add_argument('--budget', type=int, default=1000)
  parser.add_argument('--dir', default='/tmp/jal_pools')
  parser.add_argument('--worker', default=None, help='Internal: measure one pool file in this process.')
  parser.add_argument('--whole_round', action='store_true', help='Run the loop itself, one round per strategy.')
  parser.add_argument('--shape', default='28x28x1', choices=('28x28x1', '32x32x3'))
  parser.add_argument('--strategies', default='margin,coreset,badge')
  parser.add_argument('--round_worker', default=None, help='Internal: one loop round on this pool file.')
  args = parser.parse_args()
  if args.round_worker:
    print(json.dumps(round_worker(args.round_worker, args.budget, args.strategies, args.dir)))
    return
  if args.whole_round:
    os.makedirs(args.dir, exist_ok=True)
    whole_rounds(args)
    return
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
