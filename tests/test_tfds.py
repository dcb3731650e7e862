"""The TFDS path on a real prepared dataset (not a mock): a tiny builder defined here, prepared on this machine by
TFDS itself, read back through jal's loader. Preparing needs TensorFlow (the `tf` extra, which .ci/run installs);
without it these tests skip, unless JAL_REQUIRE_TF=1 (set by .ci/run) makes the missing extra an error."""

import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jal import data, experiment

if os.environ.get('JAL_REQUIRE_TF') != '1':
  pytest.importorskip('tensorflow', reason="preparing a TFDS dataset needs the 'tf' extra")

CLASSES = ('ant', 'bee', 'cat')


def _examples(seed: int, count: int):
  rng = np.random.default_rng(seed)
  for i in range(count):
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image[0, 0, 0] = i  # A fingerprint per example.
    yield i, {'image': image, 'label': i % 3}


class JalTinyImages(tfds.core.GeneratorBasedBuilder):
  """30 training and 12 test images of 8x8x3 in 3 classes, PNG-encoded like CIFAR's."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, supervised_keys=('image', 'label'),
        features=tfds.features.FeaturesDict({'image': tfds.features.Image(shape=(8, 8, 3)),
                                             'label': tfds.features.ClassLabel(names=CLASSES)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples(0, 30), 'test': self._generate_examples(1, 12)}

  def _generate_examples(self, seed, count):
    yield from _examples(seed, count)


NAME = 'jal_tiny_images'


def _expected(seed, count):
  examples = [e for _, e in _examples(seed, count)]
  return np.stack([e['image'] for e in examples]), np.array([e['label'] for e in examples])


def _assert_read_back(split, seed, count):
  images, labels = _expected(seed, count)
  order = np.argsort(split.images[:, 0, 0, 0])  # TFDS shuffles while preparing: compare by fingerprint.
  np.testing.assert_array_equal(split.images[order], images)
  np.testing.assert_array_equal(split.labels[order], labels)
  assert split.num_classes == 3 and split.class_names == CLASSES


def test_download_true_prepares_array_record_and_reads_it_back(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'not prepared.*download=True.*file_format=.array_record'):
    data.load_tfds(NAME, 'train', data_dir=str(tmp_path))
  split = data.load_tfds(NAME, 'train', data_dir=str(tmp_path), download=True)
  _assert_read_back(split, 0, 30)
  _assert_read_back(data.load_tfds(NAME, 'test', data_dir=str(tmp_path)), 1, 12)  # Prepared once, read again.


def test_tfrecord_preparation_fails_with_the_command_that_fixes_it(tmp_path):
  """TFDS's default format is TFRecord, which tfds.data_source cannot read: the error's command must work."""
  JalTinyImages(data_dir=str(tmp_path / 'tfds')).download_and_prepare()
  with pytest.raises(FileNotFoundError, match='as tfrecord') as raised:
    data.load_tfds(NAME, 'train', data_dir=str(tmp_path / 'tfds'))
  command = re.search(r'python -c "(.*?)"', str(raised.value)).group(1)
  target = re.search(r"then pass data_dir='([^']+)'", str(raised.value)).group(1)
  exec(command, {})  # The very command the message gives (python -c "...").
  _assert_read_back(data.load_tfds(NAME, 'train', data_dir=target), 0, 30)


def test_experiment_config_reads_a_prepared_tfds_dataset(tmp_path):
  config = experiment.base_config()
  config.data.name, config.data.data_dir, config.data.download = NAME, str(tmp_path), True
  config.data.validation_size, config.data.pool_size, config.data.test_size = 6, 20, 10
  splits = experiment.load_data(config)
  assert (len(splits.pool), len(splits.validation), len(splits.test)) == (20, 6, 10)
  assert splits.pool.images.shape[1:] == (8, 8, 3) and splits.mean.shape == (3,)


def test_a_lazy_split_reads_rows_from_the_array_record_files(tmp_path):
  in_memory = data.load_tfds(NAME, 'train', data_dir=str(tmp_path), download=True)
  lazy = data.load_tfds(NAME, 'train', data_dir=str(tmp_path), lazy=True)
  assert isinstance(lazy.images, data.TFDSImages) and lazy.images.shape == (30, 8, 8, 3)
  np.testing.assert_array_equal(lazy.labels, in_memory.labels)
  np.testing.assert_array_equal(lazy.images[[4, 0, 29]], in_memory.images[[4, 0, 29]])
  np.testing.assert_array_equal(lazy.images[2:5], in_memory.images[2:5])
  config = experiment.base_config()
  config.data.name, config.data.data_dir, config.data.on_disk = NAME, str(tmp_path), True
  config.data.validation_size, config.data.pool_size, config.data.test_size = 6, 20, 10
  splits = experiment.load_data(config)
  assert isinstance(splits.pool.images, data.PoolView) and splits.pool.images[:].shape == (20, 8, 8, 3)
  config.data.on_disk = False
  eager = experiment.load_data(config)
  np.testing.assert_allclose(splits.pool.images[:], eager.pool.images, atol=1e-5)  # Stats summed in float64.
