"""Tests for jal.inas: Algorithm 1 with stubbed scorers, the policy over rounds, and the test split untouched."""

import jax
import numpy as np
import pytest

from jal import data, inas, loop
from jal.models import ModelConfig, model_fn
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig

A = Architecture


class TableScorer:
  """Validation error from a table (default 0.5); records every call."""

  def __init__(self, errors):
    self.errors = {A(*k): v for k, v in errors.items()}
    self.calls = []

  def __call__(self, arch, train_mask, validation_mask, rng):
    self.calls.append((arch, train_mask.copy(), validation_mask.copy()))
    return self.errors.get(arch, 0.5)


MASK = np.arange(100) < 50


def test_picks_the_lowest_validation_error():
  scorer = TableScorer({(1, 1): 0.4, (2, 1): 0.3, (1, 2): 0.2})
  result = inas.inas(MASK, A(1, 1), inas.INASConfig(), scorer, jax.random.key(0))
  assert result.arch == A(1, 2)
  assert result.steps == ({'A(1,1)': 0.4, 'A(2,1)': 0.3, 'A(1,2)': 0.2},)
  assert [c[0] for c in scorer.calls] == [A(1, 1), A(2, 1), A(1, 2)]


def test_ties_go_to_the_current_architecture():
  scorer = TableScorer({(1, 1): 0.2, (2, 1): 0.2, (1, 2): 0.2})
  assert inas.inas(MASK, A(1, 1), inas.INASConfig(max_steps=5), scorer, jax.random.key(0)).arch == A(1, 1)
  assert len(scorer.calls) == 3  # Stopped after the first step.


def test_walks_up_to_max_steps_and_stops_when_current_wins():
  # Errors fall along A(1,1) -> A(1,2) -> A(2,2), then A(2,2) wins.
  scorer = TableScorer({(1, 1): 0.9, (1, 2): 0.5, (2, 2): 0.3, (2, 1): 0.8, (1, 3): 0.6, (3, 2): 0.4,
                        (2, 3): 0.35})
  result = inas.inas(MASK, A(1, 1), inas.INASConfig(max_steps=10), scorer, jax.random.key(0))
  assert result.arch == A(2, 2) and len(result.steps) == 3
  limited = inas.inas(MASK, A(1, 1), inas.INASConfig(max_steps=1), TableScorer({
      (1, 1): 0.9, (1, 2): 0.5, (2, 1): 0.8}), jax.random.key(0))
  assert limited.arch == A(1, 2) and len(limited.steps) == 1


def test_respects_the_grid():
  scorer = TableScorer({(2, 2): 0.9})  # Everything else 0.5, but A(3,2) and A(2,3) are outside 2 x 2.
  config = inas.INASConfig(max_steps=3, space=SearchSpace(2, 2))
  assert inas.inas(MASK, A(2, 2), config, scorer, jax.random.key(0)).arch == A(2, 2)
  assert [c[0] for c in scorer.calls] == [A(2, 2)]
  with pytest.raises(ValueError, match='outside the search space'):
    inas.inas(MASK, A(3, 1), config, scorer, jax.random.key(0))


def test_split_is_80_20_disjoint_within_the_labelled_set_and_seeded():
  scorer = TableScorer({})
  inas.inas(MASK, A(1, 1), inas.INASConfig(), scorer, jax.random.key(3))
  _, train_mask, validation_mask = scorer.calls[0]
  assert train_mask.sum() == 40 and validation_mask.sum() == 10
  assert not (train_mask & validation_mask).any()
  assert ((train_mask | validation_mask) == MASK).all()
  # Every candidate of a call sees the same split; the same key gives the same split.
  assert all((c[2] == validation_mask).all() for c in scorer.calls)
  again = TableScorer({})
  inas.inas(MASK, A(1, 1), inas.INASConfig(), again, jax.random.key(3))
  assert (again.calls[0][2] == validation_mask).all()


@pytest.mark.parametrize('kwargs', [{'max_steps': 0}, {'validation_fraction': 1.0}, {'score': 'mean'},
                                    {'schedule': 'cosine'}, {'num_seeds': 0}])
def test_bad_config_is_rejected(kwargs):
  with pytest.raises(ValueError):
    inas.INASConfig(**kwargs)


def _tiny_splits(test_images=None):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(120, 8, 8, 1)).astype(np.float32)
  labels = (images[:, 2:6, 2:6, 0].mean(axis=(1, 2)) > 0).astype(np.int32)
  test = images[90:] if test_images is None else test_images
  return data.make_splits(data.from_arrays(images[:90], labels[:90]), data.from_arrays(test, labels[90:]))


def _loop_config():
  return loop.LoopConfig(loop.BudgetSchedule(20, 10, 40), TrainConfig(epochs=4, examples_per_epoch=32,
                                                                      batch_size=16), ModelConfig(width=4))


