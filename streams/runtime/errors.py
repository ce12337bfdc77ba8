class GatewatchError(Exception):
    """An error the CLI reports as one line on stderr with exit code 1."""


class ExitStatus(GatewatchError):
    """End a command with this exit code; the message (if any) is the one line on stderr."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message)
        self.code = code
