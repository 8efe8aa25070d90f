"""Entry points: the CLI, the Ray Serve control API, metrics export and cluster bootstrap."""
