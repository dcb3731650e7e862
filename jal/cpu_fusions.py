"""Which fusions of a compiled function XLA's CPU backend hands to the YNNPACK library, per direction.

XLA (JAX 0.10) can give dots, convolutions, reductions or elementwise fusions to YNNPACK instead of its own kernels
(`xla_cpu_experimental_ynn_fusion_type`, an experimental compile option); by default it already gives it some
reductions and elementwise fusions. `benchmarks/studies/xla_cpu_flags.py` (in the repository) times the alternatives
on the A(i, j) family (`docs/results/xla_cpu_flags.md`): reductions alone train fastest, dots alone infer fastest,
and neither elementwise fusions nor convolutions in YNNPACK, nor oneDNN's or XNNPACK's dots, help. Side by side with
the default (`benchmarks/train_throughput.py`, 2-core AMD EPYC, width 64, batch 128,
`docs/results/train_throughput.md`) the pair trains A(1,1) at 781 img/s against 442 and A(2,4) at 157 against 123,
and infers A(1,2) at 2,006 against 1,168 (medians of three runs).

`ModelConfig.cpu_fusions`: 'default' leaves XLA's own list (every committed result ran so); 'ynnpack' compiles
the training step with reductions and inference with dots in YNNPACK. Other kernels round differently, so a run
under 'ynnpack' is not bit-identical to one under 'default' (the same function, to float32 rounding). On other
backends the choice does nothing.
"""

from __future__ import annotations

import jax

CPU_FUSIONS = ('default', 'ynnpack')
_YNNPACK = {'train': 'LIBRARY_FUSION_TYPE_REDUCE', 'infer': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}


def compiler_options(model, direction: str, backend: str | None = None) -> dict[str, str] | None:
  """The compile options of `model`'s training step (`direction='train'`) or forward pass ('infer'), or None.

  `model.cpu_fusions` (absent on a user's own module: 'default') picks them; see the module docstring.
  """
  choice = getattr(model, 'cpu_fusions', 'default')
  if choice not in CPU_FUSIONS:
    raise ValueError(f'Unknown cpu_fusions {choice!r}; valid: {CPU_FUSIONS}.')
  if direction not in _YNNPACK:
    raise ValueError(f"direction must be 'train' or 'infer', got {direction!r}.")
  if choice == 'default' or (backend or jax.default_backend()) != 'cpu':
    return None
  return {'xla_cpu_experimental_ynn_fusion_type': _YNNPACK[direction]}
