"""The modular architecture family A(B, i, j) and its DAG of minimal expansions (active-iNAS §4.1-4.2).

An architecture is i blocks of type B in each of j stacks; stack s has width `width * 2**s`. Its depth is
|A(B, i, j)| = i*j*β + α (β = layers per block, α = 2: the stem conv and the dense head). Two minimal
depth-increasing expansions define the DAG that iNAS walks:

  deeper(A(i, j)) = A(i + 1, j)
  wider(A(i, j))  = A(floor(i*j / (j + 1)) + 1, j + 1)    (the least depth above |A(i, j)| with j + 1 stacks)

The stem's pool and every stack after the first halve the feature map (rounding up), so A(i, j) leaves a
ceil(H / 2**j) x ceil(W / 2**j) map for the head. A space that knows its input (`SearchSpace.for_input`) offers no
architecture whose last map falls below `min_feature_map` on a side: five stacks on an 8x8 image leave no spatial
map at all.

Everything here is plain Python: architectures are hashable and can be static arguments of `jax.jit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

# Layers outside the blocks: the stem convolution and the dense classifier.
ALPHA = 2


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """What the search space needs to know of a block type, without building it.

  Attributes:
    layers: β, the number of weight layers on the block's main path (2 for the ResNet basic block).
    count_params: (in_channels, out_channels, strides, conv_bias) -> trainable parameter count of one block.
  """

  layers: int
  count_params: Callable[[int, int, int, bool], int]


def _conv_params(k: int, c_in: int, c_out: int, conv_bias: bool) -> int:
  return k * k * c_in * c_out + (c_out if conv_bias else 0)


def _batchnorm_params(channels: int) -> int:
  return 2 * channels  # scale and bias; the moving statistics are not trainable.


def basic_block_params(c_in: int, c_out: int, strides: int, conv_bias: bool) -> int:
  """Trainable parameters of a ResNet basic block (conv3x3-BN-ReLU-conv3x3-BN + shortcut)."""
  count = _conv_params(3, c_in, c_out, conv_bias) + _batchnorm_params(c_out)
  count += _conv_params(3, c_out, c_out, conv_bias) + _batchnorm_params(c_out)
  if strides != 1 or c_in != c_out:
    count += _conv_params(1, c_in, c_out, conv_bias) + _batchnorm_params(c_out)
  return count


BLOCKS: dict[str, BlockSpec] = {'basic': BlockSpec(layers=2, count_params=basic_block_params)}


def block_spec(name: str) -> BlockSpec:
  """Looks up a registered block type; raises a ValueError listing the valid ones."""
  if name not in BLOCKS:
    raise ValueError(f'Unknown block type {name!r}; registered: {sorted(BLOCKS)}.')
  return BLOCKS[name]


@dataclasses.dataclass(frozen=True, order=True)
class Architecture:
  """A(B, i, j): `blocks` blocks of type `block` in each of `stacks` stacks.

  Immutable and hashable, so it can key dictionaries and be a static argument of `jax.jit`.
  """

  blocks: int
  stacks: int
  block: str = 'basic'

  def __post_init__(self):
    block_spec(self.block)
    for name in ('blocks', 'stacks'):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'Architecture.{name} must be a positive int, got {value!r}.')

  def __str__(self) -> str:
    return f'A({self.blocks},{self.stacks})' if self.block == 'basic' else (
        f'A({self.block},{self.blocks},{self.stacks})')

  @property
  def depth(self) -> int:
    """|A(B, i, j)| = i*j*β + α."""
    return self.blocks * self.stacks * block_spec(self.block).layers + ALPHA

  def deeper(self) -> Architecture:
    """The minimal expansion that keeps the number of stacks: A(i + 1, j)."""
    return dataclasses.replace(self, blocks=self.blocks + 1)

  def wider(self) -> Architecture:
    """The minimal expansion with one more stack: A(floor(i*j/(j+1)) + 1, j + 1)."""
    blocks = self.blocks * self.stacks // (self.stacks + 1) + 1
    return dataclasses.replace(self, blocks=blocks, stacks=self.stacks + 1)

  def shallower(self) -> Architecture | None:
    """One block fewer per stack, A(i - 1, j) (None at i = 1): the inverse of `deeper`."""
    return dataclasses.replace(self, blocks=self.blocks - 1) if self.blocks > 1 else None

  def narrower(self) -> Architecture | None:
    """One stack fewer at the greatest depth below |A(i, j)|: A(ceil(i*j/(j-1)) - 1, j - 1) (None at j = 1)."""
    if self.stacks == 1:
      return None
    blocks = max(1, -(-self.blocks * self.stacks // (self.stacks - 1)) - 1)
    return dataclasses.replace(self, blocks=blocks, stacks=self.stacks - 1)

  def feature_map(self, image_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the last stack's output for (H, W) inputs: ceil(H / 2**j), ceil(W / 2**j)."""
    return tuple(-(-side // 2**self.stacks) for side in image_size)

  def widths(self, width: int = 64) -> tuple[int, ...]:
    """Channel width of each stack: width * 2**s for s = 0..j-1."""
    return tuple(width * 2**s for s in range(self.stacks))

  def embedding_dim(self, width: int = 64) -> int:
    """Size of the pooled embedding that feeds the head (the last stack's width)."""
    return self.widths(width)[-1]

  def num_params(
      self,
      num_classes: int,
      in_channels: int = 3,
      width: int = 64,
      conv_bias: bool = True,
  ) -> int:
    """Trainable parameters of the model `jal.models.build_model` makes, counted without building it.

    The moving BatchNorm statistics are not counted. With the defaults, A(1,1) has 76,682 and A(2,4) (ResNet-18)
    11,178,762 for 10 classes (SPEC §1).
    """
    spec = block_spec(self.block)
    count = _conv_params(3, in_channels, width, conv_bias) + _batchnorm_params(width)
    c_in = width
    for stack, c_out in enumerate(self.widths(width)):
      for index in range(self.blocks):
        strides = 2 if (stack > 0 and index == 0) else 1
        count += spec.count_params(c_in, c_out, strides, conv_bias)
        c_in = c_out
    return count + c_in * num_classes + num_classes


def parse_architecture(text: str) -> Architecture:
  """Parses 'A(2,4)', '2,4' or 'A(basic,2,4)' into an Architecture."""
  body = text.strip()
  if body.upper().startswith('A(') and body.endswith(')'):
    body = body[2:-1]
  parts = [p.strip() for p in body.split(',')]
  try:
    if len(parts) == 2:
      return Architecture(int(parts[0]), int(parts[1]))
    if len(parts) == 3:
      return Architecture(int(parts[1]), int(parts[2]), block=parts[0])
  except ValueError as error:
    raise ValueError(f'Cannot parse architecture {text!r}: {error}') from error
  raise ValueError(f"Cannot parse architecture {text!r}; write it as 'A(i,j)', e.g. 'A(1,2)'.")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """A bounded grid of architectures, 1 <= i <= max_blocks, 1 <= j <= max_stacks (default 12 x 5, the paper's).

  Attributes:
    min_feature_map: the smallest side of the last stack's feature map an architecture may leave on this space's
      input (1: any, the paper's space); it applies once the input is known (`for_input`).
    image_size: (H, W) of the inputs, or None when not known yet.
  """

  max_blocks: int = 12
  max_stacks: int = 5
  block: str = 'basic'
  min_feature_map: int = 1
  image_size: tuple[int, int] | None = None

  def __post_init__(self):
    if self.max_blocks < 1 or self.max_stacks < 1:
      raise ValueError(f'SearchSpace bounds must be >= 1, got {self.max_blocks} x {self.max_stacks}.')
    if self.min_feature_map < 1:
      raise ValueError(f'SearchSpace.min_feature_map must be >= 1, got {self.min_feature_map}.')
    block_spec(self.block)

  def for_input(self, image_shape: tuple[int, ...]) -> SearchSpace:
    """This space for inputs of `image_shape` ([H, W] or [H, W, C]): architectures whose last feature map would
    fall below `min_feature_map` are no longer in it.

    Raises:
      ValueError: not even the root A(1,1) fits the input (the message gives the smallest input that does).
    """
    space = dataclasses.replace(self, image_size=(int(image_shape[0]), int(image_shape[1])))
    if space.root not in space:
      least = 2 * self.min_feature_map
      raise ValueError(f'{image_shape[0]}x{image_shape[1]} inputs leave A(1,1) a map under '
                       f'{self.min_feature_map}x{self.min_feature_map}: use inputs of at least {least}x{least} (or a '
                       'smaller min_feature_map).')
    return space

  def fits(self, arch: Architecture) -> bool:
    """Whether `arch` leaves at least a min_feature_map square on this space's input (True when it is unknown)."""
    return self.image_size is None or min(arch.feature_map(self.image_size)) >= self.min_feature_map

  def __contains__(self, arch: Architecture) -> bool:
    return (
        arch.block == self.block
        and arch.blocks <= self.max_blocks
        and arch.stacks <= self.max_stacks
        and self.fits(arch)
    )

  def dropped(self, arch: Architecture) -> dict[str, str]:
    """The neighbours of `arch` (deeper, wider, shallower, narrower) within the grid's bounds that the input bound
    leaves out, each with the reason, e.g. {'A(1,4)': 'a 1x1 feature map on 8x8 inputs (the least is 2x2)'}."""
    out = {}
    for other in (arch.deeper(), arch.wider(), arch.shallower(), arch.narrower()):
      if (other is not None and other.blocks <= self.max_blocks and other.stacks <= self.max_stacks
          and not self.fits(other)):
        h, w = other.feature_map(self.image_size)
        out[str(other)] = (f'a {h}x{w} feature map on {self.image_size[0]}x{self.image_size[1]} inputs (the least '
                           f'is {self.min_feature_map}x{self.min_feature_map})')
    return out

  @property
  def root(self) -> Architecture:
    """A(B, 1, 1), where every search starts."""
    return Architecture(1, 1, self.block)

  def nodes(self) -> Iterator[Architecture]:
    """Every architecture in the grid (that fits the input, when known), by stacks then blocks."""
    for stacks in range(1, self.max_stacks + 1):
      for blocks in range(1, self.max_blocks + 1):
        arch = Architecture(blocks, stacks, self.block)
        if self.fits(arch):
          yield arch

  def expansions(self, arch: Architecture) -> tuple[Architecture, ...]:
    """The out-edges of `arch`: its deeper and wider expansions that lie in the grid."""
    return tuple(a for a in (arch.deeper(), arch.wider()) if a in self)

  def mutations(self, arch: Architecture) -> tuple[Architecture, ...]:
    """The neighbours evolution mutates to: deeper, wider, shallower, narrower, those in the grid."""
    return tuple(a for a in (arch.deeper(), arch.wider(), arch.shallower(), arch.narrower())
                 if a is not None and a in self)

  def candidates(self, arch: Architecture) -> tuple[Architecture, ...]:
    """iNAS's candidate set {current, deeper, wider} ∩ grid; the current architecture first.

    Raises:
      ValueError: if `arch` lies outside the grid.
    """
    self.check(arch)
    return (arch,) + self.expansions(arch)

  def check(self, arch: Architecture) -> Architecture:
    """Returns `arch`, or raises a ValueError saying how it falls outside this grid."""
    if arch not in self:
      if not self.fits(arch):
        h, w = arch.feature_map(self.image_size)
        raise ValueError(f'{arch} leaves a {h}x{w} feature map on {self.image_size[0]}x{self.image_size[1]} inputs, '
                         f'under the space\'s least {self.min_feature_map}x{self.min_feature_map}: use fewer stacks.')
      raise ValueError(
          f'{arch} is outside the search space ({self.block} blocks, i <= {self.max_blocks}, '
          f'j <= {self.max_stacks}); pick i in 1..{self.max_blocks} and j in 1..{self.max_stacks} '
          'or enlarge the space.'
      )
    return arch
