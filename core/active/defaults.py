"""The simulated-oracle experiment's default settings, in a module that imports nothing, so
the CLI's parser (``python -m core al-bench --help``) and the page's form read them without
loading torch."""

DEFAULT_ROUNDS = 30
DEFAULT_SEEDS = 3
DEFAULT_TARGET = 0.95
DEFAULT_START_PER_CLASS = 2
