"""Architecture search strategies beyond iNAS, as active-learning policies over the same space and V'.

Each is a policy `(PolicyInputs, rng) -> (architecture, 'nas/' scalars)` (plus the chosen candidate as a
`jal.inherit.KeptModel` when it inherits a lineage) for `jal.loop.run`, like `jal.inas.inas_policy`, and evaluates
candidates the same way (`jal.inas.train_scorer`: premature training on S', error on V', from scratch or inherited
from the previous round's model or the lineage of the searches' chosen candidates, `INASConfig.inherit`), so rows
differ in the search strategy only. Each records its cost: candidates evaluated, their SGD steps and seconds.

  grid_policy       every architecture of the space each round: the paper's straw man (§4.5), on a small grid.
  random_policy     `num_candidates` distinct architectures drawn uniformly from the space each round (default:
                    3, iNAS's budget: the current architecture and its two expansions).
  evolution_policy  regularised evolution (Real et al., 2019) within each round: a population seeded with the
                    previous round's architecture and its mutations; each cycle samples `sample_size` members,
                    mutates the best (deeper, wider, shallower, narrower), evaluates the child and retires the
                    oldest member (aging). With inheritance the child starts from its parent's trained weights
                    (Lamarckian); the best architecture evaluated is kept.

  safe_policy       the safe search: the current architecture and its four neighbours scored out of fold on L
                    (k-fold cross-validation, per-item losses), a move only when a neighbour's paired advantage
                    over the current one clears `evidence` standard errors; shrinking moves undo a wrong step.

None of them reads the test split; the choice rule of the first three (`INASConfig.choose`) is iNAS's. A user's
own policy is a plain function of the same signature.
"""

from __future__ import annotations

import collections
import dataclasses
import time

import jax
import numpy as np

from jal import inas as inas_lib
from jal import progress
from jal.inas import INASConfig
from jal.predict import predict
from jal.search_space import Architecture
from jal.train import train


def _round_setup(inputs, config: INASConfig, rng: jax.Array, keep_variables: bool = False):
  """(scorer, S' mask, V' mask, key for the candidates) of one round, split as iNAS splits."""
  split_rng, train_rng = jax.random.split(rng)
  train_mask, validation_mask = inas_lib.round_split(inputs, config, split_rng)
  scorer = inas_lib.train_scorer(inputs.pool, inputs.labels, inputs.train, config, inputs.model_fn,
                                 inas_lib.parent_of(inputs, config),
                                 keep_variables=keep_variables or inas_lib.keeps_lineage(config))
  return scorer, train_mask, validation_mask, train_rng


def _record(chosen: Architecture, evaluations: dict, ledger: inas_lib.Ledger, validation_mask) -> dict:
  out = {'nas/chosen': str(chosen), 'nas/validation_size': int(validation_mask.sum()), **ledger.metrics()}
  out.update({f'nas/step0/{arch}': e.error for arch, e in evaluations.items()})
  return out


def _current(inputs, config: INASConfig) -> Architecture:
  return inputs.previous_arch or config.space.root


def grid_policy(config: INASConfig | None = None):
  """Every architecture of `config.space` each round; keeps the best on V' (ties to the current one)."""
  config = config or INASConfig()

  def policy(inputs, rng):
    search = inas_lib.for_input(config, inputs.pool)
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, search, rng)
    ledger = inas_lib.Ledger()
    evaluations = {arch: ledger.evaluate(scorer, arch, train_mask, validation_mask, jax.random.fold_in(train_rng, i))
                   for i, arch in enumerate(search.space.nodes())}
    chosen = inas_lib.choose(evaluations, _current(inputs, search), search, int(validation_mask.sum()))
    return inas_lib.answer(search, chosen, _record(chosen, evaluations, ledger, validation_mask),
                           evaluations[chosen], (train_mask, validation_mask))

  return policy


