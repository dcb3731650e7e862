"""Tests for jal.nas (grid, random search, regularised evolution), iNAS with inheritance, and the Pareto choice:
every policy chooses within its grid, keeps to its budget and never reads the test split."""

import jax
import numpy as np
import pytest
from test_inas import _loop_config, _tiny_splits

from jal import data, inas, inherit, loop, nas
from jal.models import ModelConfig, build_model
from jal.search_space import Architecture, SearchSpace
from jal.train import TrainConfig

A = Architecture
SPACE = SearchSpace(2, 2)
# Errors that favour small networks: the round models the loop trains (and compiles) stay small.
SMALL_IS_BEST = lambda arch: 0.1 * (arch.blocks + arch.stacks) + 0.01 * arch.stacks  # noqa: E731


class Recorder:
  """A scorer whose error is a function of the architecture; records (arch, V' mask, parent) per call."""

  def __init__(self, error=lambda arch: 1.0 / (arch.blocks + 2 * arch.stacks)):
    self.error, self.calls = error, []

  def __call__(self, arch, train_mask, validation_mask, rng, parent=None):
    self.calls.append((arch, validation_mask.copy(), parent))
    return inas.Evaluation(self.error(arch), params=arch.num_params(2, 1, 4), steps=7,
                           variables={'trained': str(arch)})


def _run(policy, recorder, monkeypatch, rounds_config=None):
  parents = []

  def fake_train_scorer(pool, labels, train_config, config, model_fn, parent=None, keep_variables=False):
    parents.append(parent)
    return recorder

  monkeypatch.setattr(inas, 'train_scorer', fake_train_scorer)
  state = loop.run(_tiny_splits(), rounds_config or _loop_config(), 'entropy', policy, seed=0)
  return state, parents


@pytest.mark.parametrize('make, budget', [
    (lambda c: nas.grid_policy(c), 4),
    (lambda c: nas.random_policy(c, num_candidates=2), 2),
    (lambda c: nas.evolution_policy(c, population_size=2, cycles=3, sample_size=2), 5),
    (lambda c: inas.inas_policy(c), 3),
])
def test_every_policy_chooses_within_its_grid_and_keeps_to_its_budget(monkeypatch, make, budget):
  recorder = Recorder(SMALL_IS_BEST)
  state, _ = _run(make(inas.INASConfig(space=SPACE)), recorder, monkeypatch)
  assert all(arch in SPACE for arch, _, _ in recorder.calls)
  for record in state.history:
    assert record['nas/candidates'] <= budget and record['nas/candidate_steps'] == 7 * record['nas/candidates']
    evaluated = {k[len('nas/step0/'):]: v for k, v in record.items() if k.startswith('nas/step0/')}
    assert record['arch'] in evaluated or record['arch'] == str(SPACE.root)
    assert record['time/candidates'] >= 0
  # Every call of a round sees the same V', of a fifth of L.
  first = [c for c in recorder.calls[:state.history[0]['nas/candidates']]]
  assert all((c[1] == first[0][1]).all() for c in first) and first[0][1].sum() == 4


def test_grid_search_evaluates_every_architecture_and_keeps_the_best(monkeypatch):
  recorder = Recorder(lambda arch: {A(2, 1): 0.1}.get(arch, 0.5))
  state, _ = _run(nas.grid_policy(inas.INASConfig(space=SPACE)), recorder, monkeypatch)
  assert sorted(str(a) for a, _, _ in recorder.calls[:4]) == sorted(str(a) for a in SPACE.nodes())
  assert [r['arch'] for r in state.history] == ['A(2,1)'] * 3


def test_random_search_draws_distinct_architectures_by_the_key(monkeypatch):
  recorder = Recorder(SMALL_IS_BEST)
  _run(nas.random_policy(inas.INASConfig(space=SPACE), num_candidates=3), recorder, monkeypatch)
  for start in range(0, len(recorder.calls), 3):
    assert len({a for a, _, _ in recorder.calls[start:start + 3]}) == 3
  with pytest.raises(ValueError, match='num_candidates'):
    nas.random_policy(inas.INASConfig(space=SPACE), num_candidates=5)


