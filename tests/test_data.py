"""Tests for jal.data: the Fashion-MNIST IDX loader, TFDS (offline, mocked), user arrays, splits, errors."""

import gzip
import os
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jal import data


def _write_idx(path, array):
  header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
  """A directory of valid IDX files in the Debian package's layout (5 train, 3 test images)."""
  rng = np.random.default_rng(0)
  for prefix, count in (('train', 5), ('t10k', 3)):
    _write_idx(tmp_path / f'{prefix}-images-idx3-ubyte.gz', rng.integers(0, 256, (count, 28, 28)))
    _write_idx(tmp_path / f'{prefix}-labels-idx1-ubyte.gz', rng.integers(0, 10, (count,)))
  return tmp_path


def test_real_fashion_mnist_from_debian_package():
  if not os.path.isdir(data.FASHION_MNIST_DIR):
    pytest.skip('dataset-fashion-mnist is not installed')
  train, test = data.load_fashion_mnist('train'), data.load_fashion_mnist('test')
  assert train.images.shape == (60_000, 28, 28, 1) and train.images.dtype == np.uint8
  assert test.images.shape == (10_000, 28, 28, 1)
  assert np.bincount(train.labels).tolist() == [6000] * 10
  assert train.class_names[9] == 'Ankle boot'


def test_idx_loader_reads_a_directory(idx_dir):
  train = data.load_fashion_mnist('train', str(idx_dir))
  assert train.images.shape == (5, 28, 28, 1)
  assert len(data.load('fashion_mnist_idx', 'test', str(idx_dir))) == 3


def test_missing_files_name_the_debian_package(tmp_path):
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
    data.load_fashion_mnist('train', str(tmp_path))


def test_corrupt_idx_file_is_reported(idx_dir):
  path = idx_dir / 'train-images-idx3-ubyte.gz'
  with gzip.open(path, 'rb') as f:
    content = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(content[:1000])
  with pytest.raises(ValueError, match='corrupt'):
    data.load_fashion_mnist('train', str(idx_dir))


@pytest.mark.parametrize('name, shape, classes', [
    ('cifar10', (32, 32, 3), 10), ('mnist', (28, 28, 1), 10), ('svhn_cropped', (32, 32, 3), 10),
    ('cifar100', (32, 32, 3), 100)])
def test_tfds_datasets_by_name_offline(name, shape, classes):
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    split = data.load_tfds(name, 'train')
  assert split.images.shape == (12, *shape)
  assert split.num_classes == classes
  assert split.labels.max() < classes
  assert split.name == f'{name}/train'


def test_tfds_splits_are_normalised_per_channel():
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    splits = data.load_splits('cifar10', validation_size=8, seed=1)
  assert len(splits.pool) == 32 and len(splits.validation) == 8
  np.testing.assert_allclose(splits.pool.images.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(splits.pool.images.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
  assert splits.mean.shape == (3,)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"pip install 'jal\[tf\]'.*file_format='array_record'"):
    data.load_tfds('cifar10', 'train', data_dir=str(tmp_path))


def test_splits_are_seeded_and_disjoint():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, 4, 4, 1)).astype(np.uint8)
  images[:, 0, 0, 0] = np.arange(50)  # A fingerprint per image.
  train = data.from_arrays(images, np.arange(50) % 3)
  test = data.from_arrays(images[:10], np.arange(10) % 3)
  a = data.make_splits(train, test, validation_size=10, pool_size=30, seed=4)
  b = data.make_splits(train, test, validation_size=10, pool_size=30, seed=4)
  c = data.make_splits(train, test, validation_size=10, pool_size=30, seed=5)
  np.testing.assert_array_equal(a.pool.images, b.pool.images)
  assert not np.array_equal(a.pool.images, c.pool.images)

  def ids(split):
    return set(np.round(split.images[:, 0, 0, 0] * a.std[0] + a.mean[0], 3).tolist())

  assert len(ids(a.pool)) == 30 and len(ids(a.validation)) == 10
  assert not ids(a.pool) & ids(a.validation)


def test_from_arrays_accepts_grayscale_and_floats():
  split = data.from_arrays(np.zeros((4, 5, 5)), [0, 1, 2, 1])
  assert split.images.shape == (4, 5, 5, 1) and split.images.dtype == np.float32
  assert split.num_classes == 3 and split.labels.dtype == np.int32