def random_policy(config: INASConfig | None = None, num_candidates: int = 3):
  """`num_candidates` distinct architectures drawn uniformly from the space each round; the best on V'."""
  config = config or INASConfig()
  size = len(list(config.space.nodes()))
  if not 1 <= num_candidates <= size:
    raise ValueError(f'random_policy needs 1 <= num_candidates <= {size} (the space), got {num_candidates}.')

  def policy(inputs, rng):
    search = inas_lib.for_input(config, inputs.pool)
    nodes = list(search.space.nodes())
    num_picks = min(num_candidates, len(nodes))  # The input bound may leave fewer.
    draw_rng, round_rng = jax.random.split(rng)
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, search, round_rng)
    picks = np.asarray(jax.random.choice(draw_rng, len(nodes), (num_picks,), replace=False))
    ledger = inas_lib.Ledger()
    evaluations = {nodes[i]: ledger.evaluate(scorer, nodes[i], train_mask, validation_mask,
                                             jax.random.fold_in(train_rng, k)) for k, i in enumerate(picks)}
    chosen = inas_lib.choose(evaluations, _current(inputs, search), search, int(validation_mask.sum()))
    return inas_lib.answer(search, chosen, _record(chosen, evaluations, ledger, validation_mask),
                           evaluations[chosen], (train_mask, validation_mask))

  return policy


def evolution_policy(config: INASConfig | None = None, population_size: int = 3, cycles: int = 3,
                     sample_size: int = 2):
  """Regularised evolution within each round (see the module docstring): `population_size` + `cycles`
  candidates per round. The population starts as the previous architecture and mutations of it; an architecture
  already evaluated this round is not trained again (its error is reused and it rejoins the population)."""
  config = config or INASConfig()
  if population_size < 1 or cycles < 0 or not 1 <= sample_size <= population_size:
    raise ValueError('evolution_policy needs population_size >= 1, cycles >= 0 and 1 <= sample_size <= '
                     f'population_size; got {population_size}, {cycles}, {sample_size}.')

  def policy(inputs, rng):
    search = inas_lib.for_input(config, inputs.pool)
    init_rng, evolve_rng, round_rng = jax.random.split(rng, 3)
    keep = search.inherit != 'none'
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, search, round_rng, keep_variables=keep)
    current = _current(inputs, search)
    search.space.check(current)
    dropped = inas_lib.dropped_metrics(search.space, current)
    ledger = inas_lib.Ledger()
    evaluations: dict[Architecture, inas_lib.Evaluation] = {}
    counter = iter(range(10**9))

    def evaluate(arch, parent=None):
      if arch not in evaluations:
        override = None if parent is None or evaluations[parent].variables is None else (
            parent, evaluations[parent].variables)
        evaluations[arch] = ledger.evaluate(scorer, arch, train_mask, validation_mask,
                                            jax.random.fold_in(train_rng, next(counter)), override)
      return arch

    seeds = [current]
    neighbours = list(search.space.mutations(current))
    order = np.asarray(jax.random.permutation(init_rng, len(neighbours))) if neighbours else []
    seeds += [neighbours[i] for i in order][:population_size - 1]
    population = collections.deque(evaluate(arch) for arch in seeds)
    for cycle in range(cycles):
      sample_rng, mutate_rng = jax.random.split(jax.random.fold_in(evolve_rng, cycle))
      members = np.asarray(jax.random.choice(sample_rng, len(population), (min(sample_size, len(population)),),
                                             replace=False))
      parent = min((population[i] for i in members),
                   key=lambda arch: inas_lib.tie_break_key(arch, evaluations[arch].error, current))
      options = search.space.mutations(parent)
      if not options:
        break
      child = options[int(jax.random.randint(mutate_rng, (), 0, len(options)))]
      population.append(evaluate(child, parent))
      population.popleft()  # Aging: the oldest member retires, whatever its error.
    chosen = inas_lib.choose(evaluations, current, search, int(validation_mask.sum()))
    return inas_lib.answer(search, chosen, {**_record(chosen, evaluations, ledger, validation_mask), **dropped},
                           evaluations[chosen], (train_mask, validation_mask))

  return policy


# --- The safe search: out-of-fold scores with error bars, a move only on evidence, shrinking moves too. ---


