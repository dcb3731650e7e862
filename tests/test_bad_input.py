"""The bad-input catalogue: one case per test. Each asserts the error names the problem and the fix, and that the
sessions on disk (a finished one, and one waiting for people's labels) are byte-for-byte unchanged afterwards:
no bad input loses a labelled example or a finished round."""

import csv
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image
from workdirs import smoke_config, snapshot

from experiments.configs import autoal as autoal_config
from jal import checkpoint, data, experiment, inas, loop, query
from jal import oracle as oracle_lib
from jal.models import ModelConfig, model_fn
from jal.search_space import Architecture, SearchSpace


@pytest.fixture(scope='module')
def sessions(tmp_path_factory, fashion_mnist):
  """A finished simulated session and a human session waiting for round 0's labels, with their snapshots."""
  del fashion_mnist
  root = tmp_path_factory.mktemp('sessions')
  finished = str(root / 'finished')
  experiment.run(smoke_config(), finished)
  waiting = str(root / 'waiting')
  human = smoke_config(oracle='human')
  with pytest.raises(oracle_lib.LabelsRequested):
    experiment.run(human, waiting)
  splits = experiment.load_data(human)
  answers = root / 'initial.csv'
  with open(os.path.join(waiting, 'queries', 'initial', 'index.csv')) as f:
    rows = [[r['item_id'], int(splits.pool.labels[int(r['pool_index'])])] for r in csv.DictReader(f)]
  with open(answers, 'w', newline='') as f:
    csv.writer(f).writerows([['item_id', 'label'], *rows])
  with pytest.raises(oracle_lib.LabelsRequested, match='Round 0'):
    experiment.run(human, waiting, str(answers))
  with open(os.path.join(waiting, 'queries', 'round_0', 'index.csv')) as f:
    asked = [(r['item_id'], int(splits.pool.labels[int(r['pool_index'])])) for r in csv.DictReader(f)]
  return {'finished': finished, 'waiting': waiting, 'human': human, 'asked': asked, 'splits': splits,
          'root': root, 'snapshots': {d: snapshot(d) for d in (finished, waiting)}}


@pytest.fixture(autouse=True)
def unchanged(request):
  """After every case: both sessions on disk are exactly as they were."""
  yield
  if 'sessions' in request.fixturenames:
    sessions = request.getfixturevalue('sessions')
    for directory, before in sessions['snapshots'].items():
      assert snapshot(directory) == before, f'{directory} changed'


def _images(n=10, shape=(8, 8, 1)):
  return np.zeros((n, *shape), np.float32)


# --- Data. ---

def test_images_of_rank_two(sessions):
  with pytest.raises(ValueError, match=r'NHWC.*got shape \(10, 64\).*images\[\.\.\., None\]'):
    data.from_arrays(np.zeros((10, 64), np.float32), np.zeros(10, np.int32), 2)


def test_images_of_an_integer_dtype_other_than_uint8(sessions):
  with pytest.raises(ValueError, match=r'uint8 \(raw\) or float32, got int64; convert'):
    data.Dataset(np.zeros((10, 8, 8, 1), np.int64), np.zeros(10, np.int32), 2)


def test_images_that_are_not_numbers(sessions):
  with pytest.raises(ValueError, match='images must be numeric, got dtype bool'):
    data.from_arrays(np.zeros((10, 8, 8, 1), bool), np.zeros(10, np.int32), 2)


def test_labels_of_another_length(sessions):
  with pytest.raises(ValueError, match=r'labels must be \[N\] with N = 10'):
    data.from_arrays(_images(), np.zeros(9, np.int32), 2)


def test_labels_above_the_classes(sessions):
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\), found \[0, 3\]; fix num_classes'):
    data.from_arrays(_images(), np.arange(10, dtype=np.int32) % 4, 3)


def test_negative_labels(sessions):
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\), found \[-1, 1\]'):
    data.from_arrays(_images(), np.arange(10, dtype=np.int32) % 3 - 1, 2)


def test_float_labels(sessions):
  with pytest.raises(ValueError, match='integer class indices, got float32; map class names'):
    data.from_arrays(_images(), np.zeros(10, np.float32), 2)


def test_nan_images(sessions):
  images = _images()
  images[3, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match='1 images contain NaN or inf; clean or drop them'):
    data.from_arrays(images, np.zeros(10, np.int32), 2)


