"""The config layer: which keys exist and their types (keys), model lookup (registry).

Sits below every other layer: it imports RecBole's Config, never a model, loader or experiment.
"""