@dataclasses.dataclass(frozen=True)
class OutOfFold:
  """One candidate scored out of fold on L: per labelled item (in pool order), the loss and correctness of the
  model that did not train on it.

  Attributes:
    items: [n] pool indices of L.
    losses: [n] cross-entropy of the held-out model on each item.
    correct: [n] bool, whether it classified the item right.
    steps: SGD steps spent over the folds.
  """

  items: np.ndarray
  losses: np.ndarray
  correct: np.ndarray
  steps: int

  @property
  def error(self) -> float:
    return float(1.0 - self.correct.mean())

  @property
  def loss(self) -> float:
    return float(self.losses.mean())

  @property
  def loss_se(self) -> float:
    return float(self.losses.std(ddof=1) / np.sqrt(len(self.losses))) if len(self.losses) > 1 else float('inf')


def fold_masks(labeled_mask: np.ndarray, folds: int, rng: jax.Array) -> list[np.ndarray]:
  """`folds` disjoint [N] masks that cover the labelled set, at random (sizes differ by at most one)."""
  labeled = np.flatnonzero(labeled_mask)
  if not 2 <= folds <= len(labeled):
    raise ValueError(f'Cross-validation needs 2 <= folds <= |L| = {len(labeled)}, got {folds}.')
  seed = int(jax.random.randint(rng, (), 0, np.iinfo(np.int32).max))
  order = np.random.default_rng(seed).permutation(labeled)
  masks = []
  for part in np.array_split(order, folds):
    mask = np.zeros_like(labeled_mask, dtype=bool)
    mask[part] = True
    masks.append(mask)
  return masks


def out_of_fold(arch: Architecture, inputs, config: INASConfig, masks: list[np.ndarray], rng: jax.Array
                ) -> OutOfFold:
  """Trains `arch` once per fold on the other folds (the candidate schedule, from scratch, the final model: no
  epoch is picked on the held-out fold) and scores the held-out fold's items. Reads L only: never the test split
  nor an unlabelled item."""
  model = inputs.model_fn(arch)
  candidate_config, schedule_fraction = inas_lib.candidate_schedule(inputs.train, config)
  labels = np.maximum(np.asarray(inputs.labels), 0)
  labeled_mask = np.logical_or.reduce(masks)
  losses, correct = np.zeros(len(inputs.pool)), np.zeros(len(inputs.pool), bool)
  for k, held_out in enumerate(masks):
    with progress.task(f'candidate {arch} fold {k + 1}/{len(masks)}'):
      result = train(model, candidate_config, inputs.pool.images, labels, jax.random.fold_in(rng, k)[None],
                     labeled_mask & ~held_out, schedule_fraction=schedule_fraction)
    items = np.flatnonzero(held_out)
    probs = np.asarray(predict(model, result.state_for_seed(0).variables, inputs.pool.images[items]).probs)
    picked = np.clip(probs[np.arange(len(items)), labels[items]], 1e-12, 1.0)
    losses[items], correct[items] = -np.log(picked), probs.argmax(-1) == labels[items]
  steps = len(masks) * max(1, int(round(schedule_fraction * candidate_config.total_steps)))
  labeled = np.flatnonzero(labeled_mask)
  return OutOfFold(labeled, losses[labeled], correct[labeled], steps)


EVIDENCE_SCORES = ('correct', 'probability')  # What the safe search compares per item: `paired_evidence`.


def item_scores(score: OutOfFold, kind: str = 'correct') -> np.ndarray:
  """[n] per-item scores of one candidate: 'correct' (1 if the held-out model classified the item right) or
  'probability' (the probability it gave the true class: a smooth accuracy, whose expectation is 1/C for any model
  on labels no model can predict, so it does not favour confident models as log-loss does)."""
  if kind == 'correct':
    return score.correct.astype(np.float64)
  if kind == 'probability':
    return np.exp(-score.losses)
  raise ValueError(f'Unknown evidence score {kind!r}; use one of {EVIDENCE_SCORES}.')


