"""`python -m gatewatch ...` is the `gatewatch` command."""
from gatewatch.streams.cli.main import entrypoint

entrypoint()
