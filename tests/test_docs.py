"""The documentation site builds in strict mode (a broken link, anchor or API reference fails),
and the README stays a front door."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra (pip install -e '.[dev]') builds the site")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)


def test_the_site_builds_strictly_with_every_page_and_command(tmp_path):
    r = build(ROOT, tmp_path / "site")
    assert r.returncode == 0, r.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("train", "predict", "baseline", "template-match", "paired", "views", "separability"):
        assert f'id="dsmnet-{command}"' in cli
    api = (tmp_path / "site" / "reference" / "training" / "index.html").read_text()
    assert 'id="dsmnet.training.settings.RunSettings"' in api  # the API pages read the docstrings


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "repo"
    for name in ("docs", "results"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("*.png", "metrics", "runs"))
    for name in ("mkdocs.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("dsmnet", "core", "registry", "backbones", "decoders", "heads", "losses", "dataset", "simulate",
                 "training", "infer", "reproduce", "specs"):  # fmt: skip
        (copy / name).symlink_to(ROOT / name)
    page = copy / "docs" / "training.md"
    text = page.read_text()
    for broken in ("[x](nowhere.md)", "[the schedules](evaluation.md#no-such-anchor)"):
        page.write_text(text + f"\nSee {broken}.\n")
        r = build(copy, tmp_path / "site")
        assert r.returncode != 0 and broken.split("(")[1].rstrip(")") in r.stderr + r.stdout, broken


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert any("pip install -e ." in line for line in lines) and any("make demo" in line for line in lines)
