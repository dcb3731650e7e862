r"""Does one of XLA's CPU library switches (oneDNN, XNNPACK, YNNPACK) train or infer the A(i, j) family faster?

  python -m benchmarks.studies.xla_cpu_flags > docs/results/xla_cpu_flags.md
  python -m benchmarks.studies.xla_cpu_flags --archs=1,2 --steps=5     # quicker

XLA's CPU backend can hand convolutions, dots, reductions or elementwise fusions to a library instead of its own
Eigen kernels and emitted loops (`--xla_cpu_experimental_{onednn,xnn,ynn}_fusion_type`, experimental in JAX
0.10; by default it already gives some to YNNPACK, and a flag replaces that list). Each flag set runs every
architecture in its own process, the same worker as `train_throughput.py` (width 64, batch 128, one SGD step per
iteration, inference batch 1024), with jal's default formulations ('auto': the matmul formulations on the CPU, so
a library that takes dots sees the convs too). The last training loss after the timed steps shows whether a flag
changed the computation (other kernels round differently), the last column how many of the step's fusions went to
each library.
"""

import argparse
import os
import time

from benchmarks import train_throughput as tt

_YNN = '--xla_cpu_experimental_ynn_fusion_type='
FLAG_SETS = {
    'default': '',  # JAX 0.10's XLA already hands some fusions to YNNPACK (the table's library column).
    'no library': _YNN,
    'ynnpack dots': _YNN + 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT',
    'ynnpack reductions': _YNN + 'LIBRARY_FUSION_TYPE_REDUCE',
    'ynnpack dots+reductions': _YNN + 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE',
    'ynnpack elementwise': _YNN + 'LIBRARY_FUSION_TYPE_ELTWISE',
    'ynnpack convs': _YNN + 'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION',
    'onednn dots': ('--xla_cpu_use_onednn=true '
                    '--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'),
    'xnnpack dots': '--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT',
}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--archs', default='1,1;1,2;2,2;2,4', help="';'-separated 'i,j' pairs")
  parser.add_argument('--width', type=int, default=64)
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--impls', default='auto', help="conv formulations ('auto': jal's default)")
  parser.add_argument('--flag-sets', default=','.join(FLAG_SETS), help='names from FLAG_SETS')
  args = parser.parse_args()
  import jax

  print(f'# XLA CPU library switches, {time.strftime("%Y-%m-%d")}, {tt._cpu_model()}: JAX {jax.__version__}, '
        f'{os.cpu_count()} CPUs, 28x28x1, width {args.width}, batch 128, inference batch 1024; img/s '
        '(train / infer), and the ratio to the default flags of the same formulation in this run')
  print()
  print('| arch | conv | flags | train img/s | infer img/s | train / default | infer / default | last loss | '
        'library fusions in the step |')
  print('|---|---|---|---|---|---|---|---|---|')
  for arch in [tuple(int(v) for v in a.split(',')) for a in args.archs.split(';')]:
    for impl in args.impls.split(','):
      base = None
      for name in args.flag_sets.split(','):
        env = {**os.environ, 'XLA_FLAGS': (os.environ.get('XLA_FLAGS', '') + ' ' + FLAG_SETS[name]).strip()}
        r = tt._in_subprocess('jax', env=env, arch=arch, width=args.width, batch=128, steps=args.steps,
                              infer_batch=1024, conv_impl=impl)
        label = f'| A({arch[0]},{arch[1]}) | {impl} | {name} |'
        if 'error' in r:
          print(f"{label} {r['error'][:60]} | | | | | |", flush=True)
          continue
        base = base or r
        print(f"{label} {r['train_ips']:.0f} | {r['infer_ips']:.0f} | {r['train_ips'] / base['train_ips']:.2f} | "
              f"{r['infer_ips'] / base['infer_ips']:.2f} | {r['last_loss']:.6f} | "
              f"{' '.join(f'{k} {n}' for k, n in r['library_fusions'].items() if n) or 'none'} |", flush=True)


if __name__ == '__main__':
  main()