@pytest.mark.parametrize('images, labels, kwargs, message', [
    (np.zeros((4, 5)), [0, 1, 0, 1], {}, r'\[N, H, W, C\]'),
    (np.zeros((4, 5, 5, 1, 1)), [0, 1, 0, 1], {}, r'\[N, H, W, C\]'),
    (np.zeros((4, 5, 5, 1), bool), [0, 1, 0, 1], {}, 'numeric'),
    (np.zeros((4, 5, 5, 1)), [0, 1, 0], {}, 'one per image'),
    (np.zeros((4, 5, 5, 1)), [0.0, 1.0, 0.0, 1.0], {}, 'integer class indices'),
    (np.zeros((4, 5, 5, 1)), [0, 1, 5, 1], {'num_classes': 3}, r'\[0, 3\), found \[0, 5\]'),
    (np.zeros((4, 5, 5, 1)), [0, -2, 0, 1], {'num_classes': 3}, r'-1 \(unknown\) or a class index, found -2'),
    (np.zeros((4, 5, 5, 1)), [0, -1, 0, 1], {}, 'labels of -1 mark unlabelled images; pass num_classes'),
    (np.full((4, 5, 5, 1), np.nan), [0, 1, 0, 1], {}, '4 images contain NaN or inf'),
    (np.zeros((0, 5, 5, 1)), np.zeros(0, int), {'num_classes': 2}, 'empty'),
])
def test_bad_arrays_get_clear_errors(images, labels, kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.from_arrays(images, np.asarray(labels), **kwargs)


def test_inf_pixel_is_caught():
  images = np.zeros((3, 4, 4, 1), np.float32)
  images[1, 2, 2, 0] = np.inf
  with pytest.raises(ValueError, match='1 images contain NaN or inf'):
    data.from_arrays(images, [0, 1, 0])


def test_split_shape_mismatch_is_rejected():
  train = data.from_arrays(np.zeros((6, 4, 4, 1), np.uint8), np.arange(6) % 2)
  test = data.from_arrays(np.zeros((3, 5, 5, 1), np.uint8), np.arange(3) % 2)
  with pytest.raises(ValueError, match='share one image shape'):
    data.make_splits(train, test)


def test_split_sizes_are_checked():
  train = data.from_arrays(np.zeros((6, 4, 4, 1), np.uint8), np.arange(6) % 2)
  with pytest.raises(ValueError, match='validation_size'):
    data.make_splits(train, train, validation_size=6)
  with pytest.raises(ValueError, match='pool_size'):
    data.make_splits(train, train, validation_size=2, pool_size=5)


def _image_folder(root, classes, write):
  """labeled/<class>/ and test/<class>/ with one image each, unlabeled/ with two; `write(path, value)` saves."""
  for split in ('labeled', 'test'):
    for k, name in enumerate(classes):
      os.makedirs(root / split / name)
      write(root / split / name / 'x', k)
  os.makedirs(root / 'unlabeled')
  write(root / 'unlabeled' / 'u0', 0)
  write(root / 'unlabeled' / 'u1', 1)
  return root


def test_image_folders_read_16_bit_and_tiff_images_scaled_not_saturated(tmp_path):
  from PIL import Image

  def write(path, k):
    gradient = (np.arange(64).reshape(8, 8) * 1000 + k).astype(np.uint16)  # 0 .. 63,000 of 65,535
    Image.fromarray(gradient).save(f'{path}.tif' if 'unlabeled' in str(path) else f'{path}.png')

  splits = data.load_image_folder(str(_image_folder(tmp_path, ('a', 'b'), write)))
  raw = np.round((splits.pool.images * splits.std + splits.mean) * 255).astype(int)
  assert 'unlabeled/u0.tif' in splits.pool.item_ids
  expected = np.round(np.arange(64).reshape(8, 8) * 1000 / 65535 * 255)
  for image in raw:
    np.testing.assert_array_equal(image[..., 0], expected)  # 8-bit saturation would make almost all 255.


def test_integer_class_folders_are_ordered_by_number_and_named_in_label_files(tmp_path):
  from PIL import Image

  def write(path, k):
    Image.fromarray(np.full((8, 8), k, np.uint8)).save(f'{path}.png')

  splits = data.load_image_folder(str(_image_folder(tmp_path, ('0', '1', '2', '10'), write)))
  assert splits.pool.class_names == ('0', '1', '2', '10')
  seed_of = dict(zip(splits.pool.item_ids, splits.pool.labels))
  assert seed_of['labeled/10/x.png'] == 3 and seed_of['labeled/2/x.png'] == 2


def test_a_long_tailed_pool_thins_each_class_geometrically_and_keeps_the_order():
  labels = np.repeat(np.arange(4), 100)
  order = np.random.default_rng(0).permutation(400)
  kept = data.long_tailed(order, labels, 4, 8.0)
  counts = np.bincount(labels[kept], minlength=4)
  np.testing.assert_array_equal(counts, [100, 50, 25, 12])  # 100 * 8^(-c/3), floored.
  np.testing.assert_array_equal(kept, order[np.isin(order, kept)])  # The first items of each class, in order.
  for c in range(4):
    np.testing.assert_array_equal(kept[labels[kept] == c], order[labels[order] == c][:counts[c]])
  with pytest.raises(ValueError, match='>= 1'):
    data.long_tailed(order, labels, 4, 0.5)


def test_an_imbalanced_pool_leaves_the_test_split_and_the_held_out_split_as_drawn():
  images = np.zeros((1200, 4, 4, 1), np.uint8)
  labels = np.repeat(np.arange(3), 400)
  train, test = data.from_arrays(images, labels), data.from_arrays(images[:300], np.tile(np.arange(3), 100))
  balanced = data.make_splits(train, test, validation_size=150, seed=1)
  tailed = data.make_splits(train, test, validation_size=150, seed=1, imbalance=4.0)
  pool_counts = np.bincount(tailed.pool.labels, minlength=3)
  assert pool_counts[0] / pool_counts[2] == pytest.approx(4.0, rel=0.05) and pool_counts[0] > pool_counts[1]
  np.testing.assert_array_equal(tailed.validation.labels, balanced.validation.labels)
  np.testing.assert_array_equal(tailed.test.labels, balanced.test.labels)


def test_resize_averages_areas_and_keeps_uint8():
  images = np.zeros((3, 28, 28, 1), np.uint8)
  images[0] = 200
  images[1, :14] = 255  # Top half white: the top half of the 8x8 stays white, the bottom black.
  images[2, :, ::2] = 255  # Stripes one pixel wide average to grey.
  small = data.resize(data.from_arrays(images, np.array([0, 1, 0])), 8)
  assert small.images.shape == (3, 8, 8, 1) and small.images.dtype == np.uint8 and small.name.endswith('@8x8')
  assert np.all(small.images[0] == 200)
  assert np.all(small.images[1, :4] == 255) and np.all(small.images[1, 4:] == 0)
  assert np.all(np.abs(small.images[2].astype(int) - 128) <= 43) and abs(small.images[2].mean() - 127.5) < 3
  with pytest.raises(ValueError, match='uint8 images'):
    data.resize(data.from_arrays(images.astype(np.float32), np.array([0, 1, 0])), 8)


def test_a_pool_on_disk_stays_there_and_is_checked_like_an_array(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(40, 4, 4, 1)).astype(np.float32)
  np.save(tmp_path / 'pool.npy', images)
  dataset = data.Dataset(data.NpyPool(str(tmp_path / 'pool.npy')), np.arange(40) % 2, 2, name='disk')
  subset = dataset.subset(np.array([5, 1, 30]))
  assert isinstance(subset.images, data.PoolView) and subset.images.shape == (3, 4, 4, 1)
  np.testing.assert_array_equal(subset.images[:], images[[5, 1, 30]])
  np.testing.assert_array_equal(subset.subset(np.array([2])).images[0], images[30])
  splits = data.make_splits(dataset, data.from_arrays(images[:8], np.arange(8) % 2), validation_size=4)
  assert isinstance(splits.pool.images, data.PoolView) and isinstance(splits.validation.images, np.ndarray)
  mean, std = data.streaming_normalization_stats(splits.pool.images.source)
  np.testing.assert_allclose(splits.pool.images[:2], (splits.pool.images.source[:2] - mean) / std, rtol=1e-6)
  images[7, 0, 0, 0] = np.nan
  np.save(tmp_path / 'bad.npy', images)
  with pytest.raises(ValueError, match='1 images contain NaN'):
    data.Dataset(data.NpyPool(str(tmp_path / 'bad.npy')), np.arange(40) % 2, 2)