def test_inf_images(sessions):
  images = _images()
  images[[1, 2], 0, 0, 0] = np.inf
  with pytest.raises(ValueError, match='2 images contain NaN or inf'):
    data.from_arrays(images, np.zeros(10, np.int32), 2)


def test_an_empty_split(sessions):
  with pytest.raises(ValueError, match=r'the split is empty \(0 images\)'):
    data.from_arrays(_images(0), np.zeros(0, np.int32), 2)


def test_splits_of_different_image_shapes(sessions):
  pool = data.Dataset(_images(), np.zeros(10, np.int32), 2, 'pool')
  test = data.Dataset(_images(shape=(9, 9, 1)), np.zeros(10, np.int32), 2, 'test')
  with pytest.raises(ValueError, match=r'test images are \(9, 9, 1\) but the pool is \(8, 8, 1\).*resize'):
    data.Splits(pool, None, test, np.zeros(1), np.ones(1))


def test_splits_of_different_class_counts(sessions):
  pool = data.Dataset(_images(), np.zeros(10, np.int32), 2, 'pool')
  test = data.Dataset(_images(), np.zeros(10, np.int32), 3, 'test')
  with pytest.raises(ValueError, match='test has 3 classes but the pool has 2'):
    data.Splits(pool, None, test, np.zeros(1), np.ones(1))


def test_fewer_unlabelled_items_than_the_query(sessions):
  labeled = np.arange(10) < 7
  inputs = query.QueryInputs(~labeled, labeled, probs=np.full((10, 2), 0.5, np.float32))
  with pytest.raises(ValueError, match='Cannot select 5 items: only 3 unlabelled items remain.*Lower the'):
    query.select('entropy', inputs, 5, jax.random.key(0))


def test_an_exhausted_pool(sessions):
  labeled = np.ones(10, bool)
  inputs = query.QueryInputs(~labeled, labeled, probs=np.full((10, 2), 0.5, np.float32))
  with pytest.raises(ValueError, match='only 0 unlabelled items remain'):
    query.select('entropy', inputs, 1, jax.random.key(0))


