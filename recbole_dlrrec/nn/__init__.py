"""Torch-only building blocks, torchrec-style: arches with typed constructor arguments and
shapes in their docstrings. Nothing here imports RecBole or reads a Config."""