def test_evolution_mutates_the_tournament_winner_and_children_inherit_from_their_parents(monkeypatch):
  recorder = Recorder(SMALL_IS_BEST)
  config = inas.INASConfig(space=SearchSpace(3, 3), inherit='round_model')
  state, _ = _run(nas.evolution_policy(config, population_size=2, cycles=4, sample_size=2), recorder, monkeypatch)
  children = [(arch, parent) for arch, _, parent in recorder.calls if parent is not None]
  assert children  # Lamarckian: a child starts from its trained parent's weights.
  for arch, (parent_arch, variables) in children:
    assert arch in SearchSpace(3, 3).mutations(parent_arch) and variables == {'trained': str(parent_arch)}
  assert all(r['nas/candidates'] <= 6 for r in state.history)


def test_inherited_candidates_start_from_the_previous_model_and_validate_on_items_it_never_saw(monkeypatch):
  recorder = Recorder()
  state, parents = _run(inas.inas_policy(inas.INASConfig(space=SPACE, inherit='round_model')), recorder, monkeypatch)
  assert parents[0] is None  # Round 0 has no previous model.
  assert parents[1][0] == A(*map(int, state.history[0]['arch'][2:-1].split(',')))
  # From round 1 on, V' holds only items labelled by the last query (10 per round here).
  calls_round1 = recorder.calls[state.history[0]['nas/candidates']:]
  _, validation_mask, _ = calls_round1[0]
  assert state.history[1]['nas/validation_size'] == validation_mask.sum() == 6  # 20% of 30 labels.
  first_labels = loop.initial_state(90, _loop_config().schedule,
                                    loop.SimulatedOracle(_tiny_splits().pool.labels), 0).labeled_mask
  assert not (validation_mask & first_labels).any()


@pytest.mark.parametrize('make', [  # Random search and the grid split and keep as evolution does.
    lambda c: inas.inas_policy(c),
    lambda c: nas.evolution_policy(c, population_size=2, cycles=2, sample_size=2),
])
def test_lineage_candidates_inherit_the_last_choice_and_validate_on_a_persistent_random_share(monkeypatch, make):
  """inherit='lineage': round r's candidates start from round r-1's chosen candidate (kept by the loop);
  V' keeps its items and takes a fifth of each round's new labels, so the lineage never trains on V'."""
  recorder = Recorder(SMALL_IS_BEST)
  config = inas.INASConfig(space=SPACE, inherit='lineage')
  state, parents = _run(make(config), recorder, monkeypatch)
  assert parents[0] is None  # Round 0: from scratch.
  assert state.kept is not None and str(state.kept.arch) == state.history[-1]['nas/chosen']
  rounds, start = [], 0
  for record in state.history:
    calls = recorder.calls[start:start + record['nas/candidates']]
    start += record['nas/candidates']
    rounds.append(calls)
  labeled = loop.initial_state(90, _loop_config().schedule, loop.SimulatedOracle(_tiny_splits().pool.labels),
                               0).labeled_mask
  for r, calls in enumerate(rounds):
    validation = calls[0][1]
    assert all((c[1] == validation).all() for c in calls)
    assert validation.sum() == state.history[r]['nas/validation_size'] == [4, 6, 8][r]  # 20% of 20, 30, 40.
    if r:
      previous = rounds[r - 1][0][1]
      assert (validation & previous).sum() == previous.sum()  # V' persists ...
      new = validation & ~previous
      assert new.sum() == 2 and not (new & labeled).any()  # ... and grows by new labels only.
      chosen = Architecture(*map(int, state.history[r - 1]['nas/chosen'][2:-1].split(',')))
      inherited = [parent for _, _, parent in calls if parent is None]  # Evolution's children override it.
      assert parents[r] == (chosen, {'trained': str(chosen)}) or not inherited
    labeled = labeled | validation
  assert (state.kept.validation_mask == rounds[-1][0][1]).all()
  assert not (state.kept.train_mask & state.kept.validation_mask).any()


def test_lineage_split_keeps_v_prime_and_adds_a_share_of_the_new_labels():
  labeled = np.arange(100) < 60
  kept = inherit.KeptModel(None, np.arange(100) < 40, (np.arange(100) >= 40) & (np.arange(100) < 50))
  train_mask, validation_mask = inas.lineage_split(labeled, kept, 0.2, jax.random.key(0))
  assert validation_mask[40:50].all() and validation_mask[50:60].sum() == 2 and not validation_mask[:40].any()
  assert (train_mask == (labeled & ~validation_mask)).all()
  other, _ = inas.lineage_split(labeled, kept, 0.2, jax.random.key(1))
  assert (other[:50] == train_mask[:50]).all()  # Only the new items' draw depends on the key.
  empty = inherit.KeptModel(None, labeled, np.zeros(100, bool))  # Nothing held out yet: V' gets at least one item.
  assert inas.lineage_split(labeled | (np.arange(100) == 70), empty, 0.2, jax.random.key(0))[1].sum() == 1


