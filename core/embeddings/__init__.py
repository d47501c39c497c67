"""Embeddings: what the images mean to a model, stored per dataset and embedder.

``store`` (the memory-mapped float16 vectors and their files), ``embedders`` (which models
can embed a dataset, and the default), ``compute`` (incremental computation by content hash),
``search`` ("more like this"), ``projection`` (the 2-D map: PCA at once, UMAP in the
background), ``duplicates`` (semantic near-duplicates and leakage) and ``jobs`` (the
background process that computes them).
"""
