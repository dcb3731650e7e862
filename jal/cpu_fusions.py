"""Which fusions of a compiled function XLA's CPU backend hands to the YNNPACK library, per direction.

XLA (JAX 0.10) can give dots, convolutions, reductions or elementwise fusions to YNNPACK instead of its own kernels
(`xla_cpu_experimental_ynn_fusion_type`, an experimental compile option); by default it already gives it some
reductions and elementwise fusions. `benchmarks/studies/xla_cpu_flags.py` (in the repository) times the alternatives
on the A(i, j) family (`docs/results/xla_cpu_flags.md`): reductions alone train fastest, dots alone infer fastest,
and neither elementwise fusions nor convolutions in YNNPACK, nor oneDNN's or XNNPACK's dots, help.

Whether the pair beats XLA's own list depends on the network's widest stack (`benchmarks/train_throughput.py
--impls=auto,auto+ynnpack`, 2-core AMD EPYC, batch 128, inference batch 1024, medians of three alternating runs;
`docs/results/train_throughput.md` at base width 64, `train_throughput_width16.md`, `train_throughput_width32.md`):
- training with YNNPACK reductions is faster on every measured row whose widest stack has >= 32 channels (1.03x
  for A(1,2) at width 16 to 1.77x for A(1,1) at width 64) and slower on the one row below (A(1,1) at width 16: 0.95x);
- inference with YNNPACK dots is faster on every row whose widest stack has >= 64 channels (1.12x for A(2,4) at width
  16 to 2.03x for A(2,2) at width 32) and slower on every row below (0.78-0.92x: A(1,1), A(1,2), A(2,2) at width
  16, A(1,1) at width 32).

`ModelConfig.cpu_fusions`: 'auto' (the default) applies those two measured thresholds per direction; 'default'
leaves XLA's own list (what every result committed before 'auto' ran with, and what such rows' configs record);
'ynnpack' hands reductions (training) and dots (inference) to YNNPACK whatever the width. The kernels round
differently, so runs under different choices are the same function to float32 rounding, not bit-identical (five
paired training seeds moved test accuracy by +0.0001 ± 0.0009: `docs/results/cpu_fusions_paired`). On other
backends the choice does nothing.
"""

from __future__ import annotations

import jax

CPU_FUSIONS = ('auto', 'default', 'ynnpack')
_YNNPACK = {'train': 'LIBRARY_FUSION_TYPE_REDUCE', 'infer': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}
# 'auto': the least widest-stack channel count at which YNNPACK was measured faster, per direction (docstring).
AUTO_MIN_CHANNELS = {'train': 32, 'infer': 64}


def widest_stack(model) -> int | None:
  """Channels of the model's widest (last) stack, or None for a module that is not an A(B, i, j) network."""
  arch, width = getattr(model, 'arch', None), getattr(model, 'width', None)
  if width is None or not hasattr(arch, 'embedding_dim'):
    return None
  return arch.embedding_dim(width)  # The last stack: widths double per stack.


def uses_ynnpack(model, direction: str) -> bool:
  """Whether `model`'s compiled `direction` ('train' or 'infer') hands its fusions of that kind to YNNPACK."""
  if direction not in _YNNPACK:
    raise ValueError(f"direction must be 'train' or 'infer', got {direction!r}.")
  choice = getattr(model, 'cpu_fusions', 'default')
  if choice not in CPU_FUSIONS:
    raise ValueError(f'Unknown cpu_fusions {choice!r}; valid: {CPU_FUSIONS}.')
  if choice == 'auto':
    channels = widest_stack(model)
    return channels is not None and channels >= AUTO_MIN_CHANNELS[direction]
  return choice == 'ynnpack'


def compiler_options(model, direction: str, backend: str | None = None) -> dict[str, str] | None:
  """The compile options of `model`'s training step (`direction='train'`) or forward pass ('infer'), or None.

  `model.cpu_fusions` (absent on a user's own module: 'default') picks them; see the module docstring.
  """
  if not uses_ynnpack(model, direction) or (backend or jax.default_backend()) != 'cpu':
    return None
  return {'xla_cpu_experimental_ynn_fusion_type': _YNNPACK[direction]}