def test_a_missing_dataset(sessions, tmp_path):
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
    experiment.run(smoke_config(**{'data.data_dir': str(tmp_path / 'nowhere')}), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


# --- Configs. ---

def test_an_unknown_strategy(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"Unknown query strategy 'entropi'; registered: \["):
    experiment.run(smoke_config(strategies='entropi'), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_an_unknown_policy(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"Unknown architecture policy 'nas'; use 'inas' or 'fixed:A\(i,j\)'"):
    experiment.run(smoke_config(policies='nas'), str(tmp_path / 'work'))


def test_an_unparseable_architecture(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"Cannot parse architecture 'A\(0,2\)'"):
    experiment.run(smoke_config(policies='fixed:A(0,2)'), str(tmp_path / 'work'))


def test_an_architecture_outside_the_grid(sessions):
  config = inas.INASConfig(space=SearchSpace(2, 2))
  with pytest.raises(ValueError, match=r'A\(3,3\) is outside the search space.*enlarge the space'):
    inas.inas(np.ones(10, bool), Architecture(3, 3), config, lambda *a: None, jax.random.key(0))


def test_a_negative_budget(sessions, tmp_path):
  with pytest.raises(ValueError, match='per_round >= 1'):
    experiment.run(smoke_config(**{'budget.per_round': -20}), str(tmp_path / 'work'))


def test_a_total_below_the_initial_budget(sessions, tmp_path):
  with pytest.raises(ValueError, match=r'total >= initial; got initial=20, per_round=20, total=10'):
    experiment.run(smoke_config(**{'budget.total': 10}), str(tmp_path / 'work'))


def test_a_budget_larger_than_the_pool(sessions, tmp_path):
  with pytest.raises(ValueError, match=r'The total budget \(400\) exceeds the pool \(300 items\)'):
    experiment.run(smoke_config(**{'budget.total': 400}), str(tmp_path / 'work'))


def test_k_larger_than_the_pool(sessions, tmp_path):
  with pytest.raises(ValueError, match=r'exceeds the pool \(300 items\)'):
    experiment.run(smoke_config(**{'budget.initial': 301, 'budget.total': 301}), str(tmp_path / 'work'))


def test_an_unknown_autoal_candidate(sessions, tmp_path):
  config = autoal_config.get_config('smoke')
  config.autoal.candidates = ('entropy', 'kmean')
  with pytest.raises(ValueError, match="Unknown query strategy 'kmean'"):
    experiment.run(config, str(tmp_path / 'work'))


def test_an_unknown_oracle(sessions, tmp_path):
  with pytest.raises(ValueError, match="config.oracle must be 'simulated' or 'human', got 'people'"):
    experiment.run(smoke_config(oracle='people'), str(tmp_path / 'work'))


def test_labels_without_a_human_oracle(sessions, tmp_path):
  with pytest.raises(ValueError, match='add --config.oracle=human'):
    experiment.run(smoke_config(), str(tmp_path / 'work'), str(tmp_path / 'labels.csv'))


def test_a_human_session_of_several_methods(sessions, tmp_path):
  with pytest.raises(ValueError, match='one policy, one strategy and one seed'):
    experiment.run(smoke_config(oracle='human', strategies='entropy,margin'), str(tmp_path / 'work'))


def test_a_workdir_restarted_under_another_config(sessions):
  with pytest.raises(checkpoint.CheckpointError, match=r'differing fields: train.epochs: 2 -> 5.*new workdir'):
    experiment.run(smoke_config(**{'train.epochs': 5}), sessions['finished'])


# --- Checkpoints (each on a copy of the finished session: the original must stay as it was). ---

def _copy_with_latest(sessions, tmp_path):
  copy = tmp_path / 'copy'
  shutil.copytree(sessions['finished'], copy)
  runs = copy / 'checkpoints'
  (run,) = list(runs.iterdir())
  latest = max((p for p in run.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
  return copy, latest


def test_a_truncated_checkpoint(sessions, tmp_path):
  copy, latest = _copy_with_latest(sessions, tmp_path)
  files = sorted(p for p in latest.rglob('*') if p.is_file() and p.stat().st_size > 0)
  for path in files:
    with open(path, 'r+b') as f:
      f.truncate(path.stat().st_size // 2)
  before = snapshot(copy)
  (copy / 'rounds.jsonl').write_text('')  # Rows lost too: the run must come back from its checkpoint.
  with pytest.raises(checkpoint.CheckpointError, match=rf'{latest}.*cannot be read.*Delete {latest}'):
    experiment.run(smoke_config(), str(copy))
  after = snapshot(copy)
  assert {k: v for k, v in after.items() if 'checkpoints' in k} == \
         {k: v for k, v in before.items() if 'checkpoints' in k}


def test_a_corrupted_checkpoint_metadata(sessions, tmp_path):
  copy, latest = _copy_with_latest(sessions, tmp_path)
  (copy / 'rounds.jsonl').write_text('')
  for path in latest.rglob('*'):
    if path.is_file() and path.parent.name == 'meta':
      path.write_bytes(b'{"round": 3, "phase": ')
  with pytest.raises(checkpoint.CheckpointError, match='cannot be read'):
    experiment.run(smoke_config(), str(copy))


def test_a_checkpoint_of_another_config(sessions, tmp_path):
  copy, latest = _copy_with_latest(sessions, tmp_path)
  splits = experiment.load_data(smoke_config())
  other = checkpoint.Checkpointer(str(latest.parent), {'something': 'else'})
  with pytest.raises(checkpoint.CheckpointError, match=r'differing fields: .*something'):
    loop.restore(other, splits, _loopsmoke_config(), query.as_querier('entropy'), model_fn(10))


def test_a_checkpoint_of_another_pool(sessions, tmp_path):
  copy, latest = _copy_with_latest(sessions, tmp_path)
  splits = experiment.load_data(smoke_config(**{'data.pool_size': 200}))
  config_json = __import__('json').loads((copy / 'config.json').read_text())
  run = checkpoint.Checkpointer(str(latest.parent), {**config_json, 'policy': 'fixed:A(1,2)', 'strategy': 'entropy',
                                                     'seed': 0})
  small = data.Splits(splits.pool, None, splits.test, splits.mean, splits.std)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'another pool \(pool of 300 items then, 200 now; removed \(100\): fashion_mnist_idx'):
    loop.run(small, _loopsmoke_config(), 'entropy', loop.fixed(Architecture(1, 2)), checkpointer=run)


def _loopsmoke_config():
  from jal.train import TrainConfig

  return loop.LoopConfig(loop.BudgetSchedule(20, 20, 60), TrainConfig(epochs=2, examples_per_epoch=64,
                                                                       batch_size=32), ModelConfig(width=4))


# --- Label files (against the session waiting for round 0: a refused file must leave it as it was). ---

def _labels_file(sessions, tmp_path, rows, header=('item_id', 'label')):
  path = tmp_path / 'labels.csv'
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    if header:
      writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def _import(sessions, path):
  with pytest.raises(oracle_lib.LabelFileError, match='nothing was applied') as error:
    experiment.run(sessions['human'], sessions['waiting'], path)
  return str(error.value)


def test_a_label_file_with_an_unknown_id(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']]
  rows[4][0] = 'no/such/item'
  assert "line 6: unknown item id 'no/such/item'" in _import(sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_with_an_item_not_asked_for(sessions, tmp_path):
  asked = {item for item, _ in sessions['asked']}
  other = next(i for i in sessions['splits'].pool.item_ids if i not in asked)
  rows = [list(r) for r in sessions['asked']] + [[other, 0]]
  assert f"item '{other}' was not asked for in this round" in _import(
      sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_with_a_duplicate(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']] + [list(sessions['asked'][0])]
  assert 'line 22: item' in _import(sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_with_a_class_out_of_range(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']]
  rows[0][1] = 10
  assert 'line 2: class 10 is out of range [0, 10)' in _import(sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_with_an_unknown_class_name(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']]
  rows[1][1] = 'Sandals'
  message = _import(sessions, _labels_file(sessions, tmp_path, rows))
  assert "line 3: 'Sandals' is not a class name (T-shirt/top, Trouser" in message


def test_a_label_file_with_missing_rows(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']][:-3]
  assert '3 items asked for have no row' in _import(sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_with_an_empty_label(sessions, tmp_path):
  rows = [list(r) for r in sessions['asked']]
  rows[2][1] = ''
  assert "line 4: '' is not a class name" in _import(sessions, _labels_file(sessions, tmp_path, rows))


def test_a_label_file_without_its_header(sessions, tmp_path):
  path = _labels_file(sessions, tmp_path, [list(r) for r in sessions['asked']], header=None)
  with pytest.raises(oracle_lib.LabelFileError, match='the first line must be the header "item_id,label"'):
    experiment.run(sessions['human'], sessions['waiting'], path)


def test_a_missing_label_file(sessions, tmp_path):
  with pytest.raises(oracle_lib.LabelFileError, match='does not exist'):
    experiment.run(sessions['human'], sessions['waiting'], str(tmp_path / 'nope.csv'))


# --- Image folders. ---

def _folder(root, sizes=((8, 8),) * 4, classes=('a', 'b')):
  for split in ('labeled', 'test'):
    for name in classes:
      os.makedirs(root / split / name)
      Image.fromarray(np.zeros(sizes[0], np.uint8)).save(root / split / name / '0.png')
  os.makedirs(root / 'unlabeled')
  for k, size in enumerate(sizes):
    Image.fromarray(np.full(size, 100, np.uint8)).save(root / 'unlabeled' / f'{k}.png')
  return root


def test_an_image_folder_without_test_images(sessions, tmp_path):
  root = _folder(tmp_path / 'images')
  shutil.rmtree(root / 'test')
  with pytest.raises(ValueError, match=r"lacks \['test'\].*test/<class>/"):
    data.load_image_folder(str(root))


def test_an_image_folder_of_one_class(sessions, tmp_path):
  root = _folder(tmp_path / 'images', classes=('a',))
  with pytest.raises(ValueError, match='one sub-folder per class .at least 2.'):
    data.load_image_folder(str(root))


def test_an_image_folder_with_an_unreadable_image(sessions, tmp_path):
  root = _folder(tmp_path / 'images')
  (root / 'unlabeled' / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(ValueError, match=r'Cannot read these images: .*broken.png.*Remove or replace'):
    data.load_image_folder(str(root))


def test_an_image_folder_of_mixed_sizes(sessions, tmp_path):
  root = _folder(tmp_path / 'images', sizes=((8, 8), (8, 8), (9, 8), (8, 8)))
  with pytest.raises(ValueError, match=r'different sizes.*image_size=\(H, W\)'):
    data.load_image_folder(str(root))