def test_pareto_choice_takes_the_smallest_within_one_standard_error():
  current = A(1, 1)
  evaluations = {A(1, 1): inas.Evaluation(0.30, params=100), A(2, 1): inas.Evaluation(0.26, params=200),
                 A(1, 2): inas.Evaluation(0.25, params=300)}
  config = inas.INASConfig(choose='pareto')
  # SE at 0.25 with 100 items: 0.043: A(1,1) (0.30) is outside, A(2,1) (0.26) inside and smaller than A(1,2).
  assert inas.choose(evaluations, current, config, num_validation=100) == A(2, 1)
  assert inas.choose(evaluations, current, config, num_validation=10) == A(1, 1)  # SE 0.137: all inside.
  assert inas.choose(evaluations, current, inas.INASConfig(), num_validation=100) == A(1, 2)
  with pytest.raises(ValueError, match='parameter count'):
    inas.choose({A(1, 1): inas.Evaluation(0.3)}, current, config, 10)


def test_unseen_items_form_v_prime_first():
  labeled = np.arange(100) < 50
  unseen = (np.arange(100) >= 45) & labeled
  train_mask, validation_mask = inas.split_labeled(labeled, 0.2, jax.random.key(0), unseen)
  assert validation_mask.sum() == 5 and (validation_mask == unseen).all()
  assert (train_mask == (labeled & ~unseen)).all()
  many = (np.arange(100) >= 20) & labeled  # More unseen items than V' needs: V' is 10 of them.
  _, validation_mask = inas.split_labeled(labeled, 0.2, jax.random.key(0), many)
  assert validation_mask.sum() == 10 and not (validation_mask & ~many).any()


def test_mutations_stay_in_the_grid_and_invert():
  assert set(SPACE.mutations(A(1, 1))) == {A(2, 1), A(1, 2)}
  assert set(SPACE.mutations(A(2, 2))) == {A(1, 2)}  # A(3,2), A(2,3) and narrower A(3,1) lie outside 2 x 2.
  for arch in (A(1, 2), A(2, 3), A(2, 4), A(3, 2)):
    assert arch.narrower().wider() == arch and arch.narrower().depth < arch.depth
    assert arch.deeper().shallower() == arch


def test_real_inherited_evolution_never_reads_the_test_split():
  """Real training with inherited weights (evolution's Lamarckian children; iNAS's inheritance runs in the
  compare_nas smoke test). The choices are identical when the test images are noise."""
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 30), _loop_config().train, _loop_config().model,
                           warm_start=True)
  policy = nas.evolution_policy(inas.INASConfig(space=SPACE, inherit='round_model', inherited_fraction=0.125),
                                population_size=2, cycles=2, sample_size=2)
  clean = loop.run(_tiny_splits(), config, 'least_confidence', policy, seed=0)
  noise = np.random.default_rng(9).normal(size=(30, 8, 8, 1)).astype(np.float32) * 100
  noisy = loop.run(_tiny_splits(noise), config, 'least_confidence', policy, seed=0)
  for a, b in zip(clean.history, noisy.history):
    assert {k: v for k, v in a.items() if k.startswith('nas/') and not k.endswith('seconds')} == {
        k: v for k, v in b.items() if k.startswith('nas/') and not k.endswith('seconds')}
  # Inherited candidates train for 1/8 of the 8 steps (1 step), from scratch for 1/4 (2 steps): round 0 has no
  # previous model (evolution's children inherit from their parents even then), round 1 inherits throughout.
  assert clean.history[1]['nas/candidate_steps'] == clean.history[1]['nas/candidates']
  assert clean.history[0]['nas/candidates'] < clean.history[0]['nas/candidate_steps'] <= 2 * clean.history[0][
      'nas/candidates']


