"""Image-classification data: one container, three loaders, normalisation and seeded splits (SPEC §3).

Loaders: the embedded default, Fashion-MNIST from the IDX files of Debian's `dataset-fashion-mnist` package
(`load_fashion_mnist`); any TFDS image-classification dataset by name (`load_tfds`); a user's own arrays
(`from_arrays`). `load_splits` turns any of them into normalised, seeded pool / validation / test splits.
Everything returns host numpy arrays; the training engine moves them to the devices.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct
from typing import Protocol, runtime_checkable

import numpy as np

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
FASHION_MNIST_CLASSES = (
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
    'Ankle boot',
)
# The name of the embedded default dataset (read from local IDX files, no download).
DEFAULT_DATASET = 'fashion_mnist_idx'


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """One split of an image-classification dataset, validated on construction.

  Attributes:
    images: [N, H, W, C] float32 (normalised) or uint8 (raw) NHWC images.
    labels: [N] int32 class indices in [0, num_classes).
    num_classes: C.
    name: e.g. 'fashion_mnist_idx/train'.
    class_names: optional C human-readable names.
    ids: optional N stable item ids (file paths for an image folder); default '<name>/<index>', kept by subsets,
      so an id names the same image whatever pool is drawn.
    unknown_labels: True for a pool nobody has labelled yet (an image folder): its labels are -1 where unknown
      and only a human oracle can reveal them.
  """

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  name: str = 'dataset'
  class_names: tuple[str, ...] | None = None
  ids: tuple[str, ...] | None = None
  unknown_labels: bool = False

  def __post_init__(self):
    labels = np.maximum(self.labels, 0) if self.unknown_labels else self.labels
    _validate(self.images, labels, self.num_classes, self.name)
    if self.unknown_labels and np.any(self.labels < -1):
      raise ValueError(f'{self.name}: labels must be -1 (unknown) or a class index, found {self.labels.min()}.')
    if self.class_names is not None and len(self.class_names) != self.num_classes:
      raise ValueError(
          f'{self.name}: {len(self.class_names)} class names for {self.num_classes} classes.')
    if self.ids is not None:
      if len(self.ids) != len(self.labels):
        raise ValueError(f'{self.name}: {len(self.ids)} ids for {len(self.labels)} images.')
      if len(set(self.ids)) != len(self.ids):
        raise ValueError(f'{self.name}: item ids must be unique.')

  @property
  def item_ids(self) -> tuple[str, ...]:
    """The N stable item ids."""
    return self.ids if self.ids is not None else tuple(f'{self.name}/{i}' for i in range(len(self.labels)))

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def subset(self, indices: np.ndarray, name: str | None = None) -> Dataset:
    """The examples at `indices`, in that order."""
    indices = np.asarray(indices)
    ids = self.item_ids
    images = self.images[indices] if isinstance(self.images, np.ndarray) else PoolView(self.images, indices)
    return dataclasses.replace(
        self, images=images, labels=self.labels[indices], name=name or self.name,
        ids=tuple(ids[i] for i in indices))


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
  """The three splits of an experiment and the normalisation they share.

  Attributes:
    pool: the unlabelled pool U (labels are the simulated oracle's answers).
    validation: held out from the training split, for model selection (iNAS scores on its own split of L).
    test: the dataset's official test split; used for reporting only, never for a choice.
    mean, std: [C] per-channel statistics of the pool used to normalise every split.
  """

  pool: Dataset
  validation: Dataset | None
  test: Dataset
  mean: np.ndarray
  std: np.ndarray

  def __post_init__(self):
    others = [s for s in (self.validation, self.test) if s is not None]
    for split in others:
      if split.image_shape != self.pool.image_shape:
        raise ValueError(
            f'{split.name} images are {split.image_shape} but the pool is {self.pool.image_shape}; all '
            'splits must share one image shape (resize them before loading).')
      if split.num_classes != self.pool.num_classes:
        raise ValueError(
            f'{split.name} has {split.num_classes} classes but the pool has {self.pool.num_classes}.')


@runtime_checkable
class RowSource(Protocol):
  """What a pool larger than memory is read through: [N, H, W, C] rows by slice or index array, as numpy arrays.
  `NpyPool`, `PoolView`, `TFDSImages` and `StackedImages` are row sources."""

  shape: tuple[int, ...]
  dtype: np.dtype

  def __getitem__(self, index) -> np.ndarray:
    ...


def is_lazy(images) -> bool:
  """Whether `images` is a `RowSource` read row by row, not an in-memory array."""
  return not isinstance(images, np.ndarray) and isinstance(images, RowSource)


def _validate(images, labels, num_classes, name):
  if not (isinstance(images, np.ndarray) or is_lazy(images)) or not isinstance(labels, np.ndarray):
    raise TypeError(f'{name}: images must be a numpy array or a random-access source (jal.data.NpyPool), labels '
                    'a numpy array (use np.asarray).')
  if len(images.shape) != 4:
    raise ValueError(
        f'{name}: images must be [N, H, W, C] (NHWC), got shape {images.shape}; add a channel axis to '
        'grayscale images with images[..., None].')
  if images.dtype not in (np.uint8, np.float32):
    raise ValueError(
        f'{name}: images must be uint8 (raw) or float32, got {images.dtype}; convert with '
        '.astype(np.float32).')
  if images.shape[0] == 0:
    raise ValueError(f'{name}: the split is empty (0 images).')
  if labels.shape != (images.shape[0],):
    raise ValueError(
        f'{name}: labels must be [N] with N = {images.shape[0]} (one per image), got shape {labels.shape}.')
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
        f'{name}: labels must be integer class indices, got {labels.dtype}; map class names to '
        'indices first.')
  if not isinstance(num_classes, int | np.integer) or num_classes < 2:
    raise ValueError(f'{name}: num_classes must be an int >= 2, got {num_classes!r}.')
  low, high = int(labels.min()), int(labels.max())
  if low < 0 or high >= num_classes:
    raise ValueError(
        f'{name}: labels must lie in [0, {num_classes}), found [{low}, {high}]; fix num_classes or the '
        'label encoding.')
  if images.dtype == np.float32 and not isinstance(images, PoolView):  # A view normalises checked pixels.
    bad = sum(int(np.count_nonzero(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
              for block in row_blocks(images))
    if bad:
      raise ValueError(f'{name}: {bad} images contain NaN or inf; clean or drop them before loading.')


def row_blocks(images, chunk: int = 8192):
  """[<= chunk, H, W, C] numpy blocks of `images` in order: a pool of any size or source read a chunk at a time."""
  for start in range(0, images.shape[0], chunk):
    yield np.asarray(images[start:start + chunk])


def from_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int | None = None,
    name: str = 'arrays',
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
  """A Dataset from a user's arrays.

  Args:
    images: [N, H, W, C] or, for grayscale, [N, H, W]; uint8 in [0, 255] or float in any range.
    labels: [N] integer class indices, or -1 where nobody has labelled the image yet: such a pool is labelled by
      people (`jal.oracle.HumanOracle`), its known labels are the initial labelled set, and `num_classes` is
      required.
    num_classes: C; default: max(labels) + 1.
    name: used in messages and results.
    class_names: optional names of the C classes.

  Raises:
    ValueError / TypeError: naming the problem (rank, dtype, length mismatch, labels out of range, NaN/inf,
    empty) and the fix.
  """
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8:
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
      raise ValueError(f'{name}: images must be numeric, got dtype {images.dtype}.')
    images = images.astype(np.float32)
  unknown = bool(labels.size and np.issubdtype(labels.dtype, np.integer) and labels.min() < 0)
  if unknown and num_classes is None:
    raise ValueError(f'{name}: labels of -1 mark unlabelled images; pass num_classes, since the labels that are known '
                     'may not show every class.')
  if num_classes is None:
    if labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
      _validate(images, labels, 2, name)
    num_classes = max(int(labels.max()) + 1, 2)
  if np.issubdtype(labels.dtype, np.integer):
    labels = labels.astype(np.int32)
  return Dataset(images, labels, int(num_classes), name, class_names, unknown_labels=unknown)


def _read_idx(path: str) -> np.ndarray:
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rb') as f:
    data = f.read()
  if len(data) < 4:
    raise ValueError(f'{path} is truncated (no IDX header); reinstall dataset-fashion-mnist.')
  zero, dtype_code, ndim = struct.unpack('>HBB', data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f'{path} is not an unsigned-byte IDX file; reinstall dataset-fashion-mnist.')
  shape = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(shape)):
    raise ValueError(
        f'{path} holds {body.size} bytes for shape {shape}; the file is corrupt, reinstall '
        'dataset-fashion-mnist.')
  return body.reshape(shape)


def _find(directory: str, stem: str) -> str:
  for candidate in (stem + '.gz', stem):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f'Fashion-MNIST file {stem}(.gz) not found in {directory}. Install the Debian package '
      '(apt-get install dataset-fashion-mnist) or pass the directory holding the IDX files '
      '(data_dir=... / --config.data.data_dir=...).')


def load_fashion_mnist(split: str = 'train', data_dir: str | None = None) -> Dataset:
  """Fashion-MNIST ('train': 60,000, 'test': 10,000 28x28x1 uint8 images) from local IDX files.

  Args:
    split: 'train' or 'test'.
    data_dir: directory with the (gzipped) IDX files; default `/usr/share/datasets/fashion-mnist`, where
      Debian's `dataset-fashion-mnist` puts them.
  """
  if split not in ('train', 'test'):
    raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}.")
  directory = data_dir or FASHION_MNIST_DIR
  prefix = 'train' if split == 'train' else 't10k'
  images = _read_idx(_find(directory, f'{prefix}-images-idx3-ubyte'))
  labels = _read_idx(_find(directory, f'{prefix}-labels-idx1-ubyte'))
  return Dataset(images[..., None], labels.astype(np.int32), 10, f'{DEFAULT_DATASET}/{split}',
                 FASHION_MNIST_CLASSES)


def _tfds_recipe(name: str, data_dir: str | None, download_dir: str | None = None) -> str:
  """The Python one-liner that prepares `name` in ArrayRecord under `data_dir` (needs TensorFlow)."""
  where = f', data_dir={data_dir!r}' if data_dir else ''
  reuse = f'download_dir={download_dir!r}' if download_dir else ''
  return (f"python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{where}, "
          f"file_format='array_record').download_and_prepare({reuse})\"")


def _tfds_error(name: str, split: str, data_dir: str | None, download: bool, error: Exception) -> Exception:
  """Why `tfds.data_source` failed, with the command that fixes it."""
  import tensorflow_datasets as tfds

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    return ValueError(f'Unknown TFDS dataset {name!r}: see https://www.tensorflow.org/datasets/catalog, or use '
                      f"the offline default '{DEFAULT_DATASET}' or your images ('folder').")
  except Exception:  # noqa: BLE001  (A broken data_dir: report the original error below.)
    builder = None
  if builder is not None and builder.is_prepared():
    file_format = builder.info.file_format
    if file_format is not None and file_format.value != 'array_record':
      data_root = str(builder.data_dir_root)
      target = data_root.rstrip('/') + '_array_record'
      return FileNotFoundError(
          f'TFDS dataset {name!r} is prepared at {builder.data_dir} as {file_format.value} (TFDS\'s default); '
          'jal reads it with tfds.data_source, which needs ArrayRecord. Prepare an ArrayRecord copy next to it, '
          f'reusing its downloads (needs TensorFlow): '
          f'{_tfds_recipe(name, target, os.path.join(data_root, "downloads"))}'
          f', then pass data_dir={target!r} (--config.data.data_dir={target}).')
    return FileNotFoundError(f'TFDS dataset {name!r} (split {split!r}) could not be read: {error}')
  if download:
    return RuntimeError(
        f"Preparing the TFDS dataset {name!r} failed ({type(error).__name__}: {error}). Preparing needs TensorFlow "
        "(pip install 'jal[tf]') and the network; or prepare it on another machine with "
        f'{_tfds_recipe(name, None)} and copy its data_dir here.')
  return FileNotFoundError(
      f'TFDS dataset {name!r} is not prepared{f" in {data_dir}" if data_dir else ""}. Let jal download and '
      "prepare it (needs TensorFlow: pip install 'jal[tf]'): load_tfds(..., download=True), or "
      f'--config.data.download=True; or run {_tfds_recipe(name, data_dir)}; or use the offline default '
      f"'{DEFAULT_DATASET}'. ({type(error).__name__}: {error})")


def load_tfds(name: str, split: str, data_dir: str | None = None, download: bool = False,
              lazy: bool = False) -> Dataset:
  """Any TFDS image-classification dataset with 'image' and 'label' features (cifar10, svhn_cropped, ...).

  Reads through `tfds.data_source`, which needs no TensorFlow once the dataset is prepared in the ArrayRecord
  format. Preparing (downloading) needs TensorFlow (`pip install 'jal[tf]'`): `download=True` prepares a missing
  dataset in ArrayRecord; a dataset TFDS prepared in its default TFRecord format raises with the command that
  makes an ArrayRecord copy. `lazy`: the images stay in the ArrayRecord files and are decoded when a row is read
  (`TFDSImages`; the labels are read in one streamed pass that skips decoding the images), for a split larger than
  memory.
  """
  import tensorflow_datasets as tfds  # Imported here: it is slow to import and only this loader needs it.

  try:  # TFDS's data_source would prepare TFRecord, which it cannot read: ask for ArrayRecord.
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                              builder_kwargs={'file_format': 'array_record'})
  except Exception as error:  # TFDS raises several types for "not prepared"/"unknown"/"wrong format".
    raise _tfds_error(name, split, data_dir, download, error) from error
  features = source.dataset_info.features
  if 'image' not in features or 'label' not in features:
    raise ValueError(f'TFDS dataset {name!r} has no image/label features: {list(features)}.')
  label_feature = features['label']
  names = tuple(label_feature.names) if getattr(label_feature, 'names', None) else None
  if lazy:
    if None in tuple(features['image'].shape):
      raise ValueError(f'TFDS dataset {name!r} has images of varying size {features["image"].shape}; a lazy split '
                       'needs one image shape: resize them while preparing, or load it into memory.')
    labels_only = tfds.data_source(name, split=split, data_dir=data_dir, builder_kwargs={'file_format': 'array_record'},
                                   decoders={'image': tfds.decode.SkipDecoding()})
    labels = np.fromiter((labels_only[i]['label'] for i in range(len(labels_only))), np.int32, len(labels_only))
    return Dataset(TFDSImages(source, tuple(features['image'].shape)), labels, int(label_feature.num_classes),
                   f'{name}/{split}', names)
  examples = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(e['image']) for e in examples]) if examples else np.zeros((0, 1, 1, 1))
  labels = np.asarray([e['label'] for e in examples], np.int32)
  return from_arrays(images, labels, int(label_feature.num_classes), f'{name}/{split}', names)


class TFDSImages:
  """The [N, H, W, C] uint8 images of a prepared TFDS split, decoded from its ArrayRecord files when rows are read
  (`load_tfds(..., lazy=True)`): nothing is held in memory between reads."""

  ndim = 4
  dtype = np.dtype(np.uint8)

  def __init__(self, source, image_shape: tuple[int, int, int]):
    self.source, self.shape = source, (len(source), *image_shape)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, int | np.integer):
      return np.asarray(self.source[int(index)]['image'])
    rows = range(*index.indices(len(self))) if isinstance(index, slice) else np.asarray(index).tolist()
    records = self.source.__getitems__(list(rows)) if rows else []
    return np.stack([np.asarray(r['image']) for r in records]) if records else np.zeros((0, *self.shape[1:]),
                                                                                       np.uint8)


def _to_uint8(image):
  """A PIL image as 8-bit: 16-bit grey (and 32-bit integer grey up to 65535) scaled by 255/65535, float grey in
  [0, 1] by 255; never clipped at 255."""
  from PIL import Image

  if image.mode.startswith('I') or image.mode == 'F':
    array = np.asarray(image, np.float64)
    if image.mode == 'F' and array.max(initial=0.0) <= 1.0:
      scale = 255.0
    elif image.mode.startswith('I;16') or 255 < array.max(initial=0.0) <= 65535:
      scale = 255.0 / 65535.0
    elif array.max(initial=0.0) <= 255:
      scale = 1.0
    else:
      scale = 255.0 / float(array.max())
    return Image.fromarray(np.clip(np.round(array * scale), 0, 255).astype(np.uint8), 'L')
  return image


def _read_images(paths: list[str], image_size: tuple[int, int] | None) -> np.ndarray:
  """[N, H, W, C] uint8 from image files in any format Pillow reads (grayscale stays 1 channel unless some file
  is colour; 16-bit grey is scaled to 8 bits)."""
  from PIL import Image  # Pillow comes with matplotlib.

  images, bad = [], []
  for path in paths:
    try:
      with Image.open(path) as image:
        image.load()
        images.append(_to_uint8(image.copy()))
    except Exception as error:  # Pillow raises several types for unreadable files.
      bad.append(f'{path} ({type(error).__name__})')
  if bad:
    raise ValueError('Cannot read these images: ' + '; '.join(bad[:20]) + (' ...' if len(bad) > 20 else '') +
                     '. Remove or replace them.')
  mode = 'L' if all(image.mode in ('L', '1') for image in images) else 'RGB'
  images = [image.convert(mode) for image in images]
  if image_size is not None:
    images = [image.resize((image_size[1], image_size[0])) for image in images]
  sizes = {image.size for image in images}
  if len(sizes) > 1:
    odd = [p for p, image in zip(paths, images) if image.size != images[0].size][:10]
    raise ValueError(f'Images have different sizes {sorted(sizes)[:5]} (e.g. {odd}); resize them to one size '
                     'or pass image_size=(H, W).')
  array = np.stack([np.asarray(image, np.uint8) for image in images])
  return array[..., None] if array.ndim == 3 else array


# Names that are not images and may sit beside them (file managers, version control).
_IGNORED = ('.DS_Store', 'Thumbs.db', 'desktop.ini', '.gitkeep')


def _list_images(directory: str) -> list[str]:
  """Every file of `directory` (any format Pillow reads; unreadable ones are refused by name when read).

  Raises:
    ValueError: the directory holds sub-folders (named), which would otherwise be skipped without a word.
  """
  entries = sorted(e for e in os.listdir(directory) if e not in _IGNORED and not e.startswith('._'))
  folders = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
  if folders:
    raise ValueError(f'{directory}/ holds sub-folders {folders[:10]}: images must sit directly in it. Move their '
                     'images up, or remove the folders.')
  return [os.path.join(directory, e) for e in entries if os.path.isfile(os.path.join(directory, e))]


def _class_order(names: list[str]) -> list[str]:
  """Class folders in an explicit order: by number when every name is an integer ('2' before '10'), else by name."""
  if all(re.fullmatch(r'-?\d+', name) for name in names):
    return sorted(names, key=int)
  return sorted(names)


def load_image_folder(root: str, image_size: tuple[int, int] | None = None) -> Splits:
  """Your own images as a pool to label:

      root/labeled/<class>/*.png    seed labels (at least one image per class); the class names come from here
      root/unlabeled/*.png          the pool to query
      root/test/<class>/*.png       labelled images to report test accuracy on (never queried)

  Every file is read as an image (any format Pillow reads; 16-bit grey scaled to 8 bits); sub-folders of
  unlabeled/, empty or symlinked class folders are refused by name. Classes are ordered by number when every class
  folder is an integer, else by name; that order is `class_names` (written to classes.txt with each query).
  Item ids are the paths relative to `root`. The pool's labels are -1 where unknown (`unknown_labels`), so only a
  human oracle can reveal them; images are normalised with the pool's statistics.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f'Image folder {root!r} does not exist.')
  missing = [d for d in ('labeled', 'unlabeled', 'test') if not os.path.isdir(os.path.join(root, d))]
  if missing:
    raise ValueError(f'Image folder {root!r} lacks {missing}: it needs labeled/<class>/, unlabeled/ and '
                     'test/<class>/ sub-folders (see jal.data.load_image_folder).')
  labeled_root = os.path.join(root, 'labeled')
  stray = sorted(e for e in os.listdir(labeled_root)
                 if not os.path.isdir(os.path.join(labeled_root, e)) and e not in _IGNORED and not e.startswith('._'))
  if stray:
    raise ValueError(f'{labeled_root}/ holds files {stray[:10]}: it must hold only one sub-folder per class. Move '
                     'them into their class folder (or into unlabeled/).')
  classes = _class_order([d for d in os.listdir(labeled_root) if os.path.isdir(os.path.join(labeled_root, d))])
  linked = [c for c in classes if os.path.islink(os.path.join(labeled_root, c))]
  if linked:
    raise ValueError(f'Class folders {linked} under {labeled_root}/ are symbolic links: a link would make one '
                     'folder of images two classes. Replace each link with a real folder of its own images.')
  if len(classes) < 2:
    raise ValueError(f'{root}/labeled/ must hold one sub-folder per class (at least 2), found {classes}.')

  def labelled(split):
    paths, labels = [], []
    for index, name in enumerate(classes):
      directory = os.path.join(root, split, name)
      files = _list_images(directory) if os.path.isdir(directory) else []
      if split == 'labeled' and not files:
        raise ValueError(f'{directory}/ is empty: every class needs at least one seed image. Add images, or '
                         'remove the folder if it is not a class.')
      paths += files
      labels += [index] * len(files)
    extra = sorted(set(os.listdir(os.path.join(root, split))) - set(classes))
    extra = [e for e in extra if os.path.isdir(os.path.join(root, split, e))]
    if extra:
      raise ValueError(f'{root}/{split}/ has class folders {extra} that {root}/labeled/ lacks; every class needs '
                       'seed labels under labeled/.')
    return paths, labels

  seed_paths, seed_labels = labelled('labeled')
  test_paths, test_labels = labelled('test')
  pool_paths = _list_images(os.path.join(root, 'unlabeled'))
  for what, paths in (('labeled', seed_paths), ('unlabeled', pool_paths), ('test', test_paths)):
    if not paths:
      raise ValueError(f'{root}/{what}/ holds no images.')
  images = _read_images(seed_paths + pool_paths + test_paths, image_size)
  num_pool = len(seed_paths) + len(pool_paths)
  relative = lambda paths: tuple(os.path.relpath(p, root) for p in paths)  # noqa: E731
  pool = Dataset(images[:num_pool], np.array(seed_labels + [-1] * len(pool_paths), np.int32), len(classes),
                 f'{os.path.basename(os.path.normpath(root))}:pool', tuple(classes),
                 relative(seed_paths + pool_paths), unknown_labels=True)
  test = Dataset(images[num_pool:], np.array(test_labels, np.int32), len(classes),
                 f'{os.path.basename(os.path.normpath(root))}:test', tuple(classes), relative(test_paths))
  mean, std = normalization_stats(pool.images)
  return Splits(normalize(pool, mean, std), None, normalize(test, mean, std), mean, std)


ARRAY_FILES = ('pool.npy', 'pool_labels.npy', 'labeled.npz', 'test.npz', 'classes.txt')


def load_arrays(root: str) -> Splits:
  """Your own images as numpy files, a pool to label (`--config.data.name=arrays`):

      root/pool.npy          [N, H, W, C] uint8 (raw) or float32: the pool, read a row at a time (`NpyPool`)
      root/pool_labels.npy   optional [N] ints: the pool's labels, -1 where nobody knows them yet
      root/labeled.npz       optional `images` [M, H, W, C] and `labels` [M]: seed labels, put before the pool
      root/test.npz          `images` [T, H, W, C] and `labels` [T]: test accuracy only (never queried)
      root/classes.txt       optional class names, one per line (else the classes are 0 .. max label)

  With every pool label known and no seed set, the pool is a simulation (the simulated oracle answers from
  pool_labels.npy, as for a named dataset); otherwise only a human oracle can label it, the known labels being
  the initial set (as an image folder's). Item ids are 'labeled.npz/<i>' and 'pool.npy/<i>'. Images are
  normalised with the pool's statistics, summed in one streamed pass; the pool never sits whole in memory.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f'Array folder {root!r} does not exist.')
  missing = [f for f in ('pool.npy', 'test.npz') if not os.path.isfile(os.path.join(root, f))]
  if missing:
    raise ValueError(f'Array folder {root!r} lacks {missing}: it needs pool.npy ([N, H, W, C] images) and test.npz '
                     '(images, labels); pool_labels.npy, labeled.npz and classes.txt are optional (see '
                     'jal.data.load_arrays).')
  stray = sorted(f for f in os.listdir(root) if f not in ARRAY_FILES and not f.startswith('.'))
  if stray:
    raise ValueError(f'{root}/ holds {stray[:10]}, which jal does not read: the files it reads are {ARRAY_FILES}. '
                     'Rename or move them (a misspelt name would silently drop your labels).')
  name = os.path.basename(os.path.normpath(root))

  def pair(file):
    path = os.path.join(root, file)
    try:
      arrays = np.load(path)
    except (OSError, ValueError) as error:
      raise ValueError(f'Cannot read {path} as an .npz file ({error}); write it with np.savez.') from error
    if not isinstance(arrays, np.lib.npyio.NpzFile):
      raise ValueError(f'{path} is a single array; it must be an .npz of `images` and `labels` (np.savez).')
    with arrays:
      if not {'images', 'labels'} <= set(arrays.files):
        raise ValueError(f'{path} holds {sorted(arrays.files)}; it needs `images` and `labels` '
                         '(np.savez(path, images=..., labels=...)).')
      return np.asarray(arrays['images']), np.asarray(arrays['labels'])

  pool_images = NpyPool(os.path.join(root, 'pool.npy'))
  test_images, test_labels = pair('test.npz')
  pool_labels = np.full(pool_images.shape[0], -1, np.int64)
  if os.path.isfile(os.path.join(root, 'pool_labels.npy')):
    pool_labels = np.load(os.path.join(root, 'pool_labels.npy'))
    if pool_labels.shape != (pool_images.shape[0],):
      raise ValueError(f'{root}/pool_labels.npy holds {pool_labels.shape} labels for {pool_images.shape[0]} pool '
                       'images: one per image, -1 where unknown.')
  seed_images, seed_labels = (pair('labeled.npz') if os.path.isfile(os.path.join(root, 'labeled.npz'))
                              else (np.zeros((0, *pool_images.shape[1:]), pool_images.dtype), np.zeros(0, np.int64)))
  for what, images, labels in (('labeled.npz', seed_images, seed_labels), ('test.npz', test_images, test_labels)):
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(pool_images.shape[1:]) or len(images) != len(labels):
      raise ValueError(f'{root}/{what}: images {images.shape} and labels {labels.shape} must be [M, '
                       f'{", ".join(map(str, pool_images.shape[1:]))}] (the pool\'s image shape) and [M].')
    if images.dtype != pool_images.dtype:
      raise ValueError(f'{root}/{what}: images are {images.dtype} but the pool is {pool_images.dtype}; store every '
                       'file in one dtype (uint8 raw pixels, or float32).')
  for what, labels in (('pool_labels.npy', pool_labels), ('labeled.npz', seed_labels), ('test.npz', test_labels)):
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f'{root}/{what}: labels must be integer class indices, got {labels.dtype}.')
  if os.path.isfile(os.path.join(root, 'classes.txt')):
    with open(os.path.join(root, 'classes.txt'), encoding='utf-8') as f:
      class_names = tuple(line.strip() for line in f if line.strip())
  else:
    class_names = None
  known = np.concatenate([seed_labels, pool_labels[pool_labels >= 0], test_labels]).astype(np.int64)
  num_classes = len(class_names) if class_names else int(known.max(initial=0)) + 1
  for what, labels in (('pool_labels.npy', pool_labels), ('labeled.npz', seed_labels), ('test.npz', test_labels)):
    low = -1 if what == 'pool_labels.npy' else 0
    if labels.size and (labels.min() < low or labels.max() >= num_classes):
      raise ValueError(f'{root}/{what}: labels must lie in [{low}, {num_classes}) ({num_classes} classes'
                       f'{" in classes.txt" if class_names else ""}), found [{labels.min()}, {labels.max()}].')
  simulated = len(seed_labels) == 0 and bool(np.all(pool_labels >= 0))
  images = pool_images if not len(seed_labels) else StackedImages(seed_images, pool_images)
  ids = tuple(f'labeled.npz/{i}' for i in range(len(seed_labels))) + tuple(
      f'pool.npy/{i}' for i in range(pool_images.shape[0]))
  pool = Dataset(images, np.concatenate([seed_labels, pool_labels]).astype(np.int32), num_classes, f'{name}:pool',
                 class_names, ids, unknown_labels=not simulated)
  mean, std = streaming_normalization_stats(pool.images)
  test = Dataset(test_images, test_labels.astype(np.int32), num_classes, f'{name}:test', class_names,
                 tuple(f'test.npz/{i}' for i in range(len(test_labels))))
  return Splits(dataclasses.replace(pool, images=PoolView(pool.images, normalization=(mean, std))), None,
                normalize(test, mean, std), mean, std)


class StackedImages:
  """Two image sources one after the other, read by row (an in-memory seed set before an on-disk pool)."""

  ndim = 4

  def __init__(self, first, second):
    self.first, self.second = first, second
    self.shape, self.dtype = (first.shape[0] + second.shape[0], *first.shape[1:]), np.dtype(first.dtype)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, int | np.integer):
      return self[np.asarray([index])][0]
    rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
    out = np.empty((len(rows), *self.shape[1:]), self.dtype)
    head = rows < self.first.shape[0]
    if head.any():
      out[head] = self.first[rows[head]]
    if (~head).any():
      out[~head] = self.second[rows[~head] - self.first.shape[0]]
    return out


def load(name: str = DEFAULT_DATASET, split: str = 'train', data_dir: str | None = None,
         download: bool = False, lazy: bool = False) -> Dataset:
  """A split by name: `DEFAULT_DATASET` reads local Fashion-MNIST IDX files, any other name goes to TFDS (`lazy`:
  its images stay on disk, `load_tfds`)."""
  if name == DEFAULT_DATASET:
    return load_fashion_mnist(split, data_dir)
  return load_tfds(name, split, data_dir, download, lazy)


class NpyPool:
  """Random access to an [N, H, W, C] array in a .npy file, read chunk by chunk: a pool larger than memory.

  Slicing returns those rows as a numpy array; the file is memory-mapped only for the read and unmapped again,
  so no page stays resident in this process (what `np.load(mmap_mode='r')` alone would keep). Use it with
  `jal.predict.predict(..., normalization=..., to_host=True)` and `jal.query.pool_inputs`.
  """

  def __init__(self, path: str):
    self.path = path
    array = np.load(path, mmap_mode='r')
    self.shape, self.dtype = tuple(array.shape), array.dtype
    del array
    if len(self.shape) != 4:
      raise ValueError(f'{path}: a pool file holds [N, H, W, C] images, got shape {self.shape}.')

  ndim = 4

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index) -> np.ndarray:
    array = np.load(self.path, mmap_mode='r')
    try:
      return np.array(array[index])
    finally:
      del array


class PoolView:
  """A pool larger than memory, seen as the [N, H, W, C] array the loop reads: rows of a random-access source
  (`NpyPool`, an `np.memmap`, another view), optionally a subset of them (`rows`) and normalised per channel as
  they are read ((x / 255 - mean) / std for uint8, as `normalize`). Only the rows asked for are ever read, so
  training (L's rows), scoring (a chunk at a time) and the oracle (a batch) never hold the pool."""

  ndim = 4

  def __init__(self, source, rows: np.ndarray | None = None,
               normalization: tuple[np.ndarray, np.ndarray] | None = None):
    if len(source.shape) != 4:
      raise ValueError(f'A pool view reads [N, H, W, C] images, got shape {source.shape}.')
    self.source, self.normalization = source, normalization
    self.rows = None if rows is None else np.asarray(rows, np.int64)
    count = source.shape[0] if self.rows is None else len(self.rows)
    self.shape = (count, *source.shape[1:])
    self.dtype = np.dtype(np.float32) if normalization is not None else np.dtype(source.dtype)

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index) -> np.ndarray:
    if self.rows is not None:
      index = self.rows[index]
    elif not isinstance(index, slice | int | np.integer):
      index = np.asarray(index)
    block = np.asarray(self.source[index])
    if self.normalization is None:
      return block
    mean, std = self.normalization
    scaled = block.astype(np.float32) / (255.0 if block.dtype == np.uint8 else 1.0)
    return ((scaled - mean) / std).astype(np.float32)


def streaming_normalization_stats(images, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
  """`normalization_stats` of a pool read `chunk` rows at a time (float64 sums: exact enough at any N; one
  float32 copy of a chunk alive at a time)."""
  total = total_sq = 0.0
  count = 0
  scale = 255.0 if images.dtype == np.uint8 else 1.0
  for block in row_blocks(images, chunk):
    block = block.astype(np.float32) / scale
    total = total + block.sum(axis=(0, 1, 2), dtype=np.float64)
    total_sq = total_sq + np.square(block).sum(axis=(0, 1, 2), dtype=np.float64)
    count += block.shape[0] * block.shape[1] * block.shape[2]
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
  return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def normalization_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std [C] of [N, H, W, C] images scaled to [0, 1] when uint8."""
  scaled = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
  mean = scaled.mean(axis=(0, 1, 2))
  std = scaled.std(axis=(0, 1, 2))
  return mean, np.maximum(std, 1e-6)


def normalize(dataset: Dataset, mean: np.ndarray, std: np.ndarray) -> Dataset:
  """(x / 255 - mean) / std per channel (x / 255 only for uint8 inputs); returns float32 images (a lazy
  source is read whole: for the small splits; a pool stays lazy in `make_splits`)."""
  images = dataset.images if isinstance(dataset.images, np.ndarray) else np.asarray(dataset.images[:])
  scaled = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
  return dataclasses.replace(dataset, images=((scaled - mean) / std).astype(np.float32))


def _sample(count: int | None, total: int, rng: np.random.Generator, what: str) -> np.ndarray:
  if count is None:
    return rng.permutation(total)
  if not 0 < count <= total:
    raise ValueError(f'{what} must be in [1, {total}], got {count}.')
  return rng.permutation(total)[:count]


def make_splits(
    train: Dataset,
    test: Dataset,
    validation_size: int = 0,
    pool_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    imbalance: float = 1.0,
) -> Splits:
  """Seeded pool / validation / test splits, normalised with the pool's per-channel statistics.

  A training split whose images are a random-access source (`NpyPool`, a `PoolView`) keeps its pool there: the
  statistics are summed chunk by chunk (`streaming_normalization_stats`) and the pool is a `PoolView` that
  normalises the rows it reads; validation and test are read into memory.

  Args:
    train: the dataset's training split; validation and pool are drawn from it without overlap.
    test: the official test split (optionally subsampled to `test_size`).
    validation_size: examples held out for validation (0: none).
    pool_size: cap on the pool (default: all remaining training examples); CPU-scale configs shrink it.
    test_size: cap on the test split.
    seed: fixes every draw.
    imbalance: > 1 makes the pool long-tailed (`long_tailed`): class c keeps a share imbalance^(-c/(K-1)) of the
      most frequent class 0's, so class K-1 is `imbalance` times rarer; validation and test stay as drawn.
  """
  rng = np.random.default_rng(seed)
  if validation_size < 0 or validation_size >= len(train):
    raise ValueError(
        f'validation_size must be in [0, {len(train)}) for {train.name}, got {validation_size}.')
  order = rng.permutation(len(train))
  validation_idx, rest = order[:validation_size], order[validation_size:]
  if imbalance != 1.0:
    rest = long_tailed(rest, train.labels, train.num_classes, imbalance)
  pool_idx = rest[_sample(pool_size, len(rest), rng, 'pool_size')] if pool_size else rest
  test_idx = _sample(test_size, len(test), rng, 'test_size')
  pool = train.subset(np.sort(pool_idx), f'{train.name}:pool')
  lazy = is_lazy(pool.images)
  mean, std = (streaming_normalization_stats if lazy else normalization_stats)(pool.images)
  validation = (
      normalize(train.subset(np.sort(validation_idx), f'{train.name}:validation'), mean, std)
      if validation_size else None)
  return Splits(
      pool=(dataclasses.replace(pool, images=PoolView(pool.images, normalization=(mean, std))) if lazy
            else normalize(pool, mean, std)),
      validation=validation,
      test=normalize(test.subset(np.sort(test_idx)), mean, std),
      mean=mean,
      std=std,
  )


def long_tailed(indices: np.ndarray, labels: np.ndarray, num_classes: int, imbalance: float) -> np.ndarray:
  """The first items of `indices` (in their order) per class such that class c keeps n * imbalance^(-c/(K-1)),
  n being the rarest class's count in `indices`: an exponential long tail (Cui et al., 2019), class K-1
  `imbalance` times rarer than class 0, order kept."""
  if imbalance < 1.0 or num_classes < 2:
    raise ValueError(f'imbalance is the most over the least frequent class (>= 1, with >= 2 classes), got '
                     f'{imbalance} with {num_classes} classes.')
  item_labels = np.asarray(labels)[indices]
  counts = np.bincount(item_labels, minlength=num_classes)
  keep = np.floor(counts.min() * imbalance ** (-np.arange(num_classes) / (num_classes - 1))).astype(int)
  rank = np.zeros(len(indices), int)
  for c in range(num_classes):
    rank[item_labels == c] = np.arange(counts[c])
  return indices[rank < keep[item_labels]]


def resize(dataset: Dataset, size: int) -> Dataset:
  """The dataset with every image resized to size x size by area averaging (PIL's box filter), e.g. Fashion-MNIST
  at 8x8: a real small-image dataset made from a larger one. uint8 images stay uint8."""
  if size < 1:
    raise ValueError(f'Image size must be >= 1, got {size}.')
  from PIL import Image

  images = dataset.images
  if images.dtype != np.uint8:
    raise ValueError(f'{dataset.name}: resize takes uint8 images (before normalisation), got {images.dtype}.')
  resized = np.stack([np.asarray(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).resize(
      (size, size), Image.Resampling.BOX)) for image in images])
  return dataclasses.replace(dataset, images=resized.reshape(len(images), size, size, images.shape[-1]),
                             name=f'{dataset.name}@{size}x{size}')


def load_splits(
    name: str = DEFAULT_DATASET,
    data_dir: str | None = None,
    validation_size: int = 0,
    pool_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    test_split: str = 'test',
    download: bool = False,
    image_size: int | None = None,
    imbalance: float = 1.0,
    on_disk: bool = False,
) -> Splits:
  """`load` the train and test splits of `name`, then `make_splits` (`download`: prepare a missing TFDS dataset;
  `image_size`: every image resized to that square size first, `resize`; `imbalance`: a long-tailed pool;
  `on_disk`: a TFDS pool stays in its files, read a row at a time, `PoolView`)."""
  if on_disk and (name == DEFAULT_DATASET or image_size):
    raise ValueError('on_disk reads a prepared TFDS dataset row by row: it does not apply to the embedded '
                     f'{DEFAULT_DATASET} (which fits in memory) nor with image_size (resize while preparing).')
  train, test = load(name, 'train', data_dir, download, lazy=on_disk), load(name, test_split, data_dir, download)
  if image_size:
    train, test = resize(train, image_size), resize(test, image_size)
  return make_splits(train, test, validation_size, pool_size, test_size, seed, imbalance)
