class GatewatchError(Exception):
    """An error the CLI reports as one line on stderr with exit code 1."""
