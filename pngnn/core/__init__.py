"""The ground floor: errors, constants, environment settings, training configurations and profiles.

Owns what every other layer reads and nothing else: ``errors`` (the one-line ``PngnnError``
family), ``constants``, ``settings`` (``PNGNN_*`` environment variables, pydantic-settings),
``config`` (``TrainConfig``, the built-in profiles), ``profiles`` (tuned profiles as JSON),
``preflight`` (is a server reachable), ``runtime`` (torch threads, worker environment) and
``provenance`` (the git commit of a record). May import only the standard library and
third-party packages: no other ``pngnn`` layer.
"""