def test_compilations_are_bounded_by_the_architectures_not_the_rounds():
  """Real active-iNAS: V' and L grow every round, yet a round whose architecture has been a round model before
  compiles nothing (both architectures of the 1 x 2 space are candidates from round 0 on): compilations scale
  with the architectures seen, not with the rounds or the sizes of L and V'."""
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 50), _loop_config().train, _loop_config().model)
  policy = inas.inas_policy(inas.INASConfig(space=SearchSpace(1, 2), schedule='compressed'))
  state = loop.run(_tiny_splits(), config, 'least_confidence', policy, seed=0)
  events = [r['compile/events'] for r in state.history]
  assert len(events) == 4 and len({r['nas/validation_size'] for r in state.history}) == 4
  seen = set()
  for record in state.history:
    assert record['compile/events'] == 0 or record['arch'] not in seen, events
    seen.add(record['arch'])
  assert sum(events) <= 2 * 30, events  # Two architectures: init, steps, scores, forward and per-shape slices each.
  assert all(r['time/compile'] >= 0 for r in state.history)


# --- The safe search. ---


def _fake_out_of_fold(loss_of, calls):
  """An `out_of_fold` whose per-item losses are `loss_of(arch, round)` plus item noise; records its masks."""
  def fake(arch, inputs, config, masks, rng):
    items = np.flatnonzero(np.logical_or.reduce(masks))
    calls.append((arch, int(inputs.round), [m.copy() for m in masks], np.asarray(inputs.labeled_mask).copy()))
    noise = np.random.default_rng(len(items)).normal(0, 0.05, len(items))
    losses = loss_of(arch, int(inputs.round)) + noise
    return nas.OutOfFold(items, losses, losses < 0.7, steps=11 * len(masks))
  return fake


def test_the_safe_search_stays_without_evidence_and_moves_on_it_shrinking_too(monkeypatch):
  calls = []
  # Round 0: A(2,1) clearly better than A(1,1); round 1: A(1,1) (its shrink) clearly better than A(2,1); then a
  # tie everywhere, where nothing may move.
  table = {0: {A(2, 1): 0.3}, 1: {A(1, 1): 0.3}}
  monkeypatch.setattr(nas, 'out_of_fold', _fake_out_of_fold(lambda arch, r: table.get(r, {}).get(arch, 0.8), calls))
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 40), _loop_config().train, _loop_config().model)
  state = loop.run(_tiny_splits(), config, 'entropy', nas.safe_policy(inas.INASConfig(space=SPACE), folds=3),
                   seed=0)
  assert [r['arch'] for r in state.history] == ['A(2,1)', 'A(1,1)', 'A(1,1)']
  assert [r['nas/decision'] for r in state.history] == ['move', 'move', 'stay']
  first, second = state.history[0], state.history[1]
  assert set(k[len('nas/step0/'):] for k in first if k.startswith('nas/step0/')) == {'A(1,1)', 'A(2,1)', 'A(1,2)'}
  # Round 1 from A(2,1): its shrink A(1,1) and its expansion in the 2 x 2 grid are candidates; the shrink wins.
  assert {k[len('nas/step0/'):] for k in second if k.startswith('nas/step0/')} == {'A(2,1)', 'A(1,1)', 'A(2,2)'}
  # The advantage in the probability of the true class: exp(-0.3) - exp(-0.8) = 0.29.
  assert second['nas/oof/A(1,1)/t'] > 2.0 and second['nas/oof/A(1,1)/advantage'] == pytest.approx(0.29, abs=0.02)
  assert abs(state.history[2]['nas/oof/A(2,1)/t']) < 2.0 or state.history[2]['nas/oof/A(2,1)/advantage'] <= 0
  assert first['nas/candidates'] == 3 and first['nas/candidate_steps'] == 3 * 33 and first['nas/folds'] == 3
  # Every fold mask lies within L, the folds are disjoint and cover L, and one split serves every candidate.
  for _, _, masks, labeled in calls:
    assert np.array_equal(np.logical_or.reduce(masks), labeled) and sum(m.sum() for m in masks) == labeled.sum()
  by_round = {}
  for _, round_index, masks, _ in calls:
    by_round.setdefault(round_index, masks)
    assert all(np.array_equal(a, b) for a, b in zip(masks, by_round[round_index]))


