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

None of them reads the test split; the choice rule (`INASConfig.choose`) is iNAS's. A user's own policy is a
plain function of the same signature.
"""

from __future__ import annotations

import collections

import jax
import numpy as np

from jal import inas as inas_lib
from jal.inas import INASConfig
from jal.search_space import Architecture


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
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, config, rng)
    ledger = inas_lib.Ledger()
    evaluations = {arch: ledger.evaluate(scorer, arch, train_mask, validation_mask, jax.random.fold_in(train_rng, i))
                   for i, arch in enumerate(config.space.nodes())}
    chosen = inas_lib.choose(evaluations, _current(inputs, config), config, int(validation_mask.sum()))
    return inas_lib.answer(config, chosen, _record(chosen, evaluations, ledger, validation_mask),
                           evaluations[chosen], (train_mask, validation_mask))

  return policy


def random_policy(config: INASConfig | None = None, num_candidates: int = 3):
  """`num_candidates` distinct architectures drawn uniformly from the space each round; the best on V'."""
  config = config or INASConfig()
  nodes = list(config.space.nodes())
  if not 1 <= num_candidates <= len(nodes):
    raise ValueError(f'random_policy needs 1 <= num_candidates <= {len(nodes)} (the space), got {num_candidates}.')

  def policy(inputs, rng):
    draw_rng, round_rng = jax.random.split(rng)
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, config, round_rng)
    picks = np.asarray(jax.random.choice(draw_rng, len(nodes), (num_candidates,), replace=False))
    ledger = inas_lib.Ledger()
    evaluations = {nodes[i]: ledger.evaluate(scorer, nodes[i], train_mask, validation_mask,
                                             jax.random.fold_in(train_rng, k)) for k, i in enumerate(picks)}
    chosen = inas_lib.choose(evaluations, _current(inputs, config), config, int(validation_mask.sum()))
    return inas_lib.answer(config, chosen, _record(chosen, evaluations, ledger, validation_mask),
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
    init_rng, evolve_rng, round_rng = jax.random.split(rng, 3)
    keep = config.inherit != 'none'
    scorer, train_mask, validation_mask, train_rng = _round_setup(inputs, config, round_rng, keep_variables=keep)
    current = _current(inputs, config)
    config.space.check(current)
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
    neighbours = list(config.space.mutations(current))
    order = np.asarray(jax.random.permutation(init_rng, len(neighbours))) if neighbours else []
    seeds += [neighbours[i] for i in order][:population_size - 1]
    population = collections.deque(evaluate(arch) for arch in seeds)
    for cycle in range(cycles):
      sample_rng, mutate_rng = jax.random.split(jax.random.fold_in(evolve_rng, cycle))
      members = np.asarray(jax.random.choice(sample_rng, len(population), (min(sample_size, len(population)),),
                                             replace=False))
      parent = min((population[i] for i in members),
                   key=lambda arch: inas_lib.tie_break_key(arch, evaluations[arch].error, current))
      options = config.space.mutations(parent)
      if not options:
        break
      child = options[int(jax.random.randint(mutate_rng, (), 0, len(options)))]
      population.append(evaluate(child, parent))
      population.popleft()  # Aging: the oldest member retires, whatever its error.
    chosen = inas_lib.choose(evaluations, current, config, int(validation_mask.sum()))
    return inas_lib.answer(config, chosen, _record(chosen, evaluations, ledger, validation_mask),
                           evaluations[chosen], (train_mask, validation_mask))

  return policy
