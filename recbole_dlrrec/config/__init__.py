"""The config layer: which keys exist, their types and valid values (keys), model lookup
(registry), and the one config stack that layers, checks and traces a run's settings (stack).

Sits below every other layer: it imports RecBole's Config, never a model, loader or experiment.
"""
