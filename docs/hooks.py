"""mkdocs hook: the command-line page shows every ``dsmnet`` command's own ``--help``, so it
cannot drift from the code."""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.plugins import event_priority

MARKER = "<!-- dsmnet-help -->"


def _helps() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width
    from dsmnet.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = ["## dsmnet\n\n```\n" + parser.format_help() + "```\n"]
    for name, command in sub.choices.items():
        parts.append(f"## dsmnet {name}\n\n```\n{command.format_help()}```\n")
    return "\n".join(parts)


@event_priority(100)  # before mkdocstrings reads its `paths`, which must exist by then
def on_config(config, **kwargs):
    """The package as the API reference reads it: its subpackages live in folders of their own
    (``core/`` is ``dsmnet.core``, as ``pyproject.toml`` maps them), so a tree of links in
    ``build/docs-src/dsmnet`` puts each where its dotted name says (``paths`` in mkdocs.yml)."""
    import shutil
    import tomllib

    root = Path(config["config_file_path"]).parent
    mapped = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    tree = root / "build" / "docs-src"
    shutil.rmtree(tree, ignore_errors=True)
    folders = {"dsmnet": root / "dsmnet"} | {n: root / f for n, f in mapped.items() if n != "dsmnet"}
    for name, folder in folders.items():
        for source in folder.rglob("*.py"):  # each file linked (the reader does not follow linked folders)
            relative = source.relative_to(folder)
            if name == "dsmnet" and relative.parts[0] in {n.split(".")[1] for n in folders if "." in n}:
                continue
            target = tree / name.replace(".", "/") / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return config


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    return markdown.replace(MARKER, _helps()) if MARKER in markdown else markdown
