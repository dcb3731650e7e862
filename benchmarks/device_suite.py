r"""The accelerator suite: jal beside PyTorch on the device it runs on, one command, one report.

  python benchmarks/device_suite.py --out=docs/results/gpu            # one GPU or TPU: about 8 minutes
  python benchmarks/device_suite.py --tiny --out=/tmp/device_suite    # any machine, seconds (a test runs it)

Writes report.md (the machine, the date, one table per section) and rows.jsonl (one JSON row per measurement)
under --out, and prints the report. PyTorch is optional (never a dependency of jal): without it, its columns say so.

  throughput  training and inference img/s of A(1,1), A(1,2), A(2,2), A(2,4) at width 64 on 28x28x1 images, batch
              128 and 512, float32 and bfloat16 (jal's `ModelConfig.precision`; PyTorch's autocast): jal's jitted
              step against PyTorch eager and `torch.compile` (A(1,2) and A(2,4) in float32: each compile takes
              tens of seconds, and the suite must fit 8 minutes), SGD-Nesterov, no augmentation.
  seeds       1, 3, 5 and 10 seeds of A(1,2) at width 16 trained by `jal.train`, vmapped against in turn: img/s
              over all seeds (the design's claim that vmapped seeds fill an accelerator).
  round       one active-learning round: train A(1,2) width 16 on 1,000 labels (the same steps and batch), score a
              50,000-item pool, select 1,000 with margin, coreset and BADGE; jal (`jal.train`, `jal.predict`,
              `jal.query`) against a PyTorch loop written after DeepAL's (per-batch Python loop, `torch.cdist`
              k-center, k-means++ over materialised gradient embeddings).
  inas        one iNAS round's three candidates (A(1,2), A(2,2), A(1,3)) trained one after another by `jal.train`
              (overlapping them on one device is not built: XLA runs one executable at a time per stream).
  kernels     margin, coreset and BADGE selecting 1,000 items of a 1M-item pool from its outputs (`jal.query`).

Each number is the median of --repeats timed runs after one warm-up run (which compiles; its seconds are recorded
apart as `compile_s`). Synthetic images: speed does not depend on pixel values.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')  # Leave device memory for PyTorch too.

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

ARCHS = ((1, 1), (1, 2), (2, 2), (2, 4))
FULL = dict(archs=ARCHS, width=64, batches=(128, 512), steps=30, infer_batch=1024, seeds=(1, 3, 5, 10),
            seed_width=16, seed_steps=40, labels=1000, pool=50_000, budget=1000, round_steps=320, round_width=16,
            kernel_pool=1_000_000, kernel_dim=64, compile_archs=((1, 2), (2, 4)), inas_archs=((1, 2), (2, 2), (1, 3)),
            repeats=3)
# One architecture at the tiny size: every architecture runs the same code, and compiling is the test's time.
TINY = dict(archs=((1, 1),), width=4, batches=(8,), steps=2, infer_batch=16, seeds=(2,), seed_width=4,
            seed_steps=2, labels=40, pool=300, budget=20, round_steps=4, round_width=4, kernel_pool=2000,
            kernel_dim=8, compile_archs=((1, 1),), inas_archs=((1, 1), (1, 2)), repeats=1)


def _median_time(run, repeats: int) -> tuple[float, float]:
  """(median seconds of `repeats` calls of `run` after a warm-up call, the warm-up's seconds)."""
  start = time.perf_counter()
  run()
  warm = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times), warm


def _images(n: int, channels_last: bool = True) -> np.ndarray:
  rng = np.random.default_rng(0)
  return rng.normal(size=(n, 28, 28, 1) if channels_last else (n, 1, 28, 28)).astype(np.float32)


# --- jal. ---