def test_policy_never_shrinks_and_carries_the_architecture_over(monkeypatch):
  # A scorer that always prefers the wider candidate, so each round grows.
  class PreferWider(TableScorer):
    def __call__(self, arch, train_mask, validation_mask, rng):
      super().__call__(arch, train_mask, validation_mask, rng)
      return 1.0 / (1 + arch.stacks)

  scorer = PreferWider({})
  policy = inas.inas_policy(inas.INASConfig())
  monkeypatch.setattr(inas, 'train_scorer', lambda *args, **kwargs: scorer)
  # The scorer is fake, so the round models need not be the chosen ones: one small network stands in for every
  # architecture (one compile instead of three), and the loop still carries the chosen architecture over.
  one_network = lambda arch: model_fn(2, ModelConfig(width=4))(A(1, 1))  # noqa: E731
  state = loop.run(_tiny_splits(), _loop_config(), 'entropy', policy, seed=0, model_fn=one_network)
  archs = [Architecture(r['arch/blocks'], r['arch/stacks']) for r in state.history]
  assert archs == [A(1, 2), A(1, 3), A(1, 4)]
  assert all(b.depth >= a.depth for a, b in zip(archs, archs[1:]))
  # Each round's search started from the previous round's choice.
  starts = [call[0] for call in scorer.calls[::3]]
  assert starts == [A(1, 1), A(1, 2), A(1, 3)]
  assert state.history[0]['nas/step0/A(1,2)'] == pytest.approx(1 / 3)


def test_end_to_end_active_inas_two_rounds_never_reads_the_test_split():
  """Real training. The choices are identical when the test images are replaced by noise: no choice reads them."""
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 30), TrainConfig(epochs=4, examples_per_epoch=32,
                                                                        batch_size=16), ModelConfig(width=4))
  policy = inas.inas_policy(inas.INASConfig(num_seeds=2))
  clean = loop.run(_tiny_splits(), config, 'least_confidence', policy, seed=0)
  noise = np.random.default_rng(9).normal(size=(30, 8, 8, 1)).astype(np.float32) * 100
  noisy = loop.run(_tiny_splits(noise), config, 'least_confidence', policy, seed=0)
  assert len(clean.history) == 2
  for a, b in zip(clean.history, noisy.history):
    assert a['arch'] == b['arch']
    assert {k: v for k, v in a.items() if k.startswith('nas/') and not k.endswith('seconds')} == {
        k: v for k, v in b.items() if k.startswith('nas/') and not k.endswith('seconds')}
  np.testing.assert_array_equal(clean.labeled_mask, noisy.labeled_mask)
  assert any(k.startswith('nas/step0/') for k in clean.history[0])
  assert clean.history[0]['time/nas'] > 0


class _FakeResult:
  """Two seeds whose validation accuracy peaks before the end: best 0.9 / 0.7, final 0.6 / 0.5."""

  def best_val_accuracy(self):
    return [0.9, 0.7]

  def final_val_accuracy(self):
    return [0.6, 0.5]


@pytest.mark.parametrize('schedule, score, epochs, fraction, error', [
    ('truncated', 'best', 20, 0.25, 0.2),     # The paper: the first quarter of the 20-epoch schedule.
    ('truncated', 'final', 20, 0.25, 0.45),
    ('compressed', 'best', 5, 1.0, 0.2),      # A whole schedule (decays included) in a quarter of the epochs.
    ('compressed', 'final', 5, 1.0, 0.45),
])
def test_the_scorer_trains_on_s_prime_and_scores_on_v_prime(monkeypatch, schedule, score, epochs, fraction, error):
  splits = _tiny_splits()
  pool = splits.pool
  labels = np.where(np.arange(len(pool)) < 40, pool.labels, -1).astype(np.int32)
  calls = []

  def fake_train(model, config, images, train_labels, rngs, mask, validation, schedule_fraction):
    calls.append(dict(config=config, images=images, labels=train_labels, seeds=len(rngs), mask=mask,
                      validation=validation, schedule_fraction=schedule_fraction))
    return _FakeResult()

  monkeypatch.setattr(inas, 'train', fake_train)
  config = inas.INASConfig(candidate_fraction=0.25, num_seeds=2, schedule=schedule, score=score)
  train_config = TrainConfig(epochs=20, examples_per_epoch=32, batch_size=16)
  scorer = inas.train_scorer(pool, labels, train_config, config, lambda arch: ('model of', arch))
  s_prime, v_prime = np.arange(len(pool)) < 30, (np.arange(len(pool)) >= 30) & (np.arange(len(pool)) < 40)
  evaluation = scorer(A(1, 2), s_prime, v_prime, jax.random.key(0))
  assert evaluation.error == pytest.approx(error)
  assert evaluation.steps == 2 * int(round(fraction * epochs * 2))  # Two seeds, 2 steps per epoch.
  (call,) = calls
  assert call['config'].epochs == epochs and call['schedule_fraction'] == fraction and call['seeds'] == 2
  assert call['config'].eval_every == 1  # Scored every epoch, so 'best' sees them all.
  np.testing.assert_array_equal(call['mask'], s_prime)
  np.testing.assert_array_equal(call['validation'][0], pool.images[v_prime])
  np.testing.assert_array_equal(call['validation'][1], pool.labels[v_prime])


def test_ties_between_expansions_of_equal_depth_go_to_fewer_stacks_whatever_the_listing_order():
  current = A(1, 1)
  assert A(2, 1).depth == A(1, 2).depth
  for order in ([A(1, 2), A(2, 1)], [A(2, 1), A(1, 2)]):
    assert min(order, key=lambda arch: inas.tie_break_key(arch, 0.3, current)) == A(2, 1)
  assert min([A(1, 2), A(1, 1)], key=lambda arch: inas.tie_break_key(arch, 0.3, current)) == A(1, 1)
