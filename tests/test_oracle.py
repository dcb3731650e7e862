"""The human-labelling workflow end to end: query files, a label CSV imported (or refused, leaving the session as
it was), the next round; and a user's own image folder as the pool."""

import csv
import os

import numpy as np
import pytest
from PIL import Image
from workdirs import smoke_config, snapshot

from jal import data, experiment, report
from jal import oracle as oracle_lib


def _answer(query_dir, label_of, path, edit=None):
  """Writes a labels CSV for the items in query_dir/index.csv; `edit` may change the rows first."""
  with open(os.path.join(query_dir, 'index.csv')) as f:
    rows = [[r['item_id'], str(label_of(r))] for r in csv.DictReader(f)]
  if edit is not None:
    rows = edit(rows)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['item_id', 'label'])
    writer.writerows(rows)
  return str(path)


def _human_config(**overrides):
  return smoke_config(oracle='human', **overrides)


def test_human_labelling_round_trip(tmp_path, fashion_mnist):
  del fashion_mnist
  workdir = str(tmp_path / 'work')
  config = _human_config()
  splits = experiment.load_data(config)
  true_label = lambda row: int(splits.pool.labels[int(row['pool_index'])])  # noqa: E731

  # 1. The initial labels are asked for: files written, a clean stop that says what to do.
  with pytest.raises(oracle_lib.LabelsRequested, match='^The initial set needs 20 labels from you.*--labels='):
    experiment.run(config, workdir)
  initial = os.path.join(workdir, 'queries', 'initial')
  for name in ('index.csv', 'contact_sheet.png', 'labels_template.csv', 'classes.txt'):
    assert os.path.getsize(os.path.join(initial, name)) > 0
  with open(os.path.join(initial, 'index.csv')) as f:
    index = list(csv.DictReader(f))
  assert len(index) == 20 and all(os.path.exists(os.path.join(initial, r['image_file'])) for r in index)
  assert all(r['item_id'].startswith('fashion_mnist_idx/train/') for r in index)

  # 2. Answer with class names: round 0 trains and the next query goes out.
  names = splits.pool.class_names
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 0's query needs 20 labels from you"):
    experiment.run(config, workdir, _answer(initial, lambda r: names[true_label(r)], tmp_path / 'initial.csv'))
  round_0 = os.path.join(workdir, 'queries', 'round_0')
  before = snapshot(os.path.join(workdir, 'checkpoints'))

  # 3. A bad file is refused as a whole, every bad line named, and the session is untouched.
  def spoil(rows):
    rows[0][1] = '12'                          # Class out of range.
    rows[1][0] = 'fashion_mnist_idx/train/x'   # Unknown id.
    rows[3] = list(rows[2])                    # Duplicate (and so item 3 is missing).
    return rows

  bad = _answer(round_0, true_label, tmp_path / 'bad.csv', spoil)
  with pytest.raises(oracle_lib.LabelFileError) as refused:
    experiment.run(config, workdir, bad)
  message = str(refused.value)
  assert 'nothing was applied' in message
  assert 'line 2: there is no class number 12' in message
  assert "line 3: unknown item id 'fashion_mnist_idx/train/x'" in message
  assert 'line 5: item' in message and 'appears again' in message
  assert '2 items asked for have no row' in message
  assert snapshot(os.path.join(workdir, 'checkpoints')) == before

  # 4. The right file continues the session: round 1, then the last query, then the end.
  with pytest.raises(oracle_lib.LabelsRequested, match='Round 1'):
    experiment.run(config, workdir, _answer(round_0, true_label, tmp_path / 'round0.csv'))
  summary = experiment.run(config, workdir, _answer(os.path.join(workdir, 'queries', 'round_1'), true_label,
                                                    tmp_path / 'round1.csv'))
  (method,) = summary['methods']
  assert method['strategy'] == 'entropy' and len(method['aubc']) == 1
  rows = [r for r in compare_rows(workdir)]
  assert [r['num_labeled'] for r in rows] == [20, 40, 60]


