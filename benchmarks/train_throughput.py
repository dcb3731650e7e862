r"""Training and inference throughput of the A(i, j) family, JAX (jal) against PyTorch, side by side.

  python benchmarks/train_throughput.py                      # the issue's table: width 64, 28x28x1, batch 128
  python benchmarks/train_throughput.py --archs=1,1 --width=16 --steps=5
  python benchmarks/train_throughput.py --profile-only --impls=auto+ynnpack   # where a training step's time goes

Each (framework, architecture) runs in its own subprocess so that peak memory (max RSS) is its own. PyTorch is
optional (`pip install torch==2.13.0`, CPU build); it is never a dependency of jal. Train: forward, backward and
an SGD-Nesterov update on a fixed batch (no augmentation in either framework). Infer: eval-mode forward at
batch 1024. Every (framework, architecture) runs `--repeats` times, JAX and PyTorch alternating, and the table
gives medians (machines of this kind drift by +-5% between runs). Also: compile time per architecture, each conv
formulation (and 'auto+ynnpack': jal's formulations with `ModelConfig.cpu_fusions='ynnpack'`, `jal.cpu_fusions`),
and vmap vs sequential for 3 seeds.
"""

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _train_setup(arch, width, batch, conv_impl, donate=False):
  """The benchmarked model, its train state, a jitted SGD step (no augmentation) and a fixed random batch."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  import jal

  train_lib = importlib.import_module('jal.train')  # `jal.train` the attribute is the function.
  from jal import cpu_fusions

  conv_impl, _, fusions = conv_impl.partition('+')  # 'auto+ynnpack': ModelConfig.cpu_fusions='ynnpack'.
  model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=width, conv_impl=conv_impl,
                                                                       cpu_fusions=fusions or 'default'))
  config = jal.TrainConfig(augment=jal.AugmentConfig(flip=False, shift=0))
  tx = train_lib.make_optimizer(config, 1000)
  state = train_lib.create_train_state(model, tx, jax.random.key(0), (28, 28, 1))
  step = jax.jit(lambda s, x, y, k: train_lib.train_step(s, x, y, k, model=model, tx=tx,
                                                        augment_config=config.augment),
                 donate_argnums=0 if donate else (), compiler_options=cpu_fusions.compiler_options(model, 'train'))
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(batch, 28, 28, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
  return model, state, step, images, labels, rng


def time_steps(compiled, state, images, labels, steps):
  """(images/s, final state, last metrics) of `steps` calls of a compiled SGD step, after one warm-up call."""
  import jax

  state, _ = compiled(state, images, labels, jax.random.key(1))
  jax.block_until_ready(state)
  start = time.perf_counter()
  for i in range(steps):
    state, metrics = compiled(state, images, labels, jax.random.key(i))
  jax.block_until_ready(metrics)
  return steps * images.shape[0] / (time.perf_counter() - start), state, metrics


def _jax_worker(arch, width, batch, steps, infer_batch, conv_impl):
  import jax
  import jax.numpy as jnp


  model, state, step, images, labels, rng = _train_setup(arch, width, batch, conv_impl, donate=True)
  start = time.perf_counter()
  compiled = step.lower(state, images, labels, jax.random.key(1)).compile()
  compile_seconds = time.perf_counter() - start
  train_ips, state, metrics = time_steps(compiled, state, images, labels, steps)

  forward = jax.jit(lambda v, x: model.apply(v, x).logits,
                    compiler_options=importlib.import_module('jal.cpu_fusions').compiler_options(model, 'infer'))
  infer_images = jnp.asarray(rng.normal(size=(infer_batch, 28, 28, 1)), jnp.float32)
  jax.block_until_ready(forward(state.variables, infer_images))
  infer_steps = max(1, steps // 4)
  start = time.perf_counter()
  for _ in range(infer_steps):
    out = forward(state.variables, infer_images)
  jax.block_until_ready(out)
  infer_ips = infer_steps * infer_batch / (time.perf_counter() - start)
  hlo = compiled.as_text()  # Which ops XLA handed to a library (oneDNN, XNNPACK, YNNPACK) in the training step.
  out = {'train_ips': train_ips, 'infer_ips': infer_ips, 'compile_s': compile_seconds,
         'last_loss': float(metrics['train/loss']),
         'library_fusions': {k: hlo.count(f'"__{k}_fusion"') for k in ('onednn', 'xnn', 'ynn')}}
  if conv_impl.startswith('tuned'):  # Which formulation the tuner took for this model's convs, per direction.
    from jal import layers
    used = layers.conv_tuner().used
    for direction in ('train', 'infer'):
      chosen = [c for k, c in used.items() if f'|{direction}|' in k]
      out[f'{direction}_choice'] = ' '.join(f'{impl} {chosen.count(impl)}' for impl in layers.FORMULATIONS
                                            if chosen.count(impl))
  return out


def _hlo_op_names(hlo: str) -> dict[str, str]:
  """HLO instruction name -> the JAX op name (scope path) in its metadata. A fusion without one takes its fused
  computation's root's (or else its first op's); one without any takes '<unnamed opcode>' of its root, e.g.
  '<unnamed convolution>' for the kernel-gradient convolutions XLA rewrites without metadata."""
  import re
  computations, current = {}, None
  for line in hlo.splitlines():
    header = re.match(r'\s*(?:ENTRY )?%?([\w.\-]+) [^=]*\{\s*$', line)
    if header:
      current = computations.setdefault(header.group(1), [])
      continue
    instruction = re.match(r'\s*(ROOT )?%?([\w.\-]+) = (?:\([^=]*?\)|\S+) ([\w\-]+)\(', line)
    if instruction and current is not None:
      op_name = re.search(r'metadata=\{[^}]*op_name="([^"]*)"', line)
      calls = re.search(r'calls=%?([\w.\-]+)', line)
      current.append((instruction.group(2), bool(instruction.group(1)), instruction.group(3),
                      op_name and op_name.group(1), calls and calls.group(1)))

  def resolve(computation: str) -> str:
    ops = sorted(computations.get(computation, []), key=lambda op: not op[1])  # The root first.
    named = next((op_name for *_, op_name, _ in ops if op_name), None)
    if named:
      return named
    nested = next((resolve(calls) for *_, calls in ops if calls), '')
    return nested or (f'<unnamed {ops[0][2]}>' if ops else '')

  return {name: op_name or (resolve(calls) if calls else f'<unnamed {opcode}>')
          for ops in computations.values() for name, _, opcode, op_name, calls in ops}


def _timeline_seconds(events: list[tuple[int, int, str]], is_async) -> dict[str, float]:
  """Seconds of the traced span owned by each op, from (start ns, end ns, op) events of every thread.

  XLA's CPU runtime records a convolution or dot as a few microseconds (the call that hands the work to Eigen's
  thread pool), not the time its kernel runs, so summing recorded durations hides them. Here each instant goes to
  the ops recorded as running then (split evenly), or, when none is, to the asynchronous op (`is_async(op)`) that
  started last: the convolution or product whose kernel is running.
  """
  import numpy as np
  events = sorted(events)
  start, resolution = events[0][0], 10_000  # 10 us bins.
  bins = int((max(e[1] for e in events) - start) // resolution) + 1
  running = np.zeros(bins)
  for a, b, _ in events:
    running[(a - start) // resolution:max((b - start) // resolution, (a - start) // resolution + 1)] += 1
  seconds = dict.fromkeys({op for *_, op in events} | {'<idle>'}, 0.0)
  for a, b, op in events:
    first, last = (a - start) // resolution, max((b - start) // resolution, (a - start) // resolution + 1)
    seconds[op] += float(np.sum(1.0 / running[first:last])) * resolution * 1e-9
  async_starts = [((a - start) // resolution, op) for a, _, op in events if is_async(op)]
  idle = np.flatnonzero(running == 0)
  owners = np.searchsorted([b for b, _ in async_starts], idle, side='right') - 1
  for owner, count in zip(*np.unique(owners, return_counts=True)):
    seconds[async_starts[owner][1] if owner >= 0 else '<idle>'] += int(count) * resolution * 1e-9
  return seconds


def _profile_worker(arch, width, batch, steps, conv_impl):
  """Share of the training step's wall time per component, from a JAX profiler trace of `steps` steps: each
  instant goes to the XLA ops running then, or to the convolution or product whose kernel runs then
  (`_timeline_seconds`), and each op to the component its op name's scope says (conv forward or backward,
  BatchNorm, the stem's max-pool, the optimizer; convolutions XLA left without a name count as conv backward);
  'rest' is ReLUs, residual adds, the head, the loss, layout copies and the batch gather."""
  import glob
  import re
  import tempfile

  import jax

  _, state, step, images, labels, _ = _train_setup(arch, width, batch, conv_impl)
  compiled = step.lower(state, images, labels, jax.random.key(1)).compile()
  hlo = compiled.as_text()
  op_names = _hlo_op_names(hlo)
  opcodes = dict(re.findall(r'%?([\w.\-]+) = (?:\([^=]*?\)|\S+) ([\w\-]+)\(', hlo))
  jax.block_until_ready(compiled(state, images, labels, jax.random.key(1)))

  def component(op_name: str) -> str:
    backward = 'transpose(' in op_name
    if '/optimizer/' in op_name:
      return 'optimizer'
    if '/max_pool/' in op_name:
      return 'pooling'
    if op_name in ('<unnamed convolution>', '<unnamed dot>'):  # XLA's rewritten kernel gradients.
      return 'conv backward'
    if re.search(r'/(stem_conv|Conv_\d+)/', op_name):
      return 'conv backward' if backward else 'conv forward'
    if re.search(r'/(stem_bn|BatchNorm_\d+)/', op_name):
      return 'BatchNorm'
    return 'rest'

  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      start = time.perf_counter()
      for i in range(steps):
        out = compiled(state, images, labels, jax.random.key(i))
      jax.block_until_ready(out)
      wall = time.perf_counter() - start
    (path,) = glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'), recursive=True)
    profile = jax.profiler.ProfileData.from_file(path)
  events = []
  for plane in profile.planes:
    for line in plane.lines:
      for event in line.events:
        op = dict((k, v) for k, v in event.stats).get('hlo_op')
        if op is not None:
          events.append((int(event.start_ns), int(event.start_ns + event.duration_ns), op))
  per_op = _timeline_seconds(events, lambda op: opcodes.get(op) in ('convolution', 'dot'))
  seconds = dict.fromkeys(('conv forward', 'conv backward', 'BatchNorm', 'pooling', 'optimizer', 'rest'), 0.0)
  for op, t in per_op.items():
    seconds['rest' if op == '<idle>' else component(op_names.get(op, ''))] += t
  total = sum(seconds.values())
  return {'ms_per_step': 1e3 * wall / steps, 'traced_ms_per_step': 1e3 * total / steps,
          'shares': {k: v / total for k, v in seconds.items()}}


def _torch_worker(arch, width, batch, steps, infer_batch):
  import torch
  from torch import nn

  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)

  class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
      self.bn1 = nn.BatchNorm2d(c_out)
      self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
      self.bn2 = nn.BatchNorm2d(c_out)
      self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
          nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

  blocks, stacks = arch
  layers = [nn.Conv2d(1, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
  c_in = width
  for s in range(stacks):
    for i in range(blocks):
      c_out = width * 2**s
      layers.append(Block(c_in, c_out, 2 if s > 0 and i == 0 else 1))
      c_in = c_out
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10)]
  model = nn.Sequential(*layers)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
  images = torch.randn(batch, 1, 28, 28)
  labels = torch.randint(0, 10, (batch,))

  def train_step():
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()

  model.train()
  train_step()
  start = time.perf_counter()
  for _ in range(steps):
    train_step()
  train_ips = steps * batch / (time.perf_counter() - start)
  model.eval()
  infer_images = torch.randn(infer_batch, 1, 28, 28)
  infer_steps = max(1, steps // 4)
  with torch.no_grad():
    model(infer_images)
    start = time.perf_counter()
    for _ in range(infer_steps):
      model(infer_images)
  infer_ips = infer_steps * infer_batch / (time.perf_counter() - start)
  return {'train_ips': train_ips, 'infer_ips': infer_ips}


def _seeds_worker(arch, width, batch, steps):
  """Trains 3 seeds vmapped and in turn through jal.train; returns seconds per strategy (compile excluded)."""
  import dataclasses

  import jax
  import numpy as np

  import jal

  rng = np.random.default_rng(0)
  images = rng.normal(size=(1024, 28, 28, 1)).astype(np.float32)
  labels = rng.integers(0, 10, 1024).astype(np.int32)
  model = jal.build_model(jal.Architecture(*arch), 10, jal.ModelConfig(width=width))
  config = jal.TrainConfig(epochs=1, examples_per_epoch=steps * batch, batch_size=batch)
  keys = jax.random.split(jax.random.key(0), 3)
  out = {}
  for strategy in ('sequential', 'vmap'):
    cfg = dataclasses.replace(config, seed_parallelism=strategy)
    jal.train(model, cfg, images, labels, keys)  # Compile.
    out[strategy] = jal.train(model, cfg, images, labels, keys).seconds
  return out


def _cpu_model() -> str:
  """The CPU's model name (Linux), else the platform's processor string."""
  import platform
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  return platform.processor() or platform.machine()


def _median_result(results: list[dict]) -> dict:
  """The per-key median of repeated workers' numeric results (their first error if any failed)."""
  failed = [r for r in results if 'error' in r]
  if failed:
    return failed[0]
  return {key: (statistics.median(r[key] for r in results) if isinstance(value, (int, float)) else value)
          for key, value in results[0].items()}


