"""Experiments: an `ml_collections` config -> library objects -> a resumable grid of runs -> rows, tables, figures.

A grid is every (architecture policy, query strategy, seed) of a config. `run(config, workdir)` runs the ones not
complete in `workdir/rounds.jsonl`, each checkpointed in `workdir/checkpoints/<run>/` after every phase (an
interrupted grid resumes inside the run where it stopped), and writes the report (`jal.report`). The commands of
`jal.cli` (`jal-active-inas`, ...) are absl mains around this function; a notebook calls it directly:

    config = jal.experiment.base_config()          # CPU scale; see `apply_scale` for 'smoke' and 'paper'
    config.strategies = ('entropy', 'random')
    summary = jal.experiment.run(config, '/tmp/grid')

This module logs through absl and never reads flags.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import socket
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from jal import albl as albl_lib
from jal import autoal as autoal_lib
from jal import checkpoint, data, loop, pretrained, query, report
from jal import inas as inas_lib
from jal import nas as nas_lib
from jal import progress as progress_lib
from jal.augment import AugmentConfig
from jal.models import ModelConfig, build_model, count_params, init_variables, model_fn
from jal.oracle import HumanOracle, LabelsRequested, import_labels
from jal.predict import evaluate, predict
from jal.search_space import SearchSpace, parse_architecture
from jal.train import TrainConfig, train

# --- Configs. ---


def train_section() -> ml_collections.ConfigDict:
  """`TrainConfig` fields as a config section, at CPU scale (30 epochs of 2048 examples)."""
  section = ml_collections.ConfigDict()
  section.epochs = 30
  section.examples_per_epoch = 2048
  section.batch_size = 128
  section.learning_rate = 0.1
  section.momentum = 0.9
  section.nesterov = True
  section.weight_decay = 5e-4
  section.lr_boundaries = (0.5, 0.75)
  section.lr_decay = 0.1
  section.eval_every = 0
  section.eval_batch_size = 1024
  section.seed_parallelism = 'auto'         # 'vmap' or 'sequential' for several seeds; 'auto' picks per backend.
  section.loss_prediction_weight = 1.0      # λ of a loss-predicting model's ranking loss (model.loss_prediction).
  section.loss_prediction_detach = 0.6      # Its gradient stops reaching the backbone after this share of steps.
  section.augment = ml_collections.ConfigDict()
  section.augment.flip = True
  section.augment.shift = 2
  section.augment.rotation = 0.0
  return section


def model_section() -> ml_collections.ConfigDict:
  """`ModelConfig` fields, plus the MC-dropout settings of a comparison."""
  section = ml_collections.ConfigDict()
  section.width = 16                        # The paper's width is 64; 16 keeps CPU runs in minutes.
  section.conv_bias = True
  section.conv_impl = 'auto'
  section.cpu_fusions = 'auto'              # YNNPACK where measured faster on the CPU (jal.cpu_fusions).
  section.precision = 'float32'             # 'bfloat16': mixed precision, for accelerators (ModelConfig.precision).
  section.dropout_rate = 0.0                # Training dropout of every strategy's model (0.5: the paper's ablation).
  section.mc_dropout_rate = 0.5             # Dropout of the MC passes at query time (MC-dropout strategies).
  section.mc_passes = 100                   # T, as in active-iNAS.
  section.loss_prediction = False           # A loss-prediction module (Learning Loss) on every strategy's model.
  section.init_from = ''                    # Pretrained variables every round starts from (Orbax dir or .msgpack).
  section.freeze = 'none'                   # 'backbone': train the head only (a linear probe of init_from).
  return section


def base_config() -> ml_collections.ConfigDict:
  """The config of a comparison grid at CPU scale: Fashion-MNIST from local IDX files, A(1,2) at width 16,
  least confidence, 3 paired seeds, 100 -> 600 labels by 100, 640 SGD steps per round."""
  config = ml_collections.ConfigDict()
  config.policies = ('fixed:A(1,2)',)       # 'inas' and/or 'fixed:A(i,j)'.
  config.strategies = ('least_confidence',)  # Names from jal.query.QUERIES, 'autoal' or 'albl'.
  config.seeds = (0, 1, 2)                  # Paired: a seed fixes the initial labelled set of every method.
  config.baseline_policy = ''               # Paired AUBC differences against these policies ('' = none).
  config.skip = ()                          # 'policy/strategy' pairs not to run.
  config.oracle = 'simulated'               # 'human': queries go to workdir/queries/, answers come by --labels.
  config.initial = 'random'                 # The initial set: 'random', 'kmeans' or 'typiclust' (jal.cold_start).
  config.initial_labels = ''                # A CSV item_id,label of labels you have: they join the initial set.
  config.warm_start = False                 # Round models start from the previous round's (jal.inherit); the
                                            # paper trains each from scratch.
  config.progress_every = 30.0              # Seconds between progress lines per training (0: every epoch; <0: none).
  config.tensorboard = False                # True: TensorBoard events in workdir/tensorboard ('jal[tensorboard]').

  config.data = ml_collections.ConfigDict()
  config.data.name = data.DEFAULT_DATASET   # A TFDS name, 'folder' or 'arrays' (your images/.npy files, in data_dir).
  config.data.data_dir = ''
  config.data.download = False              # True: download and prepare a missing TFDS dataset (needs TensorFlow).
  config.data.pool_size = 10_000
  config.data.test_size = 2000
  config.data.split_seed = 0                # The pool/test split is shared by every seed.
  config.data.validation_size = 0           # Held out of the training data (never queried, never the test split).
  config.data.image_size = 0                # > 0: every image resized to this square size (area averaging).
  config.data.imbalance = 1.0               # > 1: a long-tailed pool, class K-1 this many times rarer than class 0.
  config.data.on_disk = False               # True: a TFDS pool stays in its files, read a row at a time.

  config.stop = ml_collections.ConfigDict()
  config.stop.stabilise = 0                 # K > 0: stop once K successive rounds' models agree on the stop set.
  config.stop.agreement = 0.99              # The kappa that counts as agreeing (Bloodgood & Vijay-Shanker, 2009).
  config.stop.set_size = 1000               # Pool items (drawn once per seed) the successive models are compared on.

  config.budget = ml_collections.ConfigDict()
  config.budget.initial = 100
  config.budget.per_round = 100
  config.budget.total = 600                 # The protocol was measured up to |L| = 600.
  config.budget.grown_per_round = 0         # 0: never grow.
  config.budget.grow_after = 0

  config.model = model_section()

  config.inas = ml_collections.ConfigDict()
  config.inas.max_steps = 1                 # T_iNAS.
  config.inas.validation_fraction = 0.2
  config.inas.candidate_fraction = 0.25     # Premature evaluation.
  config.inas.num_seeds = 1
  config.inas.score = 'best'
  config.inas.schedule = 'truncated'
  config.inas.max_blocks = 12
  config.inas.max_stacks = 5
  config.inas.min_feature_map = 2           # No candidate leaves a last feature map under 2x2 (jal.search_space).
  config.inas.inherited_fraction = 0.0      # Premature schedule of inherited candidates ('+inherit', '+lineage'
                                            # policies); 0: candidate_fraction.
  config.inas.choose = 'error'              # Or 'pareto': the smallest within one SE of the lowest error.

  # Search strategies other than iNAS (jal.nas), over the same space, V' and candidate training.
  config.nas = ml_collections.ConfigDict()
  config.nas.random_candidates = 3          # 'random_search': architectures per round (iNAS evaluates 3).
  config.nas.population = 3                 # 'evolution': population, cycles and tournament size per round.
  config.nas.cycles = 3
  config.nas.sample = 2
  config.nas.folds = 3                      # 'safe': k of the k-fold cross-validation on L.
  config.nas.evidence = 2.0                 # 'safe': a move needs this many paired SEs of out-of-fold advantage.
  config.nas.evidence_score = 'probability'  # 'safe': per-item score compared ('correct': accuracy); measured:
                                            # docs/results/safe_power_study_28x28.md.
  config.nas.start = ''                     # 'safe': the first round's architecture, e.g. 'A(2,4)' ('': A(1,1)).
  config.nas.candidate_fraction = 0.0       # 'safe': each fold model's schedule as a fraction of the round's
                                            # (0: inas.candidate_fraction, as iNAS's candidates).

  # The CPU protocol, chosen on the pool's labelled part and a held-out split (docs/results/schedule_study): 640
  # SGD steps per round is the shortest schedule at which A(1,2) and ResNet-18 fit every |L| <= 600 (train
  # accuracy >= 0.97) and validation accuracy has stopped rising (+0.006 from 480 to 640 steps, within its SE).
  config.train = train_section()
  config.train.epochs = 80
  config.train.examples_per_epoch = 1024
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long runs, for tests: 300 pool items, 20 -> 60 labels, width 4, two seeds."""
  config.seeds = (0, 1)
  config.data.pool_size = 300
  config.data.test_size = 200
  config.budget.initial = 20
  config.budget.per_round = 20
  config.budget.total = 60
  config.model.width = 4
  config.model.mc_passes = 5
  config.train.epochs = 2
  config.train.examples_per_epoch = 64
  config.train.batch_size = 32
  config.inas.candidate_fraction = 0.5
  config.inas.max_blocks = 2                # Few architectures: tests are compile-bound.
  config.inas.max_stacks = 2
  return config