def paired_evidence(current: OutOfFold, other: OutOfFold, kind: str = 'correct') -> tuple[float, float, float]:
  """(mean, SE, t) of other's out-of-fold item scores (`item_scores`) minus current's, paired over the labelled
  items (for 'correct', the accuracy advantage as McNemar's test reads it): t > 0 favours `other`."""
  differences = item_scores(other, kind) - item_scores(current, kind)
  mean = float(differences.mean())
  se = float(differences.std(ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else float('inf')
  if se > 0:
    return mean, se, mean / se
  return mean, se, float(np.sign(mean)) * float('inf') if mean else 0.0  # Every item agrees: all the evidence.


def safe_policy(config: INASConfig | None = None, folds: int = 3, evidence: float = 2.0,
                score: str = 'probability', candidate_fraction: float | None = None,
                start: Architecture | None = None):
  """The safe search: each round the current architecture, its expansions (deeper, wider) and its reductions
  (shallower, narrower), within the space fitted to the input, are scored out of fold on L (`folds`-fold
  cross-validation, `out_of_fold`); the architecture changes only to a candidate whose out-of-fold accuracy beats
  the current one's by more than `evidence` standard errors paired over the items (`paired_evidence` on `score`:
  correctness, or the probability of the true class; the largest such advantage wins), else it stays. Rows
  record every candidate's out-of-fold error and loss ± SE, its advantage, SE and t against the current one, and
  the decision ('nas/decision': 'stay' or 'move'). `candidate_fraction`, when given, replaces the config's for the
  fold models (the schedule a fold model trains, as a fraction of the round's). `start` is the first round's
  current architecture (None: the space's root A(1,1)); the search may shrink from it as well as grow, so a user
  who knows a good architecture for the data starts there and leaves it only on evidence."""
  config = config or INASConfig()
  if candidate_fraction is not None:
    config = dataclasses.replace(config, candidate_fraction=candidate_fraction)  # Its own checks run again.
  if evidence < 0:
    raise ValueError(f'safe_policy needs evidence >= 0 (a t threshold), got {evidence}.')
  if score not in EVIDENCE_SCORES:
    raise ValueError(f'Unknown evidence score {score!r}; use one of {EVIDENCE_SCORES}.')
  if config.inherit != 'none' or config.choose != 'error':
    raise ValueError("The safe search scores candidates from scratch by its own rule: the options '+inherit', "
                     "'+lineage' and '+pareto' do not apply to it.")

  def policy(inputs, rng):
    search = inas_lib.for_input(config, inputs.pool)
    current = inputs.previous_arch or start or search.space.root
    search.space.check(current)  # A start the input's space leaves out is a ValueError that says why.
    fold_rng, train_rng = jax.random.split(rng)
    masks = fold_masks(np.asarray(inputs.labeled_mask), folds, fold_rng)
    candidates = (current,) + tuple(a for a in search.space.mutations(current) if a != current)
    ledger = inas_lib.Ledger()
    scores = {}
    for arch in candidates:
      began = time.perf_counter()
      # One key for every candidate (common random numbers: the same batches per fold), so that the paired
      # differences carry the architectures' differences more than their draws'.
      scores[arch] = out_of_fold(arch, inputs, search, masks, train_rng)
      ledger.add(time.perf_counter() - began, scores[arch].steps)
    record = {'nas/validation_size': int(len(scores[current].items)), 'nas/folds': folds, **ledger.metrics(),
              **inas_lib.dropped_metrics(search.space, current)}
    best, best_mean = current, 0.0
    for arch, candidate in scores.items():
      record.update({f'nas/step0/{arch}': candidate.error, f'nas/oof/{arch}/loss': candidate.loss,
                     f'nas/oof/{arch}/loss_se': candidate.loss_se})
      if arch != current:
        mean, se, t = paired_evidence(scores[current], candidate, score)
        record.update({f'nas/oof/{arch}/advantage': mean, f'nas/oof/{arch}/advantage_se': se, f'nas/oof/{arch}/t': t})
        if t > evidence and mean > best_mean:
          best, best_mean = arch, mean
    record.update({'nas/chosen': str(best), 'nas/decision': 'stay' if best == current else 'move'})
    return best, record

  return policy