def _in_subprocess(kind, env=None, **kwargs):
  """Runs one worker in a fresh process (`env`: its environment, e.g. other XLA_FLAGS) and returns its result."""
  command = [sys.executable, __file__, '--worker', json.dumps({'kind': kind, **kwargs})]
  completed = subprocess.run(command, capture_output=True, text=True, env=env)
  if completed.returncode != 0:
    return {'error': completed.stderr.strip().splitlines()[-1] if completed.stderr else 'failed'}
  return json.loads(completed.stdout.strip().splitlines()[-1])


def _worker_main(spec):
  kind = spec.pop('kind')
  result = {'jax': _jax_worker, 'torch': _torch_worker, 'seeds': _seeds_worker,
            'profile': _profile_worker}[kind](**spec)
  result['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps(result))


def _print_profile(arch, impl, args, prefix: str) -> None:
  """One line: the shares of A(arch)'s training step with formulation `impl` (`_profile_worker`)."""
  p = _in_subprocess('profile', arch=arch, width=args.width, batch=args.batch, steps=args.steps, conv_impl=impl)
  if 'error' in p:
    print(f'{prefix}profile of A({arch[0]},{arch[1]}) failed:', p['error'])
    return
  shares = ', '.join(f'{name} {share:.0%}' for name, share in p['shares'].items())
  print(f"{prefix}A({arch[0]},{arch[1]}) with JAX[{impl}], from a JAX profiler trace, shares of the step's wall "
        f"time ({p['ms_per_step']:.0f} ms per step traced; each instant to the ops running then, or to the "
        f"convolution whose kernel runs): {shares}", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--archs', default='1,1;1,2;2,2;2,4', help="';'-separated 'i,j' pairs")
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--infer-batch', type=int, default=1024)
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--repeats', type=int, default=3,
                      help='runs of every (framework, architecture), alternating; the table gives medians')
  parser.add_argument('--impls', default='auto,auto+ynnpack,tuned,xla',
                      help="conv formulations to time for JAX ('tuned': per shape, timed on this machine and cached "
                      "in ~/.cache/jal/conv_tuning.json; '+ynnpack': with ModelConfig.cpu_fusions='ynnpack')")
  parser.add_argument('--seed-width', type=int, default=16, help='width for the vmap-vs-sequential timing')
  parser.add_argument('--profile-only', action='store_true',
                      help="only the profile line, of every --archs row with every --impls formulation")
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    _worker_main(json.loads(args.worker))
    return
  if args.profile_only:
    print(f'# jal training-step profiles, {time.strftime("%Y-%m-%d")}, {_cpu_model()}, {os.cpu_count()} CPUs, '
          f'width {args.width}, batch {args.batch}, {args.steps} steps traced')
    for arch in [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]:
      for impl in args.impls.split(','):
        _print_profile(arch, impl, args, '')
    return

  import jax

  seed_strategy = importlib.import_module('jal.train').SEED_PARALLELISM
  try:
    import torch
    torch_version = torch.__version__
  except ImportError:
    torch_version = None
  print(f'# jal train/infer throughput, {time.strftime("%Y-%m-%d")}, {_cpu_model()}: JAX {jax.__version__} '
        f'({jax.default_backend()}), PyTorch {torch_version or "not installed"}, {os.cpu_count()} CPUs, 28x28x1, '
        f'width {args.width}, batch {args.batch}, inference batch {args.infer_batch}; medians of {args.repeats} '
        'alternating runs (ratios: the median of each run\'s ratio)')
  archs = [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]
  impls = args.impls.split(',')
  header = ['arch']
  for impl in impls:
    header += [f'JAX[{impl}] train', f'JAX[{impl}] infer', f'JAX[{impl}] compile s', f'JAX[{impl}] MiB']
  header += ['PyTorch train', 'PyTorch infer', 'PyTorch MiB', 'best JAX / PyTorch train', 'best JAX / PyTorch infer']
  if 'tuned' in impls:
    header += ['tuned: train formulations', 'tuned: infer formulations']
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  worst = None  # (best JAX / PyTorch train ratio, arch, the best JAX formulation) of the slowest row.
  for arch in archs:
    row = [f'A({arch[0]},{arch[1]})']
    reps = []  # One {impl: result, 'torch': result} per repeat: JAX and PyTorch alternate, so drift hits both.
    for _ in range(args.repeats):
      rep = {impl: _in_subprocess('jax', arch=arch, width=args.width, batch=args.batch, steps=args.steps,
                                  infer_batch=args.infer_batch, conv_impl=impl) for impl in impls}
      rep['torch'] = (_in_subprocess('torch', arch=arch, width=args.width, batch=args.batch, steps=args.steps,
                                     infer_batch=args.infer_batch) if torch_version else {'error': '-'})
      reps.append(rep)
    results = {name: _median_result([rep[name] for rep in reps]) for name in [*impls, 'torch']}
    for impl in impls:
      r = results[impl]
      row += ([f"{r['train_ips']:.0f}", f"{r['infer_ips']:.0f}", f"{r['compile_s']:.1f}",
               f"{r['peak_rss_mib']:.0f}"] if 'error' not in r else [r['error'][:40]] * 4)
    t = results['torch']
    ok = [impl for impl in impls if 'error' not in results[impl]]
    if 'error' not in t:
      row += [f"{t['train_ips']:.0f}", f"{t['infer_ips']:.0f}", f"{t['peak_rss_mib']:.0f}"]
      if ok:  # The median over repeats of each repeat's best-JAX / PyTorch ratio.
        ratios = {key: statistics.median(max(rep[impl][key] for impl in ok) / rep['torch'][key] for rep in reps)
                  for key in ('train_ips', 'infer_ips')}
        row += [f"{ratios['train_ips']:.2f}", f"{ratios['infer_ips']:.2f}"]
        best = max(ok, key=lambda impl: results[impl]['train_ips'])
        worst = min(worst or (ratios['train_ips'], arch, best), (ratios['train_ips'], arch, best))
      else:
        row += ['-', '-']
    else:
      row += [t['error'][:40]] * 3 + ['-', '-']
    if 'tuned' in impls:
      tuned = results['tuned']
      row += [tuned.get('train_choice', '-'), tuned.get('infer_choice', '-')]
    print('| ' + ' | '.join(row) + ' |', flush=True)

  if worst is not None:
    ratio, arch, impl = worst
    _print_profile(arch, impl, args, f'\n# profile of the worst row ({ratio:.2f}x PyTorch): ')

  print(f'\n# 3 seeds of A(1,2), width {args.seed_width}, {args.steps} steps of batch {args.batch} each '
        '(compile excluded)')
  r = _in_subprocess('seeds', arch=(1, 2), width=args.seed_width, batch=args.batch, steps=args.steps)
  if 'error' in r:
    print('seeds benchmark failed:', r['error'])
  else:
    print(f"sequential {r['sequential']:.2f} s, vmap {r['vmap']:.2f} s "
          f"(vmap / sequential = {r['vmap'] / r['sequential']:.2f}); "
          f"jal's default on {jax.default_backend()}: {seed_strategy.get(jax.default_backend())}")


if __name__ == '__main__':
  main()
