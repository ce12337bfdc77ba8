"""Durable effects: the WORM sink and the rollback executor."""
