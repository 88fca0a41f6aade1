"""Scenes: camera conventions, the built-in synthetic scene, train/test splits."""
