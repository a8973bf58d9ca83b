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


def test_an_archived_copy_of_the_code_still_names_its_commit(tmp_path, monkeypatch):
    """A study runs from a `git archive` of the checkout (so edits do not disturb it): the archive's
    provenance.py carries the commit's hash, and a copy with no .git beside it reports that."""
    source = provenance.SOURCE
    if subprocess.run(["git", "-C", str(source), "rev-parse"], capture_output=True).returncode:
        return  # this copy is itself an archive or a wheel: checked below without git
    head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    archived = subprocess.run(
        ["git", "-C", str(source), "archive", "HEAD", "core/provenance.py"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(tmp_path)], input=archived, check=True)
    text = (tmp_path / "core" / "provenance.py").read_text()
    assert f'ARCHIVED = "{head.stdout.strip()}"' in text
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)  # no checkout here
    monkeypatch.setattr(provenance, "ARCHIVED", head.stdout.strip())
    assert provenance.git_revision() == head.stdout.strip()
