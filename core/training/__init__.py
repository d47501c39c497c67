"""Training: config, data path, the trainer, checkpoints, callbacks, runs and background jobs.

``optim`` (optimizer, schedule), ``trainer`` (state, callback hooks), ``loop`` (batch, step,
epochs, validation), ``callbacks`` (reports, checkpoints, early stopping, label-review
predictions), ``run`` (build, fit, a whole run), ``estimate`` (time per epoch).
"""
