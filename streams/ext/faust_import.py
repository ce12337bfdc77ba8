"""faust is the optional extra `gatewatch[faust]`: importing the kit without it says how to install it."""
from __future__ import annotations

from gatewatch.streams.runtime.errors import GatewatchError

try:
    import faust
except ImportError:
    raise GatewatchError("the extension kit needs faust: pip install 'gatewatch[faust]'") from None

__all__ = ["faust"]