def compare_rows(workdir):
  return sorted(report.read_rows(os.path.join(workdir, 'rounds.jsonl')), key=lambda r: r['round'])


def _image_folder(root, fashion_mnist, seeds_per_class=2, unlabeled=30, test_per_class=3):
  """A user's folder: labeled/<class>/, unlabeled/, test/<class>/ of real Fashion-MNIST PNGs (3 classes)."""
  pool = fashion_mnist.pool
  raw = np.clip(np.round((pool.images * fashion_mnist.std + fashion_mnist.mean) * 255), 0, 255).astype(np.uint8)
  names = ['shirt', 'sneaker', 'trouser']
  classes = {'shirt': 6, 'sneaker': 7, 'trouser': 1}
  used = 0
  for name in names:
    members = np.flatnonzero(pool.labels == classes[name])
    for split, count in (('labeled', seeds_per_class), ('test', test_per_class)):
      os.makedirs(root / split / name, exist_ok=True)
      for k, index in enumerate(members[used:used + count] if split == 'labeled' else
                                members[seeds_per_class:seeds_per_class + count]):
        Image.fromarray(raw[index, ..., 0]).save(root / split / name / f'{k}.png')
  os.makedirs(root / 'unlabeled', exist_ok=True)
  truth = {}
  members = np.flatnonzero(np.isin(pool.labels, list(classes.values())))[-unlabeled:]
  for k, index in enumerate(members):
    Image.fromarray(raw[index, ..., 0]).save(root / 'unlabeled' / f'u{k:03d}.png')
    truth[f'unlabeled/u{k:03d}.png'] = names[[classes[n] for n in names].index(int(pool.labels[index]))]
  return truth


def test_image_folder_is_a_pool_labelled_by_people(tmp_path, fashion_mnist):
  truth = _image_folder(tmp_path / 'images', fashion_mnist)
  splits = data.load_image_folder(str(tmp_path / 'images'))
  assert splits.pool.class_names == ('shirt', 'sneaker', 'trouser')
  assert len(splits.pool) == 6 + 30 and int(np.sum(splits.pool.labels >= 0)) == 6
  assert splits.pool.item_ids[0] == 'labeled/shirt/0.png' and len(splits.test) == 9
  _label_one_round(tmp_path, 'folder', tmp_path / 'images', truth)


def _label_one_round(tmp_path, name, data_dir, truth):
  """Round 0 of a human session on your own data: its query answered from `truth` (id -> class name), round 0
  recorded with the 6 seed labels and round 1's query written."""
  workdir = str(tmp_path / 'work')
  config = _human_config(**{'data.name': name, 'data.data_dir': str(data_dir), 'budget.per_round': 5,
                            'budget.total': 16})
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 0's query needs 5 labels from you"):
    experiment.run(config, workdir)
  query = os.path.join(workdir, 'queries', 'round_0')
  labels = _answer(query, lambda r: truth[r['item_id']], tmp_path / 'labels.csv')
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 1's query needs 5 labels from you"):
    experiment.run(config, workdir, labels)
  assert [r['num_labeled'] for r in compare_rows(workdir)] == [6]


