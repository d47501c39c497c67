"""ImageLab's engine: workspace store, data, labels, training, evaluation, inference.

Nothing in this package imports streamlit; every job here also runs headless
through ``python -m core``.
"""

__version__ = "0.1.0"
