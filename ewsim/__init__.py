"""ewsim: a loopback Exchange Web Services simulator for unmodified exchangelib.

Standalone (no Django). See README.md.
"""

from __future__ import annotations

from .server import EwsServer

__all__ = ["EwsServer"]