def _array_folder(root, fashion_mnist, seeds_per_class=2, unlabeled=30, test_per_class=3):
  """A user's numpy files: labeled.npz seeds, pool.npy unlabelled, test.npz, classes.txt (3 Fashion-MNIST
  classes, raw uint8); returns each pool item's true class name by id."""
  pool = fashion_mnist.pool
  raw = np.clip(np.round((pool.images * fashion_mnist.std + fashion_mnist.mean) * 255), 0, 255).astype(np.uint8)
  names, classes = ('shirt', 'sneaker', 'trouser'), (6, 7, 1)
  members = [np.flatnonzero(pool.labels == c) for c in classes]
  seeds = np.concatenate([m[:seeds_per_class] for m in members])
  tests = np.concatenate([m[seeds_per_class:seeds_per_class + test_per_class] for m in members])
  unlabelled = np.flatnonzero(np.isin(pool.labels, classes))[-unlabeled:]
  as_class = lambda items: np.array([classes.index(int(c)) for c in pool.labels[items]])  # noqa: E731
  os.makedirs(root)
  np.savez(root / 'labeled.npz', images=raw[seeds], labels=as_class(seeds))
  np.savez(root / 'test.npz', images=raw[tests], labels=as_class(tests))
  np.save(root / 'pool.npy', raw[unlabelled])
  (root / 'classes.txt').write_text('\n'.join(names) + '\n')
  return {f'pool.npy/{k}': names[c] for k, c in enumerate(as_class(unlabelled))}


def test_an_array_folder_is_a_pool_labelled_by_people(tmp_path, fashion_mnist):
  truth = _array_folder(tmp_path / 'arrays', fashion_mnist)
  splits = data.load_arrays(str(tmp_path / 'arrays'))
  assert splits.pool.class_names == ('shirt', 'sneaker', 'trouser') and splits.pool.unknown_labels
  assert len(splits.pool) == 6 + 30 and int(np.sum(splits.pool.labels >= 0)) == 6 and len(splits.test) == 9
  assert splits.pool.item_ids[0] == 'labeled.npz/0' and splits.pool.item_ids[6] == 'pool.npy/0'
  assert isinstance(splits.pool.images, data.PoolView)  # The pool file is read a row at a time.
  _label_one_round(tmp_path, 'arrays', tmp_path / 'arrays', truth)


def test_an_array_folder_with_every_label_is_a_simulation(tmp_path, fashion_mnist):
  _array_folder(tmp_path / 'arrays', fashion_mnist)
  os.remove(tmp_path / 'arrays' / 'labeled.npz')
  truth = np.asarray(data.load_arrays(str(tmp_path / 'arrays')).pool.labels)
  assert (truth == -1).all()
  np.save(tmp_path / 'arrays' / 'pool_labels.npy', np.arange(30) % 3)
  splits = data.load_arrays(str(tmp_path / 'arrays'))
  assert not splits.pool.unknown_labels and splits.pool.labels.tolist() == (np.arange(30) % 3).tolist()
  config = smoke_config(**{'data.name': 'arrays', 'data.data_dir': str(tmp_path / 'arrays'), 'budget.initial': 6,
                          'budget.per_round': 6, 'budget.total': 12})
  experiment.run(config, str(tmp_path / 'work'))
  assert [r['num_labeled'] for r in compare_rows(str(tmp_path / 'work'))] == [6, 12]
  # The labels gathered, out as a file after every round: the 12 labelled items, their class and its name.
  [exported] = os.listdir(tmp_path / 'work' / 'labels')
  with open(tmp_path / 'work' / 'labels' / exported, encoding='utf-8') as f:
    labelled = list(csv.DictReader(f))
  assert len(labelled) == 12 and all(r['item_id'].startswith('pool.npy/') for r in labelled)
  names = ('shirt', 'sneaker', 'trouser')
  assert all(int(r['label']) == int(r['item_id'].split('/')[1]) % 3 and r['class_name'] == names[int(r['label'])]
             for r in labelled)


def test_a_folder_pool_cannot_be_simulated(tmp_path, fashion_mnist):
  _image_folder(tmp_path / 'images', fashion_mnist)
  config = _human_config(**{'data.name': 'folder', 'data.data_dir': str(tmp_path / 'images')})
  config.oracle = 'simulated'
  with pytest.raises(ValueError, match='only people can label'):
    experiment.run(config, str(tmp_path / 'work'))
  assert not os.path.exists(tmp_path / 'work')


