"""Errors the engine raises for bad user input.

Every message names where the problem is (the YAML path inside the spec, and the file when the
spec came from one), the bad value, and what would have been accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dsmnet.registry.errors import PluginError, UserError

Loc = Sequence[str | int]


def format_loc(loc: Loc) -> str:
    """Render a location tuple as a YAML path: ``("heads", "seg", "classes") -> heads.seg.classes``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<spec>"


class SpecError(UserError, ValueError):
    """A spec (or a variant generated from one) is invalid.

    Args:
        problems: one or more ``(loc, message)`` pairs, ``loc`` being the YAML path of the value.
        source: the file the spec was read from, if any.
    """

    def __init__(self, problems: Iterable[tuple[Loc, str]], source: str | None = None):
        self.problems = [(tuple(loc), msg) for loc, msg in problems]
        self.source = source
        super().__init__(self._render())

    @classmethod
    def at(cls, loc: Loc, message: str, source: str | None = None) -> SpecError:
        """One problem at one place."""
        return cls([(loc, message)], source)

    def with_source(self, source: str) -> SpecError:
        """The same problems, attributed to a file."""
        return SpecError(self.problems, source)

    def prefixed(self, prefix: Loc) -> SpecError:
        """The same problems, relocated under ``prefix`` (for nested validation)."""
        return SpecError([((*prefix, *loc), msg) for loc, msg in self.problems], self.source)

    def _render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        lines = [f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in self.problems]
        if len(lines) == 1:
            return head + lines[0]
        return head + f"{len(lines)} problems\n" + "\n".join(f"  {line}" for line in lines)


__all__ = ["Loc", "PluginError", "SpecError", "UserError", "format_loc"]
