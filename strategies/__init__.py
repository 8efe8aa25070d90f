"""Strategies: typed parameter declarations, the base class, the built-ins and the registry."""
