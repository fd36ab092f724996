"""A local Microsoft Sentinel: Entra sign-in, the ARM incidents API, and Logs Ingestion.

Entry points: :class:`SentinelEmulatorServer` (background thread, tests), :func:`serve_forever`
(foreground, the CLI), :func:`settings_for` (settings from command-line style arguments) and
:func:`destination_toml` (the xdrsync ``[[destinations]]`` block for a running emulator).
"""

from xdrsync.emulator.sentinel.clientconfig import destination_toml
from xdrsync.emulator.sentinel.server import SentinelEmulatorServer, serve_forever
from xdrsync.emulator.sentinel.settings import SentinelFaults, SentinelSettings, settings_for

__all__ = [
    "SentinelEmulatorServer",
    "SentinelFaults",
    "SentinelSettings",
    "destination_toml",
    "serve_forever",
    "settings_for",
]
