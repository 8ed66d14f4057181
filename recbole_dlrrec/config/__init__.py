"""The config layer: which keys exist, their types and valid values (keys), model lookup
(registry), the one config stack that layers, checks and traces a run's settings (stack), and
the typed options objects a model reads its keys through (options).

Sits below every other layer: it imports RecBole's Config, never a model, loader or experiment.
"""
