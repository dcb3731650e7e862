"""Oracles: who answers the loop's label requests. The simulated oracle reveals a pool's known labels; the human
oracle writes the items a query picked as files for people and reads their answers back.

After a query `HumanOracle` writes `queries/round_<r>/`: `index.csv` (position, item id, image file),
one PNG per item, `contact_sheet.png` (every item, numbered) and `labels_template.csv` (item_id,label to fill
in), then raises `LabelsRequested`; the session's checkpoint keeps the query. Run again with `--labels=FILE.csv`:
the whole file is validated against the items asked for (unknown ids, ids not asked for, duplicates, classes out
of range, missing rows) before anything is applied; a bad file is refused with every bad line listed and the
session is left as it was.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import math
import os
import re
from typing import Protocol

import numpy as np

from jal.data import Dataset, Splits


class Oracle(Protocol):
  """Answers label requests: `label(indices [b] int, round_index) -> [b] int class indices`.

  A human oracle may instead raise `LabelsRequested` after writing the items to label; the loop's checkpoint keeps
  the query, and the next run with the answers continues from it.
  """

  def label(self, indices: np.ndarray, round_index: int) -> np.ndarray:
    ...


@dataclasses.dataclass(frozen=True, eq=False)
class SimulatedOracle:
  """Reveals the known labels of a pool (the standard simulated active-learning protocol)."""

  labels: np.ndarray

  def label(self, indices: np.ndarray, round_index: int = 0) -> np.ndarray:
    del round_index
    labels = np.asarray(self.labels)[np.asarray(indices)]
    if np.any(labels < 0):
      raise ValueError('The pool has no known labels for some queried items (an unlabelled image folder): '
                       'only a human oracle can label them (jal.oracle.HumanOracle, --config.oracle=human).')
    return labels


class LabelsRequested(Exception):
  """A query is waiting for people to label it; the message says what to do."""

  def __init__(self, directory: str, round_index: int, count: int, template: str | None = None,
               filled: int = 0):
    self.directory, self.round_index, self.count = directory, round_index, count
    template = template or os.path.join(directory, 'labels_template.csv')
    kept = ''
    if filled:
      kept = (f' Your labels_template.csv there already has {filled} labels filled in and was left as it is: '
              f'finish it and pass it with --labels={os.path.join(directory, "labels_template.csv")}.')
    what = 'The initial set' if round_index < 0 else f"Round {round_index}'s query"
    super().__init__(
        f'{what} needs {count} labels from you. The images are listed in {directory}/index.csv (one PNG each; all '
        f'of them, numbered, on {directory}/contact_sheet.png). Write each one\'s class (its name or number) in the '
        f'label column of {template}, then run the same command again with --labels=<that file>.{kept}')


class LabelFileError(ValueError):
  """A labels CSV that cannot be applied; lists every bad line. Nothing was imported."""


def raw_images(splits: Splits, indices: np.ndarray) -> np.ndarray:
  """[b, H, W, C] uint8 pool images, un-normalised for viewing."""
  images = splits.pool.images[np.asarray(indices)] * splits.std + splits.mean
  return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def _safe(item_id: str) -> str:
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', item_id)[-80:]


def _to_pil(image: np.ndarray):
  from PIL import Image

  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def contact_sheet(images: np.ndarray, path: str, columns: int = 10, scale: int = 3) -> None:
  """All images on one PNG, numbered from 0 in reading order."""
  from PIL import Image, ImageDraw

  n, h, w, _ = images.shape
  cell_h, cell_w = h * scale + 14, w * scale + 4
  rows = math.ceil(n / columns)
  sheet = Image.new('RGB', (columns * cell_w, rows * cell_h), 'white')
  draw = ImageDraw.Draw(sheet)
  for i, image in enumerate(images):
    x, y = (i % columns) * cell_w, (i // columns) * cell_h
    sheet.paste(_to_pil(image).convert('RGB').resize((w * scale, h * scale)), (x + 2, y + 12))
    draw.text((x + 2, y), str(i), fill='black')
  sheet.save(path)


def _write_text(path: str, text: str) -> None:
  """Atomically: a temporary file renamed over `path`, so nobody ever opens half a file."""
  with open(path + '.tmp', 'w', encoding='utf-8', newline='') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def _csv_text(rows) -> str:
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator='\n').writerows(rows)
  return buffer.getvalue()


def template_has_answers(path: str) -> int:
  """How many rows of a labels template someone has filled in (0 if absent or unreadable)."""
  try:
    rows = _read_rows(path)
  except (OSError, LabelFileError):
    return 0
  return sum(1 for row in rows[1:] if len(row) > 1 and row[1].strip())


def write_query(directory: str, splits: Splits, indices: np.ndarray) -> str:
  """Writes index.csv, one PNG per item, contact_sheet.png, classes.txt and labels_template.csv for `indices`.

  A labels template someone has started to fill in is never overwritten: it is left as it is, and the empty one
  is written beside it as labels_template.new.csv.

  Returns:
    The path of the template to fill in.
  """
  os.makedirs(directory, exist_ok=True)
  ids = splits.pool.item_ids
  images = raw_images(splits, indices)
  classes = splits.pool.class_names or tuple(str(c) for c in range(splits.pool.num_classes))
  index_rows = [['position', 'item_id', 'pool_index', 'image_file']]
  for position, (index, image) in enumerate(zip(indices, images)):
    name = f'{position:04d}_{_safe(ids[index])}.png'
    _to_pil(image).save(os.path.join(directory, name))
    index_rows.append([position, ids[index], int(index), name])
  _write_text(os.path.join(directory, 'index.csv'), _csv_text(index_rows))
  _write_text(os.path.join(directory, 'classes.txt'), ''.join(f'{i}\t{name}\n' for i, name in enumerate(classes)))
  template = os.path.join(directory, 'labels_template.csv')
  text = _csv_text([['item_id', 'label'], *([ids[index], ''] for index in indices)])
  if template_has_answers(template):
    template = os.path.join(directory, 'labels_template.new.csv')
  _write_text(template, text)
  contact_sheet(images, os.path.join(directory, 'contact_sheet.png'))
  return template


def _decode(raw: bytes, path: str) -> str:
  """The text of a labels file as spreadsheets save it: UTF-8 (with or without BOM), UTF-16 (Excel's "Unicode
  text"), or, failing those, Windows-1252."""
  if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
    return raw.decode('utf-16')
  try:
    return raw.decode('utf-8-sig')
  except UnicodeDecodeError:
    pass
  try:
    return raw.decode('cp1252')
  except UnicodeDecodeError as error:
    raise LabelFileError(f'{path} is neither UTF-8, UTF-16 nor Windows-1252 text ({error}); save it from your '
                         'spreadsheet as "CSV UTF-8".') from error


def _read_rows(path: str) -> list[list[str]]:
  """The rows of a CSV (or semicolon- or tab-separated) labels file, whatever its encoding."""
  with open(path, 'rb') as f:
    text = _decode(f.read(), path)
  first = text.split('\n', 1)[0]
  delimiter = ','
  if ',' not in first:
    delimiter = ';' if ';' in first else ('\t' if '\t' in first else ',')
  return list(csv.reader(io.StringIO(text, newline=''), delimiter=delimiter))


def _parse_labels(path: str, asked: set[str] | None, all_ids: set[str], class_names: tuple[str, ...] | None,
                  num_classes: int, what: str) -> tuple[dict[str, int], set[str], list[str]]:
  """item_id -> class index for every good row of a CSV of item_id,label (a class name or index), the ids that
  have a row at all, and the list of bad lines (unknown ids, ids not in `asked` when given, duplicates, labels
  that are not a class)."""
  if not os.path.isfile(path):
    raise LabelFileError(f'Labels file {path!r} does not exist.')
  names = {name: i for i, name in enumerate(class_names or ())}
  problems, answers, seen = [], {}, set()
  rows = _read_rows(path)
  header = rows[0] if rows else None
  if header is None or [h.strip().lower() for h in header[:2]] != ['item_id', 'label']:
    raise LabelFileError(f'{path}: the first line must be the header "item_id,label", got {header!r}.')
  for line_number, row in enumerate(rows[1:], start=2):
    if not row or all(not cell.strip() for cell in row):
      continue
    if len(row) < 2:
      problems.append(f'line {line_number}: expected "item_id,label", got {row!r}')
      continue
    item, value = row[0].strip(), row[1].strip()
    if item not in all_ids:
      problems.append(f'line {line_number}: unknown item id {item!r}')
      continue
    if asked is not None and item not in asked:
      problems.append(f'line {line_number}: item {item!r} was not asked for in {what}')
      continue
    if item in seen:
      problems.append(f'line {line_number}: item {item!r} appears again')
      continue
    seen.add(item)
    if value in names:
      label = names[value]
    elif re.fullmatch(r'-?\d+', value):
      label = int(value)
      if not 0 <= label < num_classes:
        problems.append(f'line {line_number}: there is no class number {label}; use 0 to {num_classes - 1} or a class '
                        'name')
        continue
    else:
      problems.append(f'line {line_number}: {value!r} is not a class name ({", ".join(names) or "none"}) nor a '
                      f'class number from 0 to {num_classes - 1}')
      continue
    answers[item] = label
  return answers, seen, problems


def _refuse(path: str, problems: list[str]) -> None:
  if problems:
    raise LabelFileError(f'{path} was not imported (nothing was applied); fix these and run again:\n  ' +
                         '\n  '.join(problems))


def read_labels(path: str, asked_ids: list[str], all_ids: set[str], class_names: tuple[str, ...] | None,
                num_classes: int) -> np.ndarray:
  """[b] class indices for `asked_ids`, in their order, from a CSV of item_id,label (a class name or index).

  Raises:
    LabelFileError: listing every bad line (unknown ids, ids not asked for, duplicates, labels that are not a
      class, missing rows) when anything is wrong; nothing is returned then.
  """
  answers, seen, problems = _parse_labels(path, set(asked_ids), all_ids, class_names, num_classes, 'this round')
  missing = [item for item in asked_ids if item not in seen]
  if missing:
    problems.append(f'{len(missing)} items asked for have no row: ' + ', '.join(missing[:20]) +
                    (' ...' if len(missing) > 20 else ''))
  _refuse(path, problems)
  return np.array([answers[item] for item in asked_ids], np.int32)


def import_labels(pool: Dataset, path: str) -> Dataset:
  """`pool` with the labels of a CSV of item_id,label (labels a person already has, in bulk) added to its known
  ones: they join the initial labelled set. The same checks as a round's answers (every bad line listed, nothing
  applied), and a row that contradicts a label the pool already holds is refused.

  Raises:
    LabelFileError: on any bad line, or for a pool whose labels are all known (a simulation has nothing to import).
  """
  if not pool.unknown_labels:
    raise LabelFileError(f'--config.initial_labels={path}: this pool comes with every label (a simulation); labels '
                         'are imported into a pool people label (--config.data.name=folder or arrays with unknown '
                         'labels).')
  ids = pool.item_ids
  answers, _, problems = _parse_labels(path, None, set(ids), pool.class_names, pool.num_classes, 'the pool')
  index = {item: i for i, item in enumerate(ids)}
  labels = np.array(pool.labels, np.int32)
  for item, label in answers.items():
    known = int(labels[index[item]])
    if known >= 0 and known != label:
      problems.append(f'item {item!r}: labelled {label} here but {known} already (your seed labels)')
  if not answers and not problems:
    problems.append('no rows: the file holds only its header')
  _refuse(path, problems)
  for item, label in answers.items():
    labels[index[item]] = label
  return dataclasses.replace(pool, labels=labels)


def _round_of(directory: str) -> str:
  name = os.path.basename(directory)
  return 'the initial set' if name == 'initial' else f'round {name[len("round_"):]}'


@dataclasses.dataclass
class HumanOracle:
  """Asks people: writes each query under `query_root/round_<r>/` and raises `LabelsRequested`, or, given a
  labels file for the pending query, imports it (once; the next query is written out again).

  A file that answers an earlier query (already applied) is refused with the round it answers and the round that
  is waiting; `imported` records what the last import answered.
  """

  splits: Splits
  query_root: str
  labels_file: str | None = None
  imported: str | None = None

  def _directory(self, round_index: int) -> str:
    return os.path.join(self.query_root, f'round_{round_index}' if round_index >= 0 else 'initial')

  def _answered_round(self, asked_ids: list[str]) -> str | None:
    """The earlier query directory whose items the labels file names, if it is not the pending one."""
    try:
      rows = _read_rows(self.labels_file)
    except (OSError, LabelFileError):
      return None
    named = {row[0].strip() for row in rows[1:] if row and row[0].strip()}
    if not named or named & set(asked_ids):
      return None
    for entry in sorted(os.listdir(self.query_root)) if os.path.isdir(self.query_root) else []:
      index = os.path.join(self.query_root, entry, 'index.csv')
      if os.path.isfile(index):
        with open(index, encoding='utf-8', newline='') as f:
          ids = {row['item_id'] for row in csv.DictReader(f)}
        if named <= ids:
          return os.path.join(self.query_root, entry)
    return None

  def label(self, indices: np.ndarray, round_index: int) -> np.ndarray:
    indices = np.asarray(indices)
    pool = self.splits.pool
    ids = pool.item_ids
    directory = self._directory(round_index)
    asked = [ids[i] for i in indices]
    if self.labels_file is not None:
      earlier = self._answered_round(asked)
      if earlier is not None:
        raise LabelFileError(
            f'{self.labels_file} answers {_round_of(earlier)} ({earlier}), whose labels were already applied; '
            f'{_round_of(directory)} is waiting: label the items of {directory}/index.csv and pass that file '
            'with --labels. Nothing was imported.')
      labels = read_labels(self.labels_file, asked, set(ids), pool.class_names, pool.num_classes)
      self.imported = f'{len(labels)} labels for {_round_of(directory)} from {self.labels_file}'
      self.labels_file = None  # Consumed: the next round's query goes out to people again.
      return labels
    filled = template_has_answers(os.path.join(directory, 'labels_template.csv'))
    template = write_query(directory, self.splits, indices)
    raise LabelsRequested(directory, round_index, len(indices), template, filled)
