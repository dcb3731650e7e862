"""Tests for jal.experiment: a comparison grid run from Python (no binary), interrupted and resumed."""

import json

import pytest
from workdirs import smoke_config

from jal import experiment, report


class Interrupted(Exception):
  pass


def _without_times(rows):
  key = lambda r: (r['policy'], r['strategy'], r['seed'], r['round'])  # noqa: E731
  return sorted(({k: v for k, v in r.items() if not k.startswith('time/')} for r in rows), key=key)


def test_a_two_seed_grid_from_python_resumes_after_an_interruption(tmp_path, fashion_mnist):
  del fashion_mnist
  config = smoke_config(strategies='entropy,random', seeds=(0, 1))
  straight = experiment.run(config, str(tmp_path / 'a'))
  assert {(m['strategy'], tuple(m['seeds'])) for m in straight['methods']} == {('entropy', (0, 1)),
                                                                                 ('random', (0, 1))}

  seen = []

  def stop_after_four_rounds(row):
    seen.append(row)
    if len(seen) == 4:  # Seed 0 of entropy complete, seed 1 one round in.
      raise Interrupted()

  with pytest.raises(Interrupted):
    experiment.run(config, str(tmp_path / 'b'), on_row=stop_after_four_rounds)
  assert len(report.read_rows(str(tmp_path / 'b' / 'rounds.jsonl'))) == 4
  resumed_rows = []
  resumed = experiment.run(config, str(tmp_path / 'b'), on_row=resumed_rows.append)
  # Only what was left ran: seed 1 of entropy from its second round, then random.
  assert [(r['strategy'], r['seed'], r['round']) for r in resumed_rows] == [
      ('entropy', 1, 1), ('entropy', 1, 2), ('random', 0, 0), ('random', 0, 1), ('random', 0, 2),
      ('random', 1, 0), ('random', 1, 1), ('random', 1, 2)]
  rows = report.read_rows(str(tmp_path / 'b' / 'rounds.jsonl'))
  assert _without_times(rows) == _without_times(report.read_rows(str(tmp_path / 'a' / 'rounds.jsonl')))
  assert json.dumps(resumed['methods']) == json.dumps(straight['methods'])


def test_config_lists_accept_tuples_and_flag_strings():
  assert experiment.names(('inas', 'fixed:A(1,2)')) == ('inas', 'fixed:A(1,2)')
  assert experiment.names('inas,fixed:A(1,2)') == ('inas', 'fixed:A(1,2)')
  assert experiment.names(('entropy,margin',)) == ('entropy', 'margin')
  assert experiment.names((0, 1)) == ('0', '1')
