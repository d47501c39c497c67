"""Image data: safe decoding, datasets in the workspace, samples, caches."""