def jal_throughput(arch, width, batch, precision, steps, infer_batch, repeats) -> dict:
  """img/s of jal's jitted, donated training step and of its inference forward on fixed batches."""
  import importlib

  import jal
  train_lib = importlib.import_module('jal.train')
  model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=width, precision=precision))
  config = jal.TrainConfig(augment=jal.AugmentConfig(flip=False, shift=0))
  tx = train_lib.make_optimizer(config, 1000)
  step = jax.jit(lambda s, x, y, k: train_lib.train_step(s, x, y, k, model=model, tx=tx,
                                                        augment_config=config.augment), donate_argnums=0)
  images, labels = jnp.asarray(_images(batch)), jnp.asarray(np.arange(batch) % 10, jnp.int32)
  state = [train_lib.create_train_state(model, tx, jax.random.key(0), (28, 28, 1))]

  def train_steps():
    for i in range(steps):
      state[0], metrics = step(state[0], images, labels, jax.random.key(i))
    jax.block_until_ready(metrics)

  train_s, train_compile = _median_time(train_steps, repeats)
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False).logits)
  infer_images = jnp.asarray(_images(infer_batch))
  variables = state[0].variables

  def infer():
    for _ in range(max(1, steps // 3)):
      out = forward(variables, infer_images)
    jax.block_until_ready(out)

  infer_s, infer_compile = _median_time(infer, repeats)
  return {'train_ips': steps * batch / train_s, 'infer_ips': max(1, steps // 3) * infer_batch / infer_s,
          'compile_s': train_compile - train_s + infer_compile - infer_s}


def jal_seeds(seeds, width, steps, repeats) -> dict:
  """img/s over all seeds of `jal.train` with the seeds vmapped and in turn."""
  import dataclasses

  import jal
  model = jal.build_model(jal.Architecture(1, 2), 10, jal.ModelConfig(width=width))
  images, labels = _images(1024), np.arange(1024) % 10
  config = jal.TrainConfig(epochs=1, examples_per_epoch=steps * 128, batch_size=128)
  keys = jax.random.split(jax.random.key(0), seeds)
  out = {}
  for parallelism in ('sequential', 'vmap'):
    cfg = dataclasses.replace(config, seed_parallelism=parallelism)
    seconds, _ = _median_time(lambda cfg=cfg: jal.train(model, cfg, images, labels, keys), repeats)
    out[parallelism] = seeds * steps * 128 / seconds
  return out


def jal_round(labels, pool, budget, steps, width, repeats) -> dict:
  """Seconds of one round in jal: train on `labels` items, score `pool` items, select `budget` per strategy."""
  import jal
  from jal import query
  images = _images(pool)
  targets = (np.arange(pool) % 10).astype(np.int32)
  labeled = np.zeros(pool, bool)
  labeled[:labels] = True
  model = jal.build_model(jal.Architecture(1, 2), 10, jal.ModelConfig(width=width))
  config = jal.TrainConfig(epochs=1, examples_per_epoch=steps * 128, batch_size=128)
  result = {}
  result['train'], _ = _median_time(lambda: jal.train(model, config, images, targets, jax.random.key(0), labeled),
                                    repeats)
  variables = jal.train(model, config, images, targets, jax.random.key(0), labeled).state_for_seed(0).variables
  inputs = [None]

  def score():
    inputs[0] = query.pool_inputs('badge', model, variables, images, ~labeled, labeled, jax.random.key(1))
    jax.block_until_ready(inputs[0].probs)

  result['score'], _ = _median_time(score, repeats)
  for name in ('margin', 'coreset', 'badge'):
    result[name], _ = _median_time(lambda name=name: query.select(name, inputs[0], budget, jax.random.key(2)),
                                   repeats)
  return result


def jal_inas(archs, width, steps, repeats) -> dict:
  """Seconds to train one iNAS round's candidates (`archs`, (i, j) pairs) one after another."""
  import jal
  images, labels = _images(1024), np.arange(1024) % 10
  config = jal.TrainConfig(epochs=1, examples_per_epoch=steps * 128, batch_size=128)
  models = [jal.build_model(jal.Architecture(*a), 10, jal.ModelConfig(width=width)) for a in archs]
  seconds, _ = _median_time(lambda: [jal.train(m, config, images, labels, jax.random.key(0)) for m in models],
                            repeats)
  return {'in_turn': seconds}


def jal_kernels(pool, dim, budget, repeats) -> dict:
  """Seconds of margin, coreset and BADGE selecting `budget` of `pool` items from given outputs."""
  from jal import query
  rng = np.random.default_rng(0)
  labeled = np.zeros(pool, bool)
  labeled[rng.choice(pool, 1000 if pool > 10_000 else pool // 10, replace=False)] = True
  inputs = query.QueryInputs(jnp.asarray(~labeled), jnp.asarray(labeled),
                             jax.nn.softmax(jnp.asarray(rng.normal(size=(pool, 10)), jnp.float32)),
                             jnp.asarray(rng.normal(size=(pool, dim)), jnp.float32))
  return {name: _median_time(lambda name=name: query.select(name, inputs, budget, jax.random.key(0)), repeats)[0]
          for name in ('margin', 'coreset', 'badge')}


# --- PyTorch, written as its users do (the peer). ---

def _torch_model(arch, width, torch, channels=1):
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
      super().__init__()
      self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out)
      self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)
      self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
          nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      layers = [nn.Conv2d(channels, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
      c_in = width
      for s in range(arch[1]):
        for i in range(arch[0]):
          layers.append(Block(c_in, width * 2**s, 2 if s > 0 and i == 0 else 1))
          c_in = width * 2**s
      self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
      self.head = nn.Linear(c_in, 10)

    def forward(self, x):
      embedding = self.features(x)
      return self.head(embedding), embedding

  return Net()


def _sync(torch):
  if torch.cuda.is_available():
    torch.cuda.synchronize()


def torch_throughput(arch, width, batch, precision, steps, infer_batch, repeats, compiled) -> dict:
  import torch
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  model = _torch_model(arch, width, torch).to(device)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
  images = torch.from_numpy(_images(batch, channels_last=False)).to(device)
  labels = (torch.arange(batch) % 10).to(device)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == 'bfloat16')
  forward = torch.compile(model) if compiled else model

  def train_steps():
    model.train()
    for _ in range(steps):
      optimizer.zero_grad(set_to_none=True)
      with autocast:
        loss = torch.nn.functional.cross_entropy(forward(images)[0], labels)
      loss.backward()
      optimizer.step()
    _sync(torch)

  train_s, train_warm = _median_time(train_steps, repeats)
  infer_images = torch.from_numpy(_images(infer_batch, channels_last=False)).to(device)

  def infer():
    model.eval()
    with torch.no_grad(), autocast:
      for _ in range(max(1, steps // 3)):
        forward(infer_images)
    _sync(torch)

  infer_s, infer_warm = _median_time(infer, repeats)
  return {'train_ips': steps * batch / train_s, 'infer_ips': max(1, steps // 3) * infer_batch / infer_s,
          'compile_s': train_warm - train_s + infer_warm - infer_s}


def torch_round(labels, pool, budget, steps, width, repeats) -> dict:
  """The same round as `jal_round`, as DeepAL's strategies compute it (github.com/ej0cl6/deep-active-learning)."""
  import torch
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  images = torch.from_numpy(_images(pool, channels_last=False))
  targets = torch.arange(pool) % 10
  labeled = torch.zeros(pool, dtype=torch.bool)
  labeled[:labels] = True
  model = _torch_model((1, 2), width, torch).to(device)
  result = {}

  def train():
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    order = torch.nonzero(labeled).flatten()
    model.train()
    for _ in range(steps):
      batch = order[torch.randint(len(order), (128,))]
      optimizer.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(model(images[batch].to(device))[0], targets[batch].to(device))
      loss.backward()
      optimizer.step()
    _sync(torch)

  result['train'], _ = _median_time(train, repeats)
  outputs = {}

  def score():
    model.eval()
    probs, embeddings = [], []
    with torch.no_grad():
      for start in range(0, pool, 1024):
        logits, embedding = model(images[start:start + 1024].to(device))
        probs.append(torch.softmax(logits, 1))
        embeddings.append(embedding)
    outputs['probs'], outputs['embeddings'] = torch.cat(probs), torch.cat(embeddings)
    _sync(torch)

  result['score'], _ = _median_time(score, repeats)
  unlabeled = torch.nonzero(~labeled).flatten().to(device)

  def margin():
    top2 = outputs['probs'][unlabeled].topk(2, 1).values
    return unlabeled[(top2[:, 0] - top2[:, 1]).argsort()[:budget]].cpu()

  def coreset():  # DeepAL's KCenterGreedy: distances to the labelled set, then farthest-first.
    embeddings = outputs['embeddings']
    distances = torch.cdist(embeddings, embeddings[labeled.to(device)]).min(1).values
    distances[labeled.to(device)] = -1
    picked = []
    for _ in range(budget):
      index = int(distances.argmax())
      picked.append(index)
      distances = torch.minimum(distances, torch.cdist(embeddings, embeddings[index:index + 1]).flatten())
      distances[index] = -1
    return picked

  def badge():  # DeepAL's BADGE: materialised gradient embeddings, k-means++ seeding.
    probs, embeddings = outputs['probs'][unlabeled], outputs['embeddings'][unlabeled]
    onehot = torch.nn.functional.one_hot(probs.argmax(1), 10).float()
    gradients = ((probs - onehot)[:, :, None] * embeddings[:, None, :]).flatten(1)
    first = int(gradients.norm(dim=1).argmax())
    picked, distances = [first], torch.cdist(gradients, gradients[first:first + 1]).flatten() ** 2
    generator = torch.Generator(device=gradients.device).manual_seed(0)
    for _ in range(budget - 1):
      index = int(torch.multinomial(distances / distances.sum(), 1, generator=generator))
      picked.append(index)
      distances = torch.minimum(distances, torch.cdist(gradients, gradients[index:index + 1]).flatten() ** 2)
    return unlabeled[picked].cpu()

  for name, fn in (('margin', margin), ('coreset', coreset), ('badge', badge)):
    result[name], _ = _median_time(lambda fn=fn: (fn(), _sync(torch)), repeats)
  return result


# --- The report. ---

def _machine() -> str:
  device = jax.devices()[0]
  return (f'{datetime.date.today()}, {device.platform} ({device.device_kind}), {jax.device_count()} device(s), '
          f'JAX {jax.__version__}, {platform.machine()}, {os.cpu_count()} CPUs')


def run(sizes: dict, out_dir: str, with_torch: bool, sections: tuple[str, ...]) -> str:
  try:
    import torch
    torch_version = torch.__version__ if with_torch else None
  except ImportError:
    torch_version = None
  rows, lines = [], [f'# Device suite\n\n{_machine()}; PyTorch {torch_version or "not run"}.\n']

  def add(section, **row):
    rows.append({'section': section, **row})
    return row

  started = time.perf_counter()

  if 'throughput' in sections:
    lines += ['## Throughput (img/s)\n', '| arch | batch | precision | jal train | torch train | torch.compile train '
              '| jal infer | torch infer | torch.compile infer | jal compile s |', '|' + '---|' * 10]
    for arch in sizes['archs']:
      for batch in sizes['batches']:
        for precision in ('float32', 'bfloat16'):
          jal_row = jal_throughput(arch, sizes['width'], batch, precision, sizes['steps'], sizes['infer_batch'],
                                   sizes['repeats'])
          peers = {}
          for compiled in (False, True):
            if torch_version is None or (compiled and (arch not in sizes['compile_archs'] or precision != 'float32')):
              continue
            try:
              peers[compiled] = torch_throughput(arch, sizes['width'], batch, precision, sizes['steps'],
                                                 sizes['infer_batch'], sizes['repeats'], compiled)
            except Exception as error:  # torch.compile fails on some setups: say so, keep going.
              peers[compiled] = {'error': f'{type(error).__name__}: {error}'[:200]}
          add('throughput', arch=f'A{arch}', batch=batch, precision=precision, jal=jal_row,
              torch=peers.get(False), torch_compile=peers.get(True))
          cell = lambda r, k: f'{r[k]:,.0f}' if r and k in r else ('failed' if r else '—')  # noqa: E731
          lines.append(f'| A({arch[0]},{arch[1]}) | {batch} | {precision} | {jal_row["train_ips"]:,.0f} | '
                       f'{cell(peers.get(False), "train_ips")} | {cell(peers.get(True), "train_ips")} | '
                       f'{jal_row["infer_ips"]:,.0f} | {cell(peers.get(False), "infer_ips")} | '
                       f'{cell(peers.get(True), "infer_ips")} | {jal_row["compile_s"]:.1f} |')
  if 'seeds' in sections:
    lines += [f"\n## Seeds: A(1,2) width {sizes['seed_width']}, img/s over all seeds\n",
              '| seeds | in turn | vmapped | vmapped / in turn |', '|---|---|---|---|']
    for seeds in sizes['seeds']:
      r = add('seeds', seeds=seeds, **jal_seeds(seeds, sizes['seed_width'], sizes['seed_steps'], sizes['repeats']))
      lines.append(f"| {seeds} | {r['sequential']:,.0f} | {r['vmap']:,.0f} | {r['vmap'] / r['sequential']:.2f}x |")
  if 'round' in sections:
    args = (sizes['labels'], sizes['pool'], sizes['budget'], sizes['round_steps'], sizes['round_width'],
            sizes['repeats'])
    ours = add('round', framework='jal', **jal_round(*args))
    theirs = add('round', framework='torch', **torch_round(*args)) if torch_version else None
    lines += [f"\n## One round: train on {sizes['labels']:,}, score {sizes['pool']:,}, select {sizes['budget']:,} "
              '(seconds)\n', '| phase | jal | PyTorch (DeepAL-style) | PyTorch / jal |', '|---|---|---|---|']
    for phase in ('train', 'score', 'margin', 'coreset', 'badge'):
      other = f"{theirs[phase]:.2f} | {theirs[phase] / ours[phase]:.2f}x" if theirs else '— | —'
      lines.append(f'| {phase} | {ours[phase]:.2f} | {other} |')
    total = lambda r: r['train'] + r['score'] + r['margin']  # noqa: E731
    if theirs:
      lines.append(f'| train + score + margin | {total(ours):.2f} | {total(theirs):.2f} | '
                   f'{total(theirs) / total(ours):.2f}x |')
  if 'inas' in sections:
    r = add('inas', **jal_inas(sizes['inas_archs'], sizes['round_width'], sizes['round_steps'], sizes['repeats']))
    names = ', '.join(f'A({i},{j})' for i, j in sizes['inas_archs'])
    lines += [f'\n## One iNAS round: {names} trained in turn\n',
              f"{r['in_turn']:.2f} s (overlapping candidates on one device: not built)."]
  if 'kernels' in sections:
    r = add('kernels', pool=sizes['kernel_pool'], **jal_kernels(sizes['kernel_pool'], sizes['kernel_dim'],
                                                                sizes['budget'], sizes['repeats']))
    lines += [f"\n## Query kernels: {sizes['budget']:,} of {sizes['kernel_pool']:,} items (seconds)\n",
              '| margin | coreset | BADGE |', '|---|---|---|',
              f"| {r['margin']:.3f} | {r['coreset']:.2f} | {r['badge']:.2f} |"]
  lines.append(f'\nThe suite took {time.perf_counter() - started:.0f} s.')
  report = '\n'.join(lines) + '\n'
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'report.md'), 'w', encoding='utf-8') as f:
    f.write(report)
  with open(os.path.join(out_dir, 'rows.jsonl'), 'w', encoding='utf-8') as f:
    f.writelines(json.dumps({'machine': _machine(), **row}) + '\n' for row in rows)
  return report


SECTIONS = ('throughput', 'seeds', 'round', 'inas', 'kernels')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--out', required=True)
  parser.add_argument('--tiny', action='store_true', help='Tiny sizes: seconds on any machine (the CPU test).')
  parser.add_argument('--no_torch', action='store_true', help='Skip PyTorch even where it is installed.')
  parser.add_argument('--sections', default=','.join(SECTIONS))
  args = parser.parse_args(argv)
  sections = tuple(args.sections.split(','))
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    parser.error(f'unknown sections {sorted(unknown)}; valid: {SECTIONS}')
  print(run(TINY if args.tiny else FULL, args.out, not args.no_torch, sections))


if __name__ == '__main__':
  sys.exit(main())