def test_the_safe_search_trains_its_fold_models_on_its_own_fraction(monkeypatch):
  """`nas.candidate_fraction` reaches the fold models' schedule; 0 keeps iNAS's `inas.candidate_fraction`."""
  from jal import experiment
  fractions = []

  def fake(arch, inputs, config, masks, rng):
    fractions.append(config.candidate_fraction)
    items = np.flatnonzero(np.logical_or.reduce(masks))
    return nas.OutOfFold(items, np.full(len(items), 0.5), np.ones(len(items), bool), steps=len(masks))

  monkeypatch.setattr(nas, 'out_of_fold', fake)
  splits = _tiny_splits()
  labeled = np.zeros(len(splits.pool), bool)
  labeled[:24] = True
  inputs = loop.PolicyInputs(splits.pool, labeled, np.where(labeled, splits.pool.labels, -1), None, None, None, 0,
                             _loop_config().train, lambda arch: build_model(arch, 2, _loop_config().model))
  config = experiment.base_config()
  config.inas.candidate_fraction, config.inas.max_blocks, config.inas.max_stacks = 0.5, 2, 2
  for fraction, expected in ((0.0, 0.5), (0.125, 0.125)):
    config.nas.candidate_fraction = fraction
    fractions.clear()
    policy = experiment.POLICIES['safe'](experiment.inas_config(config.inas), config, splits)
    arch, record = policy(inputs, jax.random.key(0))
    assert fractions and set(fractions) == {expected} and record['nas/decision'] == 'stay'


def test_the_safe_search_starts_where_the_config_says_and_may_shrink_from_there(monkeypatch):
  """`nas.start` is round 0's current architecture (its shrinks are candidates); '' keeps the root; a start the
  input's space leaves out is a ValueError that says why."""
  from jal import experiment
  monkeypatch.setattr(nas, 'out_of_fold', _fake_out_of_fold(lambda arch, r: 0.3 if arch == A(1, 2) else 0.8, []))
  splits = _tiny_splits()
  config = experiment.base_config()
  config.inas.max_blocks, config.inas.max_stacks = 2, 2
  run_config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 30), _loop_config().train, _loop_config().model)
  search = experiment.inas_config(config.inas)
  assert experiment.search_start('', search) is None  # The default: the space's root, as every other search.
  assert experiment.search_start('2,2', search) == A(2, 2)
  config.nas.start = 'A(2,2)'
  policy = experiment.POLICIES['safe'](experiment.inas_config(config.inas), config, splits)
  history = loop.run(splits, run_config, 'entropy', policy, seed=0).history
  # From A(2,2) in the 2 x 2 grid only its shrink A(1,2) is a neighbour (its narrowing, A(3,1), lies outside).
  assert {k[len('nas/step0/'):] for k in history[0] if k.startswith('nas/step0/')} == {'A(2,2)', 'A(1,2)'}
  assert [r['arch'] for r in history] == ['A(1,2)', 'A(1,2)'] and history[0]['nas/decision'] == 'move'
  config.inas.max_stacks = 5
  config.nas.start = 'A(1,4)'  # A 1x1 last map on the 8x8 test images: the input bound leaves it out.
  policy = experiment.POLICIES['safe'](experiment.inas_config(config.inas), config, splits)
  with pytest.raises(ValueError, match='feature map'):
    loop.run(splits, run_config, 'entropy', policy, seed=0)


def test_out_of_fold_trains_and_scores_on_the_labelled_set_only(monkeypatch):
  """Each fold trains on L minus the fold and predicts the fold's images: never an unlabelled item, never the
  test split."""
  splits = _tiny_splits()
  seen = {'train': [], 'predict': []}
  real_train, real_predict = nas.train, nas.predict

  def spy_train(model, config, images, labels, rngs, labeled_mask, **kwargs):
    seen['train'].append(labeled_mask.copy())
    return real_train(model, config, images, labels, rngs, labeled_mask, **kwargs)

  def spy_predict(model, variables, images, **kwargs):
    seen['predict'].append(np.asarray(images))
    return real_predict(model, variables, images, **kwargs)

  monkeypatch.setattr(nas, 'train', spy_train)
  monkeypatch.setattr(nas, 'predict', spy_predict)
  labeled = np.zeros(len(splits.pool), bool)
  labeled[:24] = True
  labels = np.where(labeled, splits.pool.labels, -1)
  inputs = loop.PolicyInputs(splits.pool, labeled, labels, None, None, None, 0, _loop_config().train,
                             lambda arch: build_model(arch, 2, _loop_config().model))
  masks = nas.fold_masks(labeled, 3, jax.random.key(0))
  score = nas.out_of_fold(A(1, 1), inputs, inas.INASConfig(space=SPACE), masks, jax.random.key(1))
  assert len(seen['train']) == 3 and all(not (m & ~labeled).any() for m in seen['train'])
  assert all((m | f == labeled).all() and not (m & f).any() for m, f in zip(seen['train'], masks))
  fold_images = [splits.pool.images[np.flatnonzero(f)] for f in masks]
  assert all(np.array_equal(p, f) for p, f in zip(seen['predict'], fold_images))
  assert sorted(score.items) == sorted(np.flatnonzero(labeled)) and score.losses.shape == (24,)
  assert np.all(score.losses > 0) and 0.0 <= score.error <= 1.0 and score.loss_se > 0


