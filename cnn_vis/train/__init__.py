"""Training the AlexNet family (Krizhevsky, Sutskever & Hinton 2012, §4-§6).

- state.py: TrainState (params, batch stats, optimiser state, plateau state, PRNG key, step).
- optim.py: the paper's SGD (momentum 0.9, weight decay 5e-4 inside the momentum), lr schedules
  and the divide-by-10-on-plateau rule.
- steps.py: pure, jittable train_step / eval_step / predict (on-device augmentation, centre or
  ten-crop evaluation).
- ensemble.py: N members over a leading axis in one compiled step; averaged-softmax evaluation.
- parallel.py: 1-D `data` mesh over all devices of all hosts; sharded batches, replicated state.
- checkpoint.py: orbax checkpoints (atomic, resumable) and load_variables(path) for the loader.
- loop.py: train_and_evaluate(config, workdir), the loop that ties them to data, evaluation,
  checkpoints and logs (experiments/train.py adds the report).
"""
