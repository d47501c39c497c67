"""Training: config, data path, engine, checkpoints, callbacks, runs and background jobs."""