def test_the_safe_search_refuses_options_it_does_not_follow():
  with pytest.raises(ValueError, match="options '\\+inherit', '\\+lineage' and '\\+pareto' do not apply"):
    nas.safe_policy(inas.INASConfig(inherit='round_model'))
  with pytest.raises(ValueError, match='evidence >= 0'):
    nas.safe_policy(evidence=-1.0)
  with pytest.raises(ValueError, match='2 <= folds <= '):
    nas.fold_masks(np.ones(5, bool), 6, jax.random.key(0))


def test_on_pure_noise_labels_the_safe_search_grows_at_most_once_and_runs_repeat_exactly():
  """Labels that are coin flips: no architecture can be better, so a move is a false alarm. Over 5 rounds (real
  training, 2 folds) the safe search may grow once at most; a second run on this machine gives the same rows."""
  rng = np.random.default_rng(3)
  images = rng.normal(size=(130, 8, 8, 1)).astype(np.float32)
  labels = rng.integers(0, 2, 130).astype(np.int32)
  splits = data.make_splits(data.from_arrays(images[:100], labels[:100]), data.from_arrays(images[100:], labels[100:]))
  config = loop.LoopConfig(loop.BudgetSchedule(40, 10, 80), TrainConfig(epochs=2, examples_per_epoch=32, batch_size=16),
                           ModelConfig(width=4))
  policy = nas.safe_policy(inas.INASConfig(space=SearchSpace(2, 2), candidate_fraction=1.0), folds=2)
  runs = [loop.run(splits, config, 'random', policy, seed=0).history for _ in range(2)]
  depths = [A(*map(int, r['arch'][2:-1].split(','))).depth for r in runs[0]]
  assert len(depths) == 5 and sum(b > a for a, b in zip(depths, depths[1:])) + (depths[0] > 4) <= 1
  strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(('time/', 'compile/'))} for r in rows]  # noqa: E731
  assert strip(runs[0]) == strip(runs[1])


def test_a_safe_search_killed_after_its_choice_resumes_to_the_same_rows(monkeypatch, tmp_path):
  from test_resume import _run_with_crashes, _without_times

  table = {0: {A(2, 1): 0.3}, 1: {A(1, 1): 0.3}}
  monkeypatch.setattr(nas, 'out_of_fold', _fake_out_of_fold(lambda arch, r: table.get(r, {}).get(arch, 0.8), []))
  config = loop.LoopConfig(loop.BudgetSchedule(20, 10, 40), _loop_config().train, _loop_config().model)
  policy = nas.safe_policy(inas.INASConfig(space=SPACE), folds=3)
  whole = loop.run(_tiny_splits(), config, 'entropy', policy, seed=0)
  resumed = _run_with_crashes(str(tmp_path), _tiny_splits(), config, 'entropy', policy, {'case': 'safe'},
                              crashes=((0, 'policy'), (1, 'policy')))
  assert _without_times(resumed.history) == _without_times(whole.history)


def test_the_evidence_compares_correctness_or_the_probability_of_the_true_class():
  items = np.arange(4)
  current = nas.OutOfFold(items, -np.log(np.array([0.9, 0.5, 0.3, 0.6])), np.array([1, 1, 0, 1], bool), 10)
  other = nas.OutOfFold(items, -np.log(np.array([0.95, 0.6, 0.45, 0.7])), np.array([1, 1, 0, 1], bool), 10)
  # Equal correctness on every item: no evidence; the probabilities are higher on every item: evidence.
  assert nas.paired_evidence(current, other, 'correct') == (0.0, 0.0, 0.0)
  mean, se, t = nas.paired_evidence(current, other, 'probability')
  differences = np.array([0.05, 0.1, 0.15, 0.1])
  assert mean == pytest.approx(differences.mean()) and se == pytest.approx(differences.std(ddof=1) / 2)
  assert t == pytest.approx(mean / se) and t > 2.0
  with pytest.raises(ValueError, match='evidence score'):
    nas.paired_evidence(current, other, 'loss')
  with pytest.raises(ValueError, match='evidence score'):
    nas.safe_policy(score='loss')
