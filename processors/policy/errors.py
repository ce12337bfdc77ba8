"""PolicyError: a refused policy, always naming the file, the line and the problem."""
from __future__ import annotations


class PolicyError(ValueError):
    def __init__(self, file: str, line: int | None, problem: str):
        self.file, self.line, self.problem = file, line, problem
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {problem}")


class SignalError(ValueError):
    """A malformed signal record handed to the engine (the runtime sends it to the DLQ)."""
