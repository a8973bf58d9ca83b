"""The one base of every error a user can cause, at the bottom of the layering (registry → core →
components → simulate → training → reproduce → cli), so that each layer's errors derive from it
without importing upwards, and the CLI catches this class and nothing else: one line, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a bad spec or plugin, an output in the way: the message says what and where."""


class PluginError(UserError, RuntimeError):
    """A plugin could not be loaded, or two plugins registered the same name."""
