"""``python -m core``: the headless face of every ImageLab job."""
