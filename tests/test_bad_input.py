"""The bad-input catalogue: one case per test. Each asserts the error names the problem and the fix, and that the
sessions on disk (a finished one, and one waiting for people's labels) are byte-for-byte unchanged afterwards:
no bad input loses a labelled example or a finished round."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image
from workdirs import smoke_config, snapshot

from jal import checkpoint, data, experiment, inas, loop, query
from jal import oracle as oracle_lib
from jal.configs import autoal as autoal_config
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
  """-1 marks an unlabelled image (a pool people label); anything lower is an error, and so is -1 without the
  number of classes, which the known labels may not show."""
  with pytest.raises(ValueError, match=r'labels must be -1 \(unknown\) or a class index, found -2'):
    data.from_arrays(_images(), np.arange(10, dtype=np.int32) % 3 - 2, 2)
  with pytest.raises(ValueError, match='labels of -1 mark unlabelled images; pass num_classes'):
    data.from_arrays(_images(), np.arange(10, dtype=np.int32) % 3 - 1)
  pool = data.from_arrays(_images(), np.arange(10, dtype=np.int32) % 3 - 1, 2)
  assert pool.unknown_labels and int((pool.labels == -1).sum()) == 4


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

@pytest.mark.parametrize('name', ['entropi', 'entropi+balanced'])
def test_an_unknown_strategy(sessions, tmp_path, name):
  message = rf"Unknown query strategy '{re.escape(name)}'; registered: \[.*'<name>\+balanced'"
  with pytest.raises(ValueError, match=message):
    experiment.run(smoke_config(strategies=name), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_an_unknown_policy(sessions, tmp_path):
  with pytest.raises(ValueError,
                     match=r"Unknown architecture policy 'nas'; use one of \['evolution', 'grid', 'inas', "
                           r"'random_search', 'safe'\] \(with options \+inherit, \+lineage, \+pareto\) or "
                           r"'fixed:A\(i,j\)'"):
    experiment.run(smoke_config(policies='nas'), str(tmp_path / 'work'))


def test_a_pretrained_start_from_nowhere(sessions, tmp_path):
  with pytest.raises(ValueError, match='init_from=.*nothing there. Pass an Orbax checkpoint directory or a .msgpack'):
    experiment.run(smoke_config(**{'model.init_from': str(tmp_path / 'none.msgpack')}), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_a_pretrained_start_under_a_search(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"init_from fits one architecture, but the policies \['inas'\] search"):
    experiment.run(smoke_config(policies='inas', **{'model.init_from': str(tmp_path)}), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_a_frozen_backbone_without_a_pretrained_one(sessions, tmp_path):
  with pytest.raises(ValueError, match='freeze=backbone freezes pretrained layers: set --config.model.init_from'):
    experiment.run(smoke_config(**{'model.freeze': 'backbone'}), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_labels_imported_into_a_simulation(sessions, tmp_path):
  answers = tmp_path / 'mine.csv'
  answers.write_text('item_id,label\nfashion_mnist_idx/train/0,1\n')
  with pytest.raises(oracle_lib.LabelFileError, match='comes with every label .* a pool people label'):
    experiment.run(smoke_config(initial_labels=str(answers)), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_learning_loss_without_its_module(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"\['learning_loss'\] read a loss-prediction module: add "
                                       r"--config.model.loss_prediction=True"):
    experiment.run(smoke_config(strategies='learning_loss'), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


@pytest.mark.parametrize('field, value', [('stop.stabilise', -1), ('stop.agreement', 1.5), ('stop.set_size', 0)])
def test_a_stop_rule_out_of_range(sessions, tmp_path, field, value):
  with pytest.raises(ValueError, match=r'stop rule needs .* set --config.stop.set_size, --config.stop.stabilise'):
    experiment.run(smoke_config(**{field: value}), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


def test_an_unknown_cold_start(sessions, tmp_path):
  with pytest.raises(ValueError, match=r"Unknown initial-set method 'centres'; use one of \('random', 'kmeans', "
                                       r"'typiclust'\)"):
    experiment.run(smoke_config(initial='centres'), str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


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
  message = _import(sessions, _labels_file(sessions, tmp_path, rows))
  assert 'line 2: there is no class number 10; use 0 to 9 or a class name' in message


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


# --- Sessions under stress (issue: sessions that cannot be broken). ---

def _copy(sessions, tmp_path, which='finished'):
  copy = tmp_path / which
  shutil.copytree(sessions[which], copy)
  return copy


def test_a_refused_resume_keeps_every_finished_row(sessions, tmp_path):
  copy, latest = _copy_with_latest(sessions, tmp_path)
  rows = (copy / 'rounds.jsonl').read_text().splitlines(keepends=True)
  (copy / 'rounds.jsonl').write_text(''.join(rows[:-1]))  # The last round's row lost: that run must resume.
  for path in latest.rglob('*'):
    if path.is_file() and path.parent.name == 'meta':
      path.write_bytes(b'{"round": 3, "phase": ')
  with pytest.raises(checkpoint.CheckpointError, match='cannot be read'):
    experiment.run(smoke_config(), str(copy))
  assert (copy / 'rounds.jsonl').read_text() == ''.join(rows[:-1])


def test_a_row_cut_short_by_a_kill_comes_back_from_the_checkpoint(sessions, tmp_path):
  copy = _copy(sessions, tmp_path)
  text = (copy / 'rounds.jsonl').read_text()
  (copy / 'rounds.jsonl').write_text(text[:-40])  # A kill in the middle of appending the last row.
  experiment.run(smoke_config(), str(copy))
  assert [json.loads(line) for line in (copy / 'rounds.jsonl').read_text().splitlines()] == \
         [json.loads(line) for line in text.splitlines()]


def test_a_damaged_config_json_is_rebuilt_from_the_checkpoints(sessions, tmp_path):
  copy = _copy(sessions, tmp_path)
  original = (copy / 'config.json').read_text()
  (copy / 'config.json').write_text(original[:25])
  with pytest.raises(checkpoint.CheckpointError, match=r'its checkpoints.*train.epochs: 2 -> 5'):
    experiment.run(smoke_config(**{'train.epochs': 5}), str(copy))
  experiment.run(smoke_config(), str(copy))
  assert json.loads((copy / 'config.json').read_text()) == json.loads(original)


def test_a_second_process_on_one_workdir_is_refused_naming_the_first(sessions, tmp_path):
  copy = _copy(sessions, tmp_path)
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time\nfrom jal import checkpoint\n'
       'with checkpoint.lock_directory(sys.argv[1]):\n  print("locked", flush=True)\n  time.sleep(600)', str(copy)],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(checkpoint.LockedError, match=rf'in use by process {holder.pid} on .*One process per workdir'):
      experiment.run(smoke_config(), str(copy))
  finally:
    holder.kill()
    holder.wait()
  experiment.run(smoke_config(), str(copy))  # The lock of a killed process is stale: taken over.


def test_a_full_disk(sessions, tmp_path, monkeypatch):
  def no_space(*args, **kwargs):
    raise ValueError('INTERNAL: RESOURCE_EXHAUSTED: Error writing to file: No space left on device [OS error 28]')

  monkeypatch.setattr(ocp.CheckpointManager, 'save', no_space)
  with pytest.raises(checkpoint.CheckpointError, match=r'Could not write a checkpoint in .*RESOURCE_EXHAUSTED.*'
                                                       r'Free disk space.*resumes from the last complete checkpoint'):
    experiment.run(smoke_config(), str(tmp_path / 'work'))


def test_a_workdir_that_cannot_be_written(sessions, tmp_path):
  (tmp_path / 'file').write_text('not a directory')
  with pytest.raises(checkpoint.CheckpointError, match=r'Could not (create|write in) .*file/work'):
    experiment.run(smoke_config(), str(tmp_path / 'file' / 'work'))


def test_a_nan_learning_rate_is_refused_before_the_workdir_is_written(sessions, tmp_path):
  with pytest.raises(ValueError, match='learning_rate must be a positive finite number, got nan'):
    experiment.run(smoke_config(**{'train.learning_rate': float('nan')}), str(tmp_path / 'work'))
  assert not (tmp_path / 'work').exists()


def test_zero_mc_passes_is_refused_before_the_workdir_is_written(sessions, tmp_path):
  with pytest.raises(ValueError, match=r'mc_passes must be >= 1'):
    experiment.run(smoke_config(strategies='bald', **{'model.mc_passes': 0}), str(tmp_path / 'work'))
  assert not (tmp_path / 'work').exists()


def test_a_diverging_loss_stops_the_round_naming_the_cause(sessions, tmp_path):
  with pytest.raises(FloatingPointError, match=r'Round 0: the training loss of A\(1,2\) is (nan|inf).*learning_rate'):
    experiment.run(smoke_config(**{'train.learning_rate': 1e38}), str(tmp_path / 'work'))


def test_a_label_file_that_answers_an_earlier_round(sessions, tmp_path):
  with open(os.path.join(sessions['waiting'], 'queries', 'initial', 'index.csv')) as f:
    ids = [r['item_id'] for r in csv.DictReader(f)]
  path = _labels_file(sessions, tmp_path, [[i, 0] for i in ids])
  with pytest.raises(oracle_lib.LabelFileError, match=r'answers the initial set .* already applied; round 0 is '
                                                      r'waiting.*Nothing was imported'):
    experiment.run(sessions['human'], sessions['waiting'], path)


def test_a_template_filled_in_place_is_never_overwritten(sessions, tmp_path):
  copy = _copy(sessions, tmp_path, 'waiting')
  template = copy / 'queries' / 'round_0' / 'labels_template.csv'
  lines = template.read_text().splitlines()
  filled = '\n'.join([lines[0]] + [f'{line}3' for line in lines[1:4]] + lines[4:]) + '\n'
  template.write_text(filled)
  with pytest.raises(oracle_lib.LabelsRequested, match=r'already has 3 labels filled in and was left as it is'):
    experiment.run(sessions['human'], str(copy))  # After a reboot, without --labels.
  assert template.read_text() == filled
  assert (copy / 'queries' / 'round_0' / 'labels_template.new.csv').read_text() == \
         (Path(sessions['waiting']) / 'queries' / 'round_0' / 'labels_template.csv').read_text()


def test_an_image_folder_edited_between_rounds(sessions, tmp_path):
  root = _folder(tmp_path / 'images', sizes=((8, 8),) * 6)
  config = smoke_config(oracle='human', **{'data.name': 'folder', 'data.data_dir': str(root),
                                           'budget.per_round': 2, 'budget.total': 6})
  with pytest.raises(oracle_lib.LabelsRequested):
    experiment.run(config, str(tmp_path / 'work'))
  Image.fromarray(np.full((8, 8), 7, np.uint8)).save(root / 'unlabeled' / 'new.png')
  os.remove(root / 'unlabeled' / '0.png')
  with pytest.raises(checkpoint.CheckpointError, match=r'another pool .*added \(1\): unlabeled/new.png; removed '
                                                       r'\(1\): unlabeled/0.png.*labels would land on other items'):
    experiment.run(config, str(tmp_path / 'work'), str(tmp_path / 'labels.csv'))


def test_an_image_folder_with_a_sub_folder_in_unlabeled(sessions, tmp_path):
  root = _folder(tmp_path / 'images')
  os.makedirs(root / 'unlabeled' / 'more')
  with pytest.raises(ValueError, match=r"unlabeled/ holds sub-folders \['more'\].*Move their images up"):
    data.load_image_folder(str(root))


def test_an_image_folder_with_an_empty_class_folder(sessions, tmp_path):
  root = _folder(tmp_path / 'images')
  os.makedirs(root / 'labeled' / 'c')
  with pytest.raises(ValueError, match=r'labeled/c/ is empty: every class needs at least one seed image'):
    data.load_image_folder(str(root))


def test_an_image_folder_with_a_symlinked_class_folder(sessions, tmp_path):
  root = _folder(tmp_path / 'images')
  os.symlink(root / 'labeled' / 'a', root / 'labeled' / 'c')
  with pytest.raises(ValueError, match=r"Class folders \['c'\] .* are symbolic links"):
    data.load_image_folder(str(root))


# --- Array folders. ---

def _arrays(root, pool_shape=(20, 8, 8, 1), test_shape=(4, 8, 8, 1), test_labels=(0, 1, 0, 1)):
  os.makedirs(root)
  np.save(root / 'pool.npy', np.zeros(pool_shape, np.uint8))
  np.savez(root / 'test.npz', images=np.zeros(test_shape, np.uint8), labels=np.asarray(test_labels))
  return root


@pytest.mark.parametrize('edit, message', [
    (lambda root: os.remove(root / 'test.npz'), r"lacks \['test.npz'\]: it needs pool.npy"),
    (lambda root: (root / 'pool_lables.npy').write_bytes(b''),
     r"holds \['pool_lables.npy'\], which jal does not read"),
    (lambda root: np.save(root / 'pool_labels.npy', np.zeros(19, int)), 'holds .19,. labels for 20 pool images'),
    (lambda root: np.save(root / 'pool_labels.npy', np.full(20, -2)),
     r'pool_labels.npy: labels must lie in \[-1, 2\)'),
    (lambda root: np.savez(root / 'labeled.npz', images=np.zeros((2, 9, 8, 1), np.uint8), labels=np.zeros(2, int)),
     r"labeled.npz: images \(2, 9, 8, 1\).*the pool's image shape"),
    (lambda root: np.savez(root / 'test.npz', images=np.zeros((4, 8, 8, 1), np.float32), labels=np.zeros(4, int)),
     'test.npz: images are float32 but the pool is uint8'),
    (lambda root: np.savez(root / 'test.npz', pixels=np.zeros((4, 8, 8, 1), np.uint8)),
     'it needs `images` and `labels`'),
    (lambda root: (root / 'classes.txt').write_text('only\n'), r'test.npz: labels must lie in \[0, 1\)'),
])
def test_an_array_folder_with_a_fault_is_refused_by_name(tmp_path, edit, message):
  root = _arrays(tmp_path / 'arrays')
  edit(root)
  with pytest.raises(ValueError, match=message):
    data.load_arrays(str(root))