@pytest.mark.parametrize('encoding, delimiter', [('utf-8-sig', ','), ('utf-16', '\t'), ('cp1252', ';')])
def test_label_files_as_spreadsheets_save_them(tmp_path, encoding, delimiter):
  """Excel's "CSV UTF-8" (a BOM), "Unicode text" (UTF-16, tabs) and a European "CSV" (Windows-1252, semicolons)."""
  classes = ('T-shirt', 'Café', 'Trouser')
  text = delimiter.join(['item_id', 'label']) + '\r\n' + '\r\n'.join(
      delimiter.join(row) for row in [['a', 'Café'], ['b', '2'], ['c', 'T-shirt']]) + '\r\n'
  path = tmp_path / 'labels.csv'
  path.write_bytes(text.encode(encoding))
  labels = oracle_lib.read_labels(str(path), ['c', 'a', 'b'], {'a', 'b', 'c', 'd'}, classes, 3)
  np.testing.assert_array_equal(labels, [0, 1, 2])


def test_labels_you_already_have_join_the_initial_set(tmp_path, fashion_mnist):
  truth = _array_folder(tmp_path / 'arrays', fashion_mnist)
  imported = tmp_path / 'mine.csv'
  imported.write_text('item_id,label\n' + ''.join(f'pool.npy/{k},{truth[f"pool.npy/{k}"]}\n' for k in range(4)))
  workdir = str(tmp_path / 'work')
  config = _human_config(**{'data.name': 'arrays', 'data.data_dir': str(tmp_path / 'arrays'),
                            'budget.per_round': 5, 'budget.total': 20, 'initial_labels': str(imported)})
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 0's query needs 5 labels from you"):
    experiment.run(config, workdir)
  query = os.path.join(workdir, 'queries', 'round_0')
  with open(os.path.join(query, 'index.csv')) as f:
    asked = [r['item_id'] for r in csv.DictReader(f)]
  assert not set(asked) & {f'pool.npy/{k}' for k in range(4)}  # Imported items are labelled, never asked.
  labels = _answer(query, lambda r: truth[r['item_id']], tmp_path / 'labels.csv')
  with pytest.raises(oracle_lib.LabelsRequested, match="Round 1's query"):
    experiment.run(config, workdir, labels)
  assert [r['num_labeled'] for r in compare_rows(workdir)] == [10]  # 6 seed labels + 4 imported.


def test_an_import_is_checked_whole_and_refused_with_every_bad_line(tmp_path, fashion_mnist):
  _array_folder(tmp_path / 'arrays', fashion_mnist)
  pool = data.load_arrays(str(tmp_path / 'arrays')).pool
  bad = tmp_path / 'bad.csv'
  bad.write_text('item_id,label\npool.npy/0,shirt\npool.npy/0,shirt\npool.npy/99,shirt\npool.npy/1,coat\n'
                 'labeled.npz/0,7\n')
  with pytest.raises(oracle_lib.LabelFileError) as error:
    oracle_lib.import_labels(pool, str(bad))
  message = str(error.value)
  for expected in ("line 3: item 'pool.npy/0' appears again", "line 4: unknown item id 'pool.npy/99'",
                   "line 5: 'coat' is not a class name", 'line 6: there is no class number 7', 'nothing was applied'):
    assert expected in message
  clash = tmp_path / 'clash.csv'
  seed_label = int(pool.labels[0])
  clash.write_text(f'item_id,label\nlabeled.npz/0,{(seed_label + 1) % 3}\n')
  with pytest.raises(oracle_lib.LabelFileError, match="'labeled.npz/0': labelled .* already"):
    oracle_lib.import_labels(pool, str(clash))
  simulated = data.Dataset(np.zeros((4, 2, 2, 1), np.float32), np.array([0, 1, 0, 1]), 2)
  with pytest.raises(oracle_lib.LabelFileError, match='comes with every label'):
    oracle_lib.import_labels(simulated, str(clash))
