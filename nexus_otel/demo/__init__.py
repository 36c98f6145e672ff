"""Simulated AI traffic for ``nexus-otel demo``: real clients, real decorators, fake providers."""