def paper(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The active-iNAS protocol (§5.1, SPEC §2-3), field by field, for GPU/TPU: CIFAR-10 via TFDS, width 64,
  2000 -> 50,000 labels (2000 per round, 5000 after 10,000), 200 epochs of 50,000 examples, SGD (Nesterov 0.9,
  lr 0.1, x0.1 at 50% and 75%, decay 5e-4 on conv kernels), flips, 4-pixel shifts, rotations up to 15 degrees;
  iNAS with T = 1 on a 12 x 5 grid, an 80/20 split of L, candidates trained for the first quarter of the
  schedule (50 epochs at lr 0.1) and scored by their best validation accuracy; MC-dropout 0.5 with 100 passes.
  Every CPU-scale choice of the config it is applied to is undone here."""
  config.data.name = 'cifar10'
  config.data.pool_size = 0
  config.data.test_size = 0
  config.budget.initial = 2000
  config.budget.per_round = 2000
  config.budget.total = 50_000
  config.budget.grown_per_round = 5000
  config.budget.grow_after = 10_000
  config.model.width = 64
  config.model.conv_bias = True
  config.model.dropout_rate = 0.0
  config.model.mc_dropout_rate = 0.5
  config.model.mc_passes = 100
  paper_train = train_section()
  paper_train.epochs = 200
  paper_train.examples_per_epoch = 50_000
  paper_train.augment.shift = 4
  paper_train.augment.rotation = 15.0
  config.train = paper_train
  config.inas.max_steps = 1
  config.inas.validation_fraction = 0.2
  config.inas.candidate_fraction = 0.25
  config.inas.num_seeds = 1
  config.inas.score = 'best'
  config.inas.schedule = 'truncated'
  config.inas.max_blocks = 12
  config.inas.max_stacks = 5
  config.inas.min_feature_map = 1           # The paper's space: any map, 5 stacks on 32x32 included.
  config.inas.choose = 'error'
  return config


def apply_scale(config: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """'' (as is), 'smoke' or 'paper'; anything else is a ValueError."""
  if arg == 'smoke':
    return smoke(config)
  if arg == 'paper':
    return paper(config)
  if arg:
    raise ValueError(f"Unknown config argument {arg!r}; use '', 'smoke' or 'paper'.")
  return config


def names(value) -> tuple[str, ...]:
  """A config list as a tuple of names: ('a', 'b'), or 'a,b' from a flag; commas inside parentheses stay."""
  parts = [value] if isinstance(value, str | int) else list(value)
  return tuple(piece.strip() for part in parts for piece in re.split(r',(?![^(]*\))', str(part)) if piece.strip())


# --- Config -> library objects. ---


def reporting(config: ml_collections.ConfigDict, workdir: str):
  """The progress context of a binary: lines every `config.progress_every` s, TensorBoard if `config.tensorboard`."""
  return progress_lib.reporting(config.get('progress_every', 30.0),
                                os.path.join(workdir, 'tensorboard') if config.get('tensorboard', False) else None)


def load_data(config: ml_collections.ConfigDict, seed: int | None = None) -> data.Splits:
  """config.data -> Splits: 'folder' reads your images from data_dir (`jal.data.load_image_folder`), 'arrays' your
  .npy/.npz files (`jal.data.load_arrays`); a TFDS name
  is prepared first when `data.download` (seed: the split seed, default `data.split_seed`)."""
  if config.data.name in ('folder', 'arrays'):
    if not config.data.data_dir:
      raise ValueError(f'--config.data.name={config.data.name} needs --config.data.data_dir=/path/to/your/files.')
    return (data.load_image_folder if config.data.name == 'folder' else data.load_arrays)(config.data.data_dir)
  return data.load_splits(config.data.name, config.data.data_dir or None, config.data.get('validation_size', 0),
                          config.data.pool_size or None, config.data.test_size or None,
                          config.data.split_seed if seed is None else seed,
                          download=config.data.get('download', False),
                          image_size=config.data.get('image_size', 0) or None,
                          imbalance=config.data.get('imbalance', 1.0), on_disk=config.data.get('on_disk', False))


def train_config(section: ml_collections.ConfigDict) -> TrainConfig:
  """A config's `train` section as a TrainConfig."""
  fields = section.to_dict()
  fields['augment'] = AugmentConfig(**fields['augment'])
  fields['lr_boundaries'] = tuple(fields['lr_boundaries'])
  return TrainConfig(**fields)


def model_config(section: ml_collections.ConfigDict) -> ModelConfig:
  """A config's `model` section as a ModelConfig: the same for every strategy of a comparison."""
  return ModelConfig(section.width, section.conv_bias, section.dropout_rate, section.conv_impl,
                     section.get('cpu_fusions', 'default'), section.get('precision', 'float32'),
                     section.get('loss_prediction', False))


def inas_config(section: ml_collections.ConfigDict) -> inas_lib.INASConfig:
  """A config's `inas` section as an INASConfig (the grid from max_blocks x max_stacks)."""
  fields = section.to_dict()
  space = SearchSpace(fields.pop('max_blocks'), fields.pop('max_stacks'),
                      min_feature_map=fields.pop('min_feature_map', 1))
  fields['inherited_fraction'] = fields.get('inherited_fraction') or None  # 0: candidate_fraction.
  return inas_lib.INASConfig(space=space, **fields)


def autoal_config(section: ml_collections.ConfigDict) -> autoal_lib.AutoALConfig:
  """A config's `autoal` section as an AutoALConfig ('arch' as 'A(i,j)')."""
  fields = section.to_dict()
  fields['candidates'] = names(fields['candidates'])
  fields['arch'] = parse_architecture(fields['arch'])
  if not fields.get('batch_size'):
    fields['batch_size'] = None  # 0 in a config: the query's size.
  temperature = fields.get('temperature', 'calibrated')
  if isinstance(temperature, str) and temperature not in ('calibrated', 'std'):
    try:
      temperature = float(temperature)  # A fixed τ from a flag, e.g. '1e-11' (the official code's).
    except ValueError:
      pass  # AutoALConfig names the allowed values.
  fields['temperature'] = temperature
  return autoal_lib.AutoALConfig(**fields)


def albl_config(section: ml_collections.ConfigDict) -> albl_lib.ALBLConfig:
  """A config's `albl` section as an ALBLConfig (exploration 0: Auer et al.'s γ for the horizon)."""
  fields = section.to_dict()
  fields['candidates'] = names(fields['candidates'])
  fields['exploration'] = fields.get('exploration') or None
  return albl_lib.ALBLConfig(**fields)


# name -> factory(search settings, the experiment's config, its splits) -> policy. `register_policy` adds one.
PolicyFactory = Callable[[inas_lib.INASConfig, ml_collections.ConfigDict, data.Splits], loop.ArchitecturePolicy]
POLICIES: dict[str, PolicyFactory] = {
    'inas': lambda search, config, splits: inas_lib.inas_policy(search),
    'grid': lambda search, config, splits: nas_lib.grid_policy(search),
    'random_search': lambda search, config, splits: nas_lib.random_policy(search, config.nas.random_candidates),
    'evolution': lambda search, config, splits: nas_lib.evolution_policy(search, config.nas.population,
                                                                          config.nas.cycles, config.nas.sample),
    # A config without `evidence_score` predates it and compared correctness.
    'safe': lambda search, config, splits: nas_lib.safe_policy(search, config.nas.folds, config.nas.evidence,
                                                               config.nas.get('evidence_score', 'correct'),
                                                               config.nas.get('candidate_fraction', 0.0) or None,
                                                               search_start(config.nas.get('start', ''), search)),
}


def search_start(text: str, search: inas_lib.INASConfig):
  """A search's first architecture from its text ('A(2,4)' in the space's block, or 'A(bottleneck,2,4)'); None for
  '' (the space's root). The policy checks it against the input's space."""
  if not text:
    return None
  arch = parse_architecture(text)
  return arch if text.count(',') == 2 else dataclasses.replace(arch, block=search.space.block)


SEARCH_OPTIONS = {'inherit': ('inherit', 'round_model'), 'lineage': ('inherit', 'lineage'),
                  'pareto': ('choose', 'pareto')}


def register_policy(name: str, factory: PolicyFactory) -> None:
  """Makes `name` a policy a config can list (`config.policies`), e.g. a study's instrumented search."""
  if name in POLICIES or name.startswith('fixed:') or '+' in name:
    raise ValueError(f'Policy {name!r} is taken or malformed; registered: {sorted(POLICIES)}.')
  POLICIES[name] = factory


def make_policy(spec: str, search: inas_lib.INASConfig, config: ml_collections.ConfigDict | None = None,
                splits: data.Splits | None = None) -> loop.ArchitecturePolicy:
  """'fixed:A(i,j)' -> `loop.fixed`; a search's name ('inas', 'grid', 'random_search', 'evolution', or one
  registered with `register_policy`) -> its policy over `search` (settings of other strategies from `config.nas`).
  A search may carry options, e.g. 'inas+inherit': '+inherit' (candidates inherit the previous round's model) or
  '+lineage' (the previous search's chosen candidate, V' a persistent random share of L), which set
  `INASConfig.inherit`, and '+pareto' (the smallest candidate within one SE). Anything else is a ValueError."""
  config = config if config is not None else base_config()
  base, *options = spec.split('+')
  if base.startswith('fixed:'):
    if options:
      raise ValueError(f"Policy {spec!r}: options ('+inherit', '+lineage', '+pareto') apply to searches, not to "
                       f'{base!r}.')
    return loop.fixed(parse_architecture(base[len('fixed:'):]))
  if base not in POLICIES:
    raise ValueError(f'Unknown architecture policy {spec!r}; use one of {sorted(POLICIES)} (with options '
                     f"{', '.join('+' + o for o in SEARCH_OPTIONS)}) or 'fixed:A(i,j)'.")
  unknown = set(options) - set(SEARCH_OPTIONS)
  if unknown or {'inherit', 'lineage'} <= set(options):
    raise ValueError(f"Policy {spec!r}: options are '+inherit' or '+lineage' (one of them) and '+pareto'; got "
                     f'{sorted(options)}.')
  search = dataclasses.replace(search, **dict(SEARCH_OPTIONS[o] for o in options))
  return POLICIES[base](search, config, splits)


def pretrained_start(config: ml_collections.ConfigDict, policy_names: Sequence[str]) -> dict | None:
  """The variables of `config.model.init_from` (None without), checked against the grid before anything runs: a
  pretrained start fits one architecture, so every policy must be a fixed one."""
  path = config.model.get('init_from', '')
  if config.model.get('freeze', 'none') != 'none' and not path:
    raise ValueError(f'--config.model.freeze={config.model.freeze} freezes pretrained layers: set '
                     '--config.model.init_from=PATH too.')
  if not path:
    return None
  searched = [p for p in policy_names if not p.startswith('fixed:')]
  if searched:
    raise ValueError(f'--config.model.init_from fits one architecture, but the policies {searched} search over '
                     'several: use fixed:A(i,j) policies with a pretrained start.')
  if config.get('warm_start', False):
    raise ValueError('--config.model.init_from and --config.warm_start are two ways to start a round: use one.')
  return pretrained.load_variables(os.path.expanduser(path))


def pretrained_embedding(init: dict, policy: str, splits: data.Splits, config: ml_collections.ConfigDict
                         ) -> Callable[[object], np.ndarray]:
  """images -> [N, D] pooled features of the pretrained network (the first fixed policy's architecture): what a
  cold start clusters when `init_from` is given."""
  model = build_model(parse_architecture(policy.removeprefix('fixed:')), splits.pool.num_classes,
                      model_config(config.model))
  variables, _, _ = pretrained.fit_to(init, init_variables(model, jax.random.key(0), splits.pool.image_shape))
  return lambda images: np.asarray(predict(model, variables, images, to_host=True).embeddings)


def make_querier(name: str, config: ml_collections.ConfigDict) -> query.Querier:
  """A strategy name -> its querier: 'autoal' and 'albl' from the config's sections of those names, else the
  registered strategy."""
  if name in ('autoal', 'albl'):
    if name not in config:
      raise ValueError(f"Strategy {name!r} needs an `{name}` config section: use --config=autoal (or add one).")
    if name == 'albl':
      return albl_lib.ALBL(albl_config(config.albl))
    return autoal_lib.AutoAL(autoal_config(config.autoal))
  return query.as_querier(name, config.model.mc_passes, config.model.mc_dropout_rate)



def budget_schedule(config: ml_collections.ConfigDict, splits: data.Splits) -> loop.BudgetSchedule:
  """config.budget as a BudgetSchedule; your seed labels (an image or array folder's) are the initial set."""
  budget = config.budget
  initial = budget.initial
  if splits.pool.unknown_labels and np.any(splits.pool.labels >= 0):
    initial = int(np.sum(splits.pool.labels >= 0))
    logging.info('Initial labelled set: your %d seed labels.', initial)
  return loop.BudgetSchedule(initial, budget.per_round, budget.total, budget.grown_per_round or None,
                             budget.grow_after or None)


# --- The grid. ---

def complete(config: ml_collections.ConfigDict, rows: Sequence[dict], seed: int, policy: str | None = None
             ) -> bool:
  """Whether `rows` hold every round of every run of `seed` (and of `policy`, if given) that the config's grid
  makes, as a workdir's rounds.jsonl does when those runs finished: such a part of a grid need not run again,
  even on a machine without its checkpoints (a fresh clone of committed rows)."""
  budget = config.budget
  schedule = loop.BudgetSchedule(budget.initial, budget.per_round, budget.total, budget.grown_per_round or None,
                                 budget.grow_after or None)
  rounds = len(schedule.label_counts())
  skip = {tuple(method.split('/')) for method in names(config.get('skip', ()))}
  counts = collections.Counter((r['policy'], r['strategy'], r['seed']) for r in rows)
  stopped = {(r['policy'], r['strategy'], r['seed']) for r in rows if r.get('stop/stopped')}  # Ended by the rule.
  return all(counts[(p, s, seed)] == rounds or (p, s, seed) in stopped
             for p in ([policy] if policy else names(config.policies))
             for s in names(config.strategies) if (p, s) not in skip)


# Fields that choose which runs to make, not how a run goes: they may change between restarts of a workdir.
GRID_FIELDS = ('policies', 'strategies', 'seeds', 'skip', 'baseline_policy')


def run_config(config: ml_collections.ConfigDict) -> dict:
  """What determines every run of a grid besides (policy, strategy, seed): the config minus `GRID_FIELDS`."""
  return checkpoint.normalise_config({k: v for k, v in config.to_dict().items() if k not in GRID_FIELDS})


def _config_from_checkpoints(workdir: str) -> dict | None:
  """The run config recorded in any checkpoint of the workdir (without policy, strategy, seed), or None."""
  root = os.path.join(workdir, 'checkpoints')
  for run in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    try:
      meta = checkpoint.Checkpointer(os.path.join(root, run)).metadata_unchecked()
    except checkpoint.CheckpointError:
      continue
    if meta is not None:
      return {k: v for k, v in meta.get('config', {}).items() if k not in ('policy', 'strategy', 'seed')}
  return None


def check_workdir_config(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Records the config a workdir's runs are made with (config.json) and refuses a restart under another one
  (naming the differing fields), so that finished rows and checkpoints are never mixed across configs. A
  damaged config.json is rebuilt from the checkpoints' record of the config."""
  current = run_config(config)
  path = os.path.join(workdir, 'config.json')
  saved = None
  if os.path.exists(path):
    try:
      with open(path, encoding='utf-8') as f:
        saved = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
      saved = _config_from_checkpoints(workdir)
      logging.warning('%s is damaged (%s); %s.', path, error,
                      'rebuilt from the checkpoints' if saved is not None else 'no checkpoint records a config, '
                      'so it is written again from this one')
      if saved is not None:
        checkpoint.check_config(saved, current, f'The workdir {workdir} (its checkpoints)')
      saved = None
  if saved is not None:
    checkpoint.check_config(saved, current, f'The workdir {workdir}')
  else:
    write_atomically(path, json.dumps(current, indent=1))
  return current


def write_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file renamed over it: a reader never sees half a file (primary
  process only)."""
  if not checkpoint.is_primary():
    return
  try:
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      f.write(text)
    os.replace(path + '.tmp', path)
  except OSError as error:
    raise checkpoint.disk_error(error, path, 'write') from error


def _write_rows(path: str, rows: Sequence[dict]) -> None:
  write_atomically(path, ''.join(json.dumps(r) + '\n' for r in rows))


def append_row(path: str, row: dict) -> None:
  if not checkpoint.is_primary():
    return
  try:
    with open(path, 'a', encoding='utf-8') as f:
      f.write(json.dumps(row) + '\n')
  except OSError as error:
    raise checkpoint.disk_error(error, path, 'append a row to') from error


def write_labels(path: str, pool: data.Dataset, state: loop.LoopState) -> None:
  """The labelled set as a CSV, `item_id,label,class_name` in pool order (written whole, then moved into place):
  the labels a session has gathered, for use outside jal."""
  if not checkpoint.is_primary():
    return
  items = np.flatnonzero(state.labeled_mask)
  names = pool.class_names or tuple(str(c) for c in range(pool.num_classes))
  ids = pool.item_ids
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w', newline='', encoding='utf-8') as f:
      writer = csv.writer(f)
      writer.writerow(['item_id', 'label', 'class_name'])
      writer.writerows((ids[i], int(state.labels[i]), names[int(state.labels[i])]) for i in items)
    os.replace(path + '.tmp', path)
  except OSError as error:
    raise checkpoint.disk_error(error, path, 'write the labels to') from error


def run_slug(policy: str, strategy: str, seed: int) -> str:
  """A directory name for one run: 'fixed:A(1,2)', 'entropy', 0 -> 'fixed_A1-2__entropy__seed0'."""
  clean = lambda text: re.sub(r'[^A-Za-z0-9_.-]+', '_', text.replace(',', '-')).replace('(', '').strip('_')  # noqa: E731
  return f'{clean(policy)}__{clean(strategy)}__seed{seed}'


def run_grid(
    splits: data.Splits,
    policies: dict[str, loop.ArchitecturePolicy],
    queriers: dict[str, query.Querier],
    seeds: Sequence[int],
    loop_config_for: Callable[[query.Querier], loop.LoopConfig],
    rows_path: str,
    *,
    skip: Sequence[tuple[str, str]] = (),
    checkpoint_dir: str | None = None,
    config: dict | None = None,
    oracle=None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
  """Runs every (policy, strategy, seed) whose rounds are not all in `rows_path`; returns every row on file.

  A run's rows are rewritten from its checkpoint only after the checkpoint restored: a refused resume leaves the
  rows file as it was.

  Args:
    policies: name -> architecture policy; queriers: name -> querier (`make_policy`, `make_querier`).
    loop_config_for: querier -> its LoopConfig (MC-dropout strategies may train with dropout).
    skip: (policy, strategy) pairs not to run (e.g. random under iNAS).
    checkpoint_dir: if set, each run checkpoints in its own sub-directory after every phase and resumes there.
    config: what determines a run besides (policy, strategy, seed); a checkpoint written under another is refused.
    oracle: who labels (default: the pool's own labels); `jal.oracle.HumanOracle` for people.
    on_row: called with each new row (progress lines).
  """
  rows = report.read_rows(rows_path)
  todo = []
  for spec in policies:
    for name, querier in queriers.items():
      if (spec, name) in set(skip):
        continue
      num_rounds = len(loop_config_for(querier).schedule.label_counts())
      for seed in seeds:
        done = [r for r in rows if (r['policy'], r['strategy'], r['seed']) == (spec, name, seed)]
        if len(done) != num_rounds and not any(r.get('stop/stopped') for r in done):  # (Or ended by the stop rule.)
          todo.append((spec, name, seed))
  if not todo:
    logging.info('Every run is complete in %s; nothing to do.', rows_path)
  for spec, name, seed in todo:
    querier, config_for_run = queriers[name], loop_config_for(queriers[name])
    mine = lambda r, key=(spec, name, seed): (r['policy'], r['strategy'], r['seed']) == key  # noqa: E731
    checkpointer = resume = None
    if checkpoint_dir is not None:
      checkpointer = checkpoint.Checkpointer(os.path.join(checkpoint_dir, run_slug(spec, name, seed)),
                                             {**(config or {}), 'policy': spec, 'strategy': name, 'seed': seed})
      resume = loop.restore(checkpointer, splits, config_for_run, querier,
                            model_fn(splits.pool.num_classes, config_for_run.model))
    # Only now, with the checkpoint read: this run's rows are those of its checkpoint (none without one).
    rows[:] = [r for r in rows if not mine(r)]
    if resume is not None:
      rows.extend(dict(r, policy=spec, seed=seed) for r in resume[0].history)
      logging.info('%s: resuming at round %d after its %r phase.', checkpointer.directory, resume[0].round,
                   resume[1].phase)
    _write_rows(rows_path, rows)

    def record(state, spec=spec, name=name, seed=seed):
      row = dict(state.history[-1], policy=spec, seed=seed)
      append_row(rows_path, row)
      write_labels(os.path.join(os.path.dirname(rows_path), 'labels', run_slug(spec, name, seed) + '.csv'),
                   splits.pool, state)
      rows.append(row)
      if on_row is not None:
        on_row(row)

    with progress_lib.task(f'{spec} {name} seed {seed}'):
      loop.run(splits, config_for_run, querier, policies[spec], oracle, seed=seed, checkpointer=checkpointer,
               resume=resume, on_round=record)
  return rows


def run(config: ml_collections.ConfigDict, workdir: str, labels_file: str | None = None,
        on_row: Callable[[dict], None] | None = None) -> dict:
  """Runs (or resumes) the config's grid of policies x strategies x seeds; writes rows, tables and figures.

  Everything the config names is built and checked before anything is written to `workdir`. With config.oracle
  = 'human' (one policy, strategy and seed) each query is written to workdir/queries/ and the run stops with
  `jal.oracle.LabelsRequested`; `labels_file` answers the pending query.

  Returns:
    The summary: 'methods' (one entry per method, `jal.report.summarize`), 'table' and 'times' (markdown).
  """
  oracle_kind = config.get('oracle', 'simulated')
  if oracle_kind not in ('simulated', 'human'):
    raise ValueError(f"config.oracle must be 'simulated' or 'human', got {oracle_kind!r}.")
  if labels_file and oracle_kind != 'human':
    raise ValueError('--labels answers a human query: add --config.oracle=human.')
  if oracle_kind == 'human' and jax.process_count() > 1:
    raise ValueError('A human-labelled session runs in one process: start it without --coordinator_address.')
  splits = load_data(config)
  if config.get('initial_labels', ''):
    splits = dataclasses.replace(splits, pool=import_labels(splits.pool, os.path.expanduser(config.initial_labels)))
  if splits.pool.unknown_labels and oracle_kind != 'human':
    raise ValueError('This pool has unlabelled images that only people can label: add --config.oracle=human.')
  schedule = budget_schedule(config, splits)
  train_settings = dataclasses.replace(train_config(config.train), freeze=config.model.get('freeze', 'none'))
  search_settings = inas_config(config.inas)
  policy_names, strategy_names = names(config.policies), names(config.strategies)
  seeds = tuple(int(s) for s in names(config.seeds))
  skip = tuple(tuple(method.split('/')) for method in names(config.get('skip', ())))
  if any(len(method) != 2 for method in skip):
    raise ValueError(f"config.skip must be 'policy/strategy' pairs, got {config.skip!r}.")
  policies = {spec: make_policy(spec, search_settings, config, splits) for spec in policy_names}
  queriers = {name: make_querier(name, config) for name in strategy_names}
  init = pretrained_start(config, policy_names)
  embed = pretrained_embedding(init, policy_names[0], splits, config) if init is not None else None

  def loop_config_for(querier):
    # One model config for every strategy: two rows of a comparison differ in the query only. MC-dropout is
    # applied at query time; --config.model.dropout_rate=0.5 trains every strategy's model with dropout.
    del querier
    stop = config.get('stop', {})
    return loop.LoopConfig(schedule, train_settings, model_config(config.model), config.model.mc_passes,
                           config.model.mc_dropout_rate, bool(config.get('warm_start', False)),
                           stop.get('set_size', 1000), stop.get('stabilise', 0), stop.get('agreement', 0.99),
                           config.get('initial', 'random'), embed, init)

  needs_loss = [n for n in strategy_names if 'predicted_loss' in getattr(queriers[n], 'needs', ())]
  if needs_loss and not config.model.get('loss_prediction', False):
    raise ValueError(f'{needs_loss} read a loss-prediction module: add --config.model.loss_prediction=True (every '
                     "strategy's model then trains with it, so the rows differ in the query only).")
  for querier in queriers.values():
    loop_config_for(querier)  # Every model option checked before the workdir is touched.
  if schedule.total > len(splits.pool):
    raise ValueError(f'The total budget ({schedule.total}) exceeds the pool ({len(splits.pool)} items); lower '
                     '--config.budget.total or use a larger pool (--config.data.pool_size).')
  oracle = None
  if oracle_kind == 'human':
    if len(policies) * len(queriers) * len(seeds) != 1:
      raise ValueError('A human-labelled session runs one policy, one strategy and one seed; set '
                       '--config.policies, --config.strategies and --config.seeds to one each.')
    oracle = HumanOracle(splits, os.path.join(workdir, 'queries'), labels_file)
  with checkpoint.lock_directory(workdir):
    settings = check_workdir_config(config, workdir)
    # Which runs this grid makes, for `report_workdir` (not checked: a grid may grow between restarts).
    write_grid_record(workdir, config)
    start, recorded = time.perf_counter(), []

    def progress(row):
      if not recorded:  # A session that finished a round says where it ran; a refused one leaves no trace.
        _record_session(workdir)
        recorded.append(True)
      logging.info('%s', report.round_line(row, time.perf_counter() - start))
      progress_lib.round_scalars(row, f"{row['policy']}/{row['strategy']}/seed{row['seed']}")
      if on_row is not None:
        on_row(row)

    try:
      with reporting(config, workdir):
        run_grid(splits, policies, queriers, seeds, loop_config_for, os.path.join(workdir, 'rounds.jsonl'),
                 skip=skip, checkpoint_dir=os.path.join(workdir, 'checkpoints'), config=settings, oracle=oracle,
                 on_row=progress)
    except LabelsRequested as request:
      if oracle.imported:  # Say what the labels file answered before asking for the next one.
        logging.info('Imported %s.', oracle.imported)
        request.args = (f'Imported {oracle.imported}.\n{request}',)
      raise
    if oracle is not None and oracle.imported:
      logging.info('Imported %s.', oracle.imported)
  return report_workdir(workdir)


def grid_record(config: ml_collections.ConfigDict) -> dict:
  """What grid.json holds: the runs a config makes and how its report reads them."""
  return checkpoint.normalise_config(
      {'policies': names(config.policies), 'strategies': names(config.strategies),
       'seeds': [int(s) for s in names(config.seeds)], 'skip': list(names(config.get('skip', ()))),
       'baseline_policy': config.baseline_policy, 'title': f'{config.data.name}, width {config.model.width}'})


def write_grid_record(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes grid.json for `config`, keeping the policies, strategies and seeds an earlier grid.json of the workdir
  names: a grid run a seed (or a policy) at a time grows, and its report still reads the rows already there."""
  record, path = grid_record(config), os.path.join(workdir, 'grid.json')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      earlier = json.load(f)
    for field in ('policies', 'strategies', 'seeds'):
      merged = list(earlier.get(field, [])) + [x for x in record[field] if x not in earlier.get(field, [])]
      record[field] = sorted(merged) if field == 'seeds' else merged
  checkpoint.write_json(path, record)


def _cpu() -> tuple[str, str]:
  """The host CPU's model name ('AMD EPYC ...', else the machine type) and its vector extensions ('avx2 avx512f
  fma ...'; ARM: 'asimd sve ...'), which decide the kernels XLA compiles, as far as Linux's /proc/cpuinfo says."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      lines = f.read().splitlines()
  except OSError:
    lines = []

  def field(key):
    return next((line.split(':', 1)[1].split() for line in lines if line.split(':')[0].strip() == key), [])

  model = ' '.join(field('model name')) or platform.processor() or platform.machine()
  flags = field('flags') or field('Features')
  vector = sorted(f for f in flags if f.startswith(('avx', 'fma', 'amx', 'sse4', 'asimd', 'sve', 'neon')))
  return model, ' '.join(vector)


def _versions(packages: Sequence[str]) -> dict[str, str]:
  """Installed versions of `packages` ('' for one not installed)."""
  found = {}
  for name in packages:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = ''
  return found


def _record_session(workdir: str) -> None:
  """Appends where this session runs (backend, device, CPU and its vector extensions, versions, host) to sessions.jsonl.

  Rows made on a GPU and on a CPU agree in expectation, not bit for bit, and so may rows made on two CPU machines
  (one seed's round-0 model read 0.6755 test accuracy on one 2-core machine and 0.6580 on another, JAX 0.10.2 on
  both): a paired comparison wants each seed's runs made on one machine, and these lines say which made which."""
  device, (cpu, vector) = jax.devices()[0], _cpu()
  line = {'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'backend': jax.default_backend(),
          'device': device.device_kind, 'device_count': jax.device_count(), 'cpu': cpu, 'cpu_vector': vector,
          'jax': jax.__version__, 'packages': _versions(('jaxlib', 'flax', 'optax', 'numpy')),
          'host': socket.gethostname(), 'process_count': jax.process_count()}
  if not checkpoint.is_primary():
    return
  try:
    with open(os.path.join(workdir, 'sessions.jsonl'), 'a', encoding='utf-8') as f:
      f.write(json.dumps(line) + '\n')
  except OSError as error:
    raise checkpoint.disk_error(error, os.path.join(workdir, 'sessions.jsonl'), 'write') from error


def merge_workdirs(parts: Sequence[str], into: str, config: ml_collections.ConfigDict) -> dict:
  """Merges workdirs that ran parts of one grid (other seeds or policies, on other processes or machines) into
  `into` and writes its report; returns the summary as `run` does.

  Every part must have been run with `config`'s run settings (config.json, everything but the grid fields) and no
  two parts may hold rows of the same run. Rows already in `into` stay, except for a run a part holds at least as
  many rounds of (merging again as the parts progress). Rows of runs a part left unfinished are kept:
  `run(config, into)` reruns those runs (from their first round; their checkpoints stay in the part).

  Raises:
    checkpoint.CheckpointError: a part was run under other settings, or two parts ran the same run.
  """
  settings = run_config(config)
  rows, owner, sessions = [], {}, []
  for part in parts:
    with open(os.path.join(part, 'config.json'), encoding='utf-8') as f:
      checkpoint.check_config(json.load(f), settings, f'The part {part}')
    for row in report.read_rows(os.path.join(part, 'rounds.jsonl')):
      key = (row['policy'], row['strategy'], row['seed'])
      if owner.setdefault(key, part) != part:
        raise checkpoint.CheckpointError(
            f'{owner[key]} and {part} both hold rows of the run {key}: merge parts that ran disjoint runs.')
      rows.append(row)
    if os.path.exists(os.path.join(part, 'sessions.jsonl')):
      with open(os.path.join(part, 'sessions.jsonl'), encoding='utf-8') as f:
        sessions.extend(dict(json.loads(line), part=os.path.basename(os.path.normpath(part)))
                        for line in f if line.strip())
  with checkpoint.lock_directory(into):
    check_workdir_config(config, into)
    run_of = lambda r: (r['policy'], r['strategy'], r['seed'])  # noqa: E731
    earlier = report.read_rows(os.path.join(into, 'rounds.jsonl'))
    earlier_rounds, part_rounds = collections.Counter(map(run_of, earlier)), collections.Counter(map(run_of, rows))
    kept = [r for r in earlier if earlier_rounds[run_of(r)] > part_rounds[run_of(r)]]
    kept_runs = set(map(run_of, kept))
    rows = kept + [r for r in rows if run_of(r) not in kept_runs]
    write_grid_record(into, config)
    _write_rows(os.path.join(into, 'rounds.jsonl'), rows)
    sessions_path = os.path.join(into, 'sessions.jsonl')
    if os.path.exists(sessions_path):  # Sessions recorded by an earlier merge (or by runs in `into`) stay.
      with open(sessions_path, encoding='utf-8') as f:
        earlier_sessions = [json.loads(line) for line in f if line.strip()]
      sessions = earlier_sessions + [s for s in sessions if s not in earlier_sessions]
    write_atomically(sessions_path, ''.join(json.dumps(s) + '\n' for s in sessions))
  return report_workdir(into)


def report_workdir(workdir: str) -> dict:
  """Rewrites a grid's report (rounds.csv, summary.md/json, figures) from its rounds.jsonl and grid.json alone:
  the command behind every number the README quotes (`jal-report --results=docs/results`)."""
  if jax.process_count() > 1:  # The primary process has written every row before anyone reads them.
    multihost_utils.sync_global_devices('jal: rows written')
  with open(os.path.join(workdir, 'grid.json'), encoding='utf-8') as f:
    grid = json.load(f)
  rows = [r for r in report.read_rows(os.path.join(workdir, 'rounds.jsonl'))
          if r['policy'] in grid['policies'] and r['strategy'] in grid['strategies'] and r['seed'] in grid['seeds']]
  if not checkpoint.is_primary():
    baseline = grid['baseline_policy'] or None
    return {'methods': report.summarize(rows, baseline), 'table': '', 'times': ''}
  return report.write_outputs(rows, workdir, grid['title'], grid['baseline_policy'] or None)


# --- One training run (`jal-train`). ---


def train_defaults() -> ml_collections.ConfigDict:
  """The config of one training run: A(1,2) at width 16 on 1000 random Fashion-MNIST labels (~20 s on 2 cores)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_seeds = 1
  config.progress_every = 30.0              # Seconds between progress lines per training (0: every epoch; <0: none).
  config.tensorboard = False                # True: TensorBoard events in workdir/tensorboard ('jal[tensorboard]').
  config.data = ml_collections.ConfigDict()
  config.data.name = data.DEFAULT_DATASET   # Local IDX files; any other name is read through TFDS.
  config.data.data_dir = ''                 # '' = the loader's default location.
  config.data.download = False              # True: download and prepare a missing TFDS dataset (needs TensorFlow).
  config.data.num_labeled = 1000            # N random labelled examples from the pool.
  config.data.validation_size = 0
  config.data.image_size = 0                # > 0: every image resized to this square size (area averaging).
  config.data.imbalance = 1.0               # > 1: a long-tailed pool, class K-1 this many times rarer than class 0.
  config.data.pool_size = 0                 # 0 = the whole training split.
  config.data.test_size = 0                 # 0 = the whole test split.
  config.model = ml_collections.ConfigDict()
  config.model.arch = 'A(1,2)'
  config.model.width = 16                   # The paper's width is 64; 16 keeps CPU runs in minutes.
  config.model.conv_bias = True
  config.model.dropout_rate = 0.0
  config.model.conv_impl = 'auto'
  config.model.init_from = ''               # Pretrained variables to start from (an Orbax dir or a .msgpack file).
  config.model.freeze = 'none'              # 'backbone': train the head only.
  config.train = train_section()
  return config


def run_training(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `num_seeds` models of one architecture on N random labels, evaluates them on the test split,
  appends one JSON line to workdir/results.jsonl and saves the first seed's variables to
  workdir/variables/<arch>_n<labels>_seed<seed>.msgpack (a pretrained start: `--config.model.init_from`);
  returns that record."""
  start = time.perf_counter()
  splits = load_data(config, seed=config.seed)
  pool = splits.pool
  if not 0 < config.data.num_labeled <= len(pool):
    raise ValueError(f'data.num_labeled must be in [1, {len(pool)}], got {config.data.num_labeled}.')
  labeled = np.random.default_rng(config.seed).choice(len(pool), config.data.num_labeled, replace=False)
  labeled_mask = np.zeros(len(pool), bool)
  labeled_mask[labeled] = True
  arch = parse_architecture(config.model.arch)
  model = build_model(arch, pool.num_classes, model_config(config.model))
  settings = dataclasses.replace(train_config(config.train), freeze=config.model.get('freeze', 'none'))
  init = pretrained_start(config, [f'fixed:{arch}'])
  if init is not None:
    init, _, _ = pretrained.fit_to(init, init_variables(model, jax.random.key(config.seed), pool.image_shape))
  rngs = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  validation = (splits.validation.images, splits.validation.labels) if splits.validation else None
  with reporting(config, workdir), progress_lib.task(f'{arch} on {config.data.num_labeled} labels'):
    result = train(model, settings, pool.images, pool.labels, rngs, labeled_mask, validation, init=init)
  logging.info('Trained %s (%d params) on %d labels of %s, %d seed(s).', arch,
               count_params(result.state_for_seed(0).params), config.data.num_labeled, pool.name, config.num_seeds)
  accuracies = [evaluate(model, result.state_for_seed(i).variables, splits.test.images, splits.test.labels)
                ['accuracy'] for i in range(config.num_seeds)]
  record = {
      'dataset': config.data.name, 'arch': str(arch), 'width': config.model.width,
      'num_labeled': config.data.num_labeled, 'num_seeds': config.num_seeds,
      'test/accuracy': accuracies, 'test/accuracy_mean': float(np.mean(accuracies)),
      'train/seconds': result.seconds, 'total/seconds': time.perf_counter() - start,
      'train/images_per_second': result.num_seeds * settings.total_steps * settings.batch_size / result.seconds,
      'backend': jax.default_backend(), 'config': config.to_dict(),
      'train/curves': [result.curve(i) for i in range(result.num_seeds)],
  }
  os.makedirs(os.path.join(workdir, 'variables'), exist_ok=True)
  saved = os.path.join(workdir, 'variables', f'{arch}_n{config.data.num_labeled}_seed{config.seed}.msgpack')
  if checkpoint.is_primary():
    pretrained.save_variables(saved, result.state_for_seed(0).variables)
  record['variables'] = saved
  append_row(os.path.join(workdir, 'results.jsonl'), json.loads(json.dumps(record, default=str)))
  return record
