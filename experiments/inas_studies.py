"""iNAS's scoring under the microscope: two study policies, registered with `jal.experiment` by `register()`.

  inas_study         iNAS whose candidates also train with several seeds and are scored on a held-out split
                     (experiments/configs/inas_validation_study.py; docs/results/inas_study)
  inheritance_study  iNAS from scratch that also scores its candidates inherited at premature schedules
                     (experiments/configs/inheritance_study.py; docs/results/inheritance_study)
  heldout_best       the analysis-only upper bound of the safe search: each round the current architecture and
                     its four neighbours train on all of L and the one with the lowest error on a large held-out
                     split is kept (experiments/configs/safe_grid.py; never a user option)
  safe_2x025         the safe search scored by 2 folds at a quarter of the round's schedule, beside the grid's 'safe'
                     (3 folds at its inas.candidate_fraction) in one workdir: the cheaper scoring of
                     docs/results/safe_cost_study_28x28.md (a user asks for it with --config.nas.folds=2
                     --config.nas.candidate_fraction=0.25)
  safe_from_a24      the safe search from ResNet-18, A(2,4), beside the grid's 'safe' (from A(1,1)) in one workdir
                     (a user asks for it with --config.nas.start=A(2,4))

Study-only: they record what a search cannot know (held-out errors, other seeds' choices), so they live here, not in
the library.
"""

import dataclasses
import time

import jax
import numpy as np

from jal import experiment, progress
from jal import inas as inas_lib
from jal import nas as nas_lib
from jal.inas import INASConfig
from jal.predict import evaluate
from jal.train import train


def validation_study_policy(config: INASConfig, holdout: tuple[np.ndarray, np.ndarray], num_seeds: int = 3):
  """iNAS that also measures its own scoring: each candidate trains with `num_seeds` seeds on S', and the round
  records, per candidate and seed, the error on V' (best over epochs and final) and on `holdout`, a labelled split
  never queried (the pool's own held-out images, never the test split). The choice is iNAS's with seed 0 scored
  as `config.score`, so the trajectory is an active-iNAS run; the records show how far V' is from unbiased data,
  whether a choice on the holdout would differ, and how often another seed would choose another architecture.

  Records 'study/<arch>/<seed>/val_best', '.../val_final', '.../holdout' (errors in [0, 1]).
  """

  def policy(inputs, rng):
    previous = inputs.previous_arch or config.space.root
    pool, labels = inputs.pool, np.maximum(inputs.labels, 0)
    records = {}

    def scorer(arch, train_mask, validation_mask, candidate_rng):
      model = inputs.model_fn(arch)
      candidate_config, schedule_fraction = inas_lib.candidate_schedule(inputs.train, config)
      with progress.task(f'study candidate {arch}'):
        result = train(model, candidate_config, pool.images, labels, jax.random.split(candidate_rng, num_seeds),
                       train_mask, validation=(pool.images[validation_mask], labels[validation_mask]),
                       schedule_fraction=schedule_fraction)
      best, final = result.best_val_accuracy(), result.final_val_accuracy()
      for seed in range(num_seeds):
        held_out = evaluate(model, result.state_for_seed(seed).variables, *holdout)['accuracy']
        records.update({f'study/{arch}/{seed}/val_best': 1.0 - best[seed],
                        f'study/{arch}/{seed}/val_final': 1.0 - final[seed],
                        f'study/{arch}/{seed}/holdout': 1.0 - held_out})
      records[f'study/{arch}/num_validation'] = int(validation_mask.sum())
      return 1.0 - (best[0] if config.score == 'best' else final[0])

    result = inas_lib.inas(inputs.labeled_mask, previous, config, scorer, rng)
    return result.arch, {**result.metrics(), **records}

  return policy


