"""The house's floors (docs/design.md): every import of a ``dsmnet`` module points down a floor,
never up and never sideways into another package of the same floor."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a package may import its own modules and any package on a lower floor
FLOORS = [
    ("registry",),
    ("core",),
    ("backbones", "decoders", "heads", "losses"),
    ("dataset",),
    ("simulate",),
    ("training",),
    ("infer",),
    ("reproduce",),
    ("dsmnet",),  # the package root and its command line
]
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` — a module's old entry point, an alias of a ``dsmnet``
    subcommand that imports the command line (the top floor) only when run as a script."""
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test)


def _nodes(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if not _is_main_block(child):
            yield child
            yield from _nodes(child)


def imported_packages(path: Path):
    """(line, package) for every ``dsmnet.<package>`` a module imports, at any depth of the module."""
    for node in _nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "dsmnet"]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "dsmnet" and len(parts) > 1:  # dsmnet.cli, dsmnet.__main__: the root's floor
                yield node.lineno, parts[1] if parts[1] in FLOOR else "dsmnet"


def upward_imports(root: Path = ROOT) -> list[str]:
    found = []
    for package, level in FLOOR.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, target in imported_packages(path):
                if target != package and FLOOR[target] >= level:
                    found.append(
                        f"{path.relative_to(root)}:{line} imports dsmnet.{target} (floor {FLOOR[target]} ≥ {level})"
                    )
    return found


def test_every_import_points_down_a_floor():
    assert upward_imports() == []


def test_the_check_finds_an_upward_import(tmp_path):
    for package in FLOOR:
        (tmp_path / package).mkdir()
    (tmp_path / "dataset" / "bad.py").write_text("def f():\n    from dsmnet.training.loop import train\n")
    (tmp_path / "heads" / "side.py").write_text("import dsmnet.losses.registry\n")
    (tmp_path / "infer" / "fine.py").write_text(
        "from dsmnet.training import step\nfrom dsmnet.infer import sources\n"
        "if __name__ == '__main__':\n    from dsmnet.cli import main\n"
    )
    assert upward_imports(tmp_path) == [
        "heads/side.py:1 imports dsmnet.losses (floor 2 ≥ 2)",
        "dataset/bad.py:2 imports dsmnet.training (floor 5 ≥ 3)",
    ]


def test_every_package_is_on_a_floor():
    import tomllib

    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    assert set(folders) - {"specs"} == set(FLOOR)  # the shipped specs are data


def test_a_wheel_ships_every_subpackage():
    """A non-editable install holds only the listed packages: a folder with an ``__init__.py``
    missing from the list (``dsmnet.cli`` once was) works in the editable checkout and is absent
    from a wheel."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, folders = set(tool["packages"]), tool["package-dir"]
    found = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    assert found == listed


def oversized(root: Path = ROOT, module_lines: int = 350, function_lines: int = 60) -> list[str]:
    """Modules of the package over ``module_lines`` lines, and functions over ``function_lines``."""
    found = []
    for package in FLOOR:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(root)
            if text.count("\n") > module_lines:
                found.append(f"{name}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > function_lines:
                        found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_every_room_is_small_enough_to_read():
    assert oversized() == []
