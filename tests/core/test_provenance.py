"""The code revision a result records: the commit, and whether the code differed from it."""

from __future__ import annotations

import subprocess

from dsmnet.core import provenance


def test_revision_marks_code_changes_not_results_or_prose(tmp_path, tmp_path_factory, monkeypatch):
    def git(*args: str) -> str:
        run = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name, text in {"model.py": "x = 1\n", "README.md": "# r\n", "results/table.csv": "a\n", "fig.png": "p"}.items():
        (tmp_path / name).write_text(text)
    git("add", "-A")
    git("commit", "-qm", "start")
    head = git("rev-parse", "--short", "HEAD")
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    assert provenance.git_revision() == head
    (tmp_path / "README.md").write_text("# r, edited\n")  # a study writing its tables, a note edited
    (tmp_path / "results" / "table.csv").write_text("b\n")
    (tmp_path / "fig.png").write_text("q")
    (tmp_path / "new.py").write_text("y = 2\n")  # untracked: not part of the checkout's code
    assert provenance.git_revision() == head
    (tmp_path / "model.py").write_text("x = 2\n")
    assert provenance.git_revision() == head + "+changes"
    monkeypatch.setattr(provenance, "SOURCE", tmp_path / "results")  # not the root: still the whole checkout
    assert provenance.git_revision() == head + "+changes"
    monkeypatch.setattr(provenance, "SOURCE", tmp_path_factory.mktemp("plain"))  # no checkout at all
    assert provenance.git_revision() == "unknown"