def inheritance_study_policy(config: INASConfig, fractions: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4)):
  """iNAS from scratch (its choice drives the run) that also scores the same candidates inherited from the
  previous round's model at several premature schedules, on the same S'/V' (V' from the items that model never
  saw): how short an inherited schedule keeps the from-scratch choice.

  Records 'inherit_study/scratch/chosen', and per fraction f 'inherit_study/<f>/chosen', '.../<arch>' (errors) and
  '.../steps' (SGD steps spent); round 0, with no previous model, records the scratch choice only.
  """
  scratch_config = dataclasses.replace(config, inherit='none')

  def policy(inputs, rng):
    previous = inputs.previous_arch or config.space.root
    split_rng, train_rng = jax.random.split(rng)
    unseen = inas_lib.unseen_of(inputs, dataclasses.replace(config, inherit='round_model'))
    train_mask, validation_mask = inas_lib.split_labeled(np.asarray(inputs.labeled_mask), config.validation_fraction,
                                                split_rng, unseen)
    candidates = config.space.candidates(previous)
    num_validation = int(validation_mask.sum())

    def search(scorer, search_config):
      ledger = inas_lib.Ledger()
      evaluations = {arch: ledger.evaluate(scorer, arch, train_mask, validation_mask, train_rng)
                     for arch in candidates}
      return inas_lib.choose(evaluations, previous, search_config, num_validation), evaluations, ledger

    scratch = inas_lib.train_scorer(inputs.pool, inputs.labels, inputs.train, scratch_config, inputs.model_fn)
    chosen, evaluations, ledger = search(scratch, scratch_config)
    records = {'nas/chosen': str(chosen), 'nas/validation_size': num_validation, **ledger.metrics(),
               'inherit_study/scratch/chosen': str(chosen)}
    records.update({f'nas/step0/{arch}': e.error for arch, e in evaluations.items()})
    parent = inas_lib.parent_of(inputs, dataclasses.replace(config, inherit='round_model'))
    if parent is not None:
      for fraction in fractions:
        inherited_config = dataclasses.replace(config, inherit='round_model', inherited_fraction=fraction)
        scorer = inas_lib.train_scorer(inputs.pool, inputs.labels, inputs.train, inherited_config, inputs.model_fn,
                                       parent)
        arch, evaluations, ledger = search(scorer, inherited_config)
        key = f'inherit_study/{fraction:g}'
        records.update({f'{key}/chosen': str(arch), f'{key}/steps': ledger.steps,
                        f'{key}/seconds': ledger.seconds})
        records.update({f'{key}/{a}': e.error for a, e in evaluations.items()})
    return chosen, records

  return policy


def heldout_policy(config: INASConfig, holdout: tuple[np.ndarray, np.ndarray]):
  """What the safe search could reach with a perfect score: each round the current architecture and its
  neighbours (deeper, wider, shallower, narrower, within the space fitted to the input: the safe search's
  candidates) train on all of L with the round model's schedule (one key for all), and the one with the lowest error on
  `holdout` (labelled images never queried, never the test split) is kept; ties keep the current one. It reads
  labels no search has, so it is an analysis row that shows the headroom, not a policy a user can run.

  Records 'nas/heldout/<arch>' (errors in [0, 1]), 'nas/step0/<arch>' (the same) and the decision.
  """

  def policy(inputs, rng):
    search = inas_lib.for_input(config, inputs.pool)
    current = inputs.previous_arch or search.space.root
    search.space.check(current)
    labels = np.maximum(np.asarray(inputs.labels), 0)
    candidates = (current,) + tuple(a for a in search.space.mutations(current) if a != current)
    ledger, errors = inas_lib.Ledger(), {}
    for arch in candidates:
      model = inputs.model_fn(arch)
      start = time.perf_counter()
      with progress.task(f'held-out candidate {arch}'):
        result = train(model, inputs.train, inputs.pool.images, labels, rng[None], np.asarray(inputs.labeled_mask))
      errors[arch] = 1.0 - float(evaluate(model, result.state_for_seed(0).variables, *holdout)['accuracy'])
      ledger.add(time.perf_counter() - start, inputs.train.total_steps)
    chosen = min(candidates, key=lambda a: (errors[a], a != current))
    record = {'nas/chosen': str(chosen), 'nas/decision': 'stay' if chosen == current else 'move',
              'nas/validation_size': len(holdout[1]), **ledger.metrics(),
              **inas_lib.dropped_metrics(search.space, current)}
    record.update({f'nas/heldout/{a}': e for a, e in errors.items()})
    record.update({f'nas/step0/{a}': e for a, e in errors.items()})
    return chosen, record

  return policy


def _holdout(splits, name):
  if splits is None or splits.validation is None:
    raise ValueError(f"Policy {name!r} scores candidates on a held-out split: set "
                     '--config.data.validation_size (e.g. 2000).')
  return splits.validation.images, splits.validation.labels


def _validation_study(search, config, splits):
  return validation_study_policy(search, _holdout(splits, 'inas_study'), config.get('study_seeds', 3))


def _safe_from(start: str):
  def factory(search, config, splits):
    return nas_lib.safe_policy(search, config.nas.folds, config.nas.evidence, config.nas.evidence_score,
                               config.nas.candidate_fraction or None, start=experiment.search_start(start, search))
  return factory


def register() -> None:
  """Makes the 'inas_study', 'inheritance_study', 'heldout_best', 'safe_2x025' and 'safe_from_a24' policies a config
  can name (once per process)."""
  if 'inas_study' not in experiment.POLICIES:
    experiment.register_policy('safe_2x025', lambda search, config, splits: nas_lib.safe_policy(
        search, 2, config.nas.evidence, config.nas.get('evidence_score', 'correct'), 0.25))
    experiment.register_policy('safe_from_a24', _safe_from('A(2,4)'))
    experiment.register_policy('inas_study', _validation_study)
    experiment.register_policy('inheritance_study', lambda search, config, splits: inheritance_study_policy(search))
    experiment.register_policy('heldout_best',
                               lambda search, config, splits: heldout_policy(search, _holdout(splits, 'heldout_best')))
