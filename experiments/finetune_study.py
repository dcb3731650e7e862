r"""Which learning rate to fine-tune a pretrained backbone with at 100 labels, chosen on validation accuracy: the
measurement behind the pretrained start's advice (`--config.model.init_from`, `--config.model.freeze`).

  python experiments/finetune_study.py --seeds=3 > docs/results/finetune_study.md

A task unlike the pretraining one, made from Fashion-MNIST: the backbone (A(1,2), width 16) is trained on 5,000
training images of classes 0-4 (T-shirt, trouser, pullover, dress, coat); the target task is classes 5-9 (sandal,
shirt, sneaker, bag, ankle boot), whose training images are disjoint from those, with 100 labels drawn per seed,
1,000 held-out training images to choose on (validation) and the test split's classes 5-9 to report. Every setting
trains 640 SGD steps (the CPU protocol) on the same labels per seed; the head always starts fresh.
"""

import argparse

import jax
import numpy as np

from jal import data, pretrained
from jal.models import ModelConfig, build_model, init_variables
from jal.predict import evaluate
from jal.search_space import Architecture
from jal.train import TrainConfig, train

ARCH, MODEL = Architecture(1, 2), ModelConfig(width=16)
SETTINGS = (('from scratch', 0.1, 'none', False), ('fine-tune', 0.1, 'none', True), ('fine-tune', 0.03, 'none', True),
            ('fine-tune', 0.01, 'none', True), ('linear probe', 0.1, 'backbone', True))


def tasks(pretrain_size: int = 5000, validation_size: int = 1000):
  """(source images, labels), (target pool images, labels), (validation ...), (test ...): normalised, 5 classes each."""
  train_split, test_split = data.load_fashion_mnist('train'), data.load_fashion_mnist('test')
  mean, std = data.normalization_stats(train_split.images)
  norm = lambda x: ((x.astype(np.float32) / 255.0) - mean) / std  # noqa: E731
  order = np.random.default_rng(0).permutation(len(train_split.labels))
  labels = train_split.labels[order]
  source = order[labels < 5][:pretrain_size]
  target = order[labels >= 5]
  validation, pool = target[:validation_size], target[validation_size:]
  test = np.flatnonzero(test_split.labels >= 5)
  return ((norm(train_split.images[source]), train_split.labels[source]),
          (norm(train_split.images[pool]), train_split.labels[pool] - 5),
          (norm(train_split.images[validation]), train_split.labels[validation] - 5),
          (norm(test_split.images[test]), test_split.labels[test] - 5))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--labels', type=int, default=100)
  args = parser.parse_args()
  source, pool, validation, test = tasks()
  model = build_model(ARCH, 5, MODEL)
  schedule = dict(epochs=80, examples_per_epoch=1024, batch_size=128)
  backbone = train(model, TrainConfig(**schedule), *source, jax.random.key(100)).state_for_seed(0).variables
  backbone = jax.device_get(backbone)
  source_test = evaluate(model, backbone, *test)  # Its head is the source task's: chance-level here.
  without_head = {**backbone, 'params': {k: v for k, v in backbone['params'].items() if k != pretrained.HEAD}}
  results = {}
  for seed in range(args.seeds):
    labeled = np.zeros(len(pool[1]), bool)
    labeled[np.random.default_rng(seed).choice(len(pool[1]), args.labels, replace=False)] = True
    for name, lr, freeze, warm in SETTINGS:
      rng = jax.random.key(seed)
      init = pretrained.fit_to(without_head, init_variables(model, rng, pool[0].shape[1:]))[0] if warm else None
      result = train(model, TrainConfig(**schedule, learning_rate=lr, freeze=freeze), *pool, rng, labeled, init=init)
      variables = result.state_for_seed(0).variables
      results.setdefault((name, lr), []).append(
          (evaluate(model, variables, *validation)['accuracy'], evaluate(model, variables, *test)['accuracy']))
  print(f'# Fine-tuning a pretrained backbone at {args.labels} labels: {args.seeds} seeds\n')
  print(f'`python experiments/finetune_study.py --seeds={args.seeds}`. ' + __doc__.split('\n\n')[2].replace('\n', ' ')
        + f' The backbone with its source head scores {source_test["accuracy"]:.3f} on the target test split.\n')
  print('| start | learning rate | validation accuracy | test accuracy | validation − from scratch (paired) |')
  print('|---|---|---|---|---|')
  scratch = np.array([v for v, _ in results[('from scratch', 0.1)]])
  for (name, lr), scores in results.items():
    val, tst = np.array([v for v, _ in scores]), np.array([t for _, t in scores])
    diff = val - scratch
    se = lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0  # noqa: E731
    print(f'| {name} | {lr} | {val.mean():.4f} ± {se(val):.4f} | {tst.mean():.4f} ± {se(tst):.4f} | '
          + ('—' if name == 'from scratch' else f'{diff.mean():+.4f} ± {se(diff):.4f}') + ' |')
  best = max(results, key=lambda k: np.mean([v for v, _ in results[k]]))
  print(f'\nChosen on validation accuracy: {best[0]} at learning rate {best[1]}.')


if __name__ == '__main__':
  main()
