"""Outputs killed mid-write: the next writer of the same output cleans up what was left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dsmnet.core.fsutil import OutputExistsError, atomic_dir, atomic_path, remove_stale, to_json


def _killed_writer(out, kind: str) -> None:
    """A real process that starts writing ``out`` and is SIGKILLed halfway."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from dsmnet.core.fsutil import atomic_dir, atomic_path
        out = Path({str(out)!r})
        writer = atomic_dir(out, overwrite=True) if {kind!r} == "dir" else atomic_path(out)
        with writer as tmp:
            (tmp / "part.mrc" if {kind!r} == "dir" else tmp).write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == -9


def test_a_killed_folder_writer_is_cleaned_up_by_the_next(tmp_path):
    out = tmp_path / "predictions"
    _killed_writer(out, "dir")
    left = list(tmp_path.glob(".predictions.*.tmp"))
    assert len(left) == 1 and (left[0] / "part.mrc").is_file()
    with atomic_dir(out) as tmp:
        (tmp / "done").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions"]
    assert (out / "done").read_text() == "ok"


def test_a_killed_file_writer_is_cleaned_up_by_a_cleaning_writer(tmp_path):
    out = tmp_path / "last.pt"
    _killed_writer(out, "file")
    assert len(list(tmp_path.glob(".last.pt.*.tmp"))) == 1
    with atomic_path(out, clean=True) as tmp:
        tmp.write_bytes(b"checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_live_writers_and_foreign_names_are_left_alone(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mine = tmp_path / f".out.{live.pid}.abc.tmp"
        mine.mkdir()
        foreign = tmp_path / ".out.notapid.tmp"
        foreign.mkdir()
        other = tmp_path / f".other.{2**22 + 7}.x.tmp"  # another output's name
        other.mkdir()
        assert remove_stale(tmp_path / "out") == []
        assert mine.is_dir() and foreign.is_dir() and other.is_dir()
    finally:
        live.kill()
        live.wait()
    assert remove_stale(tmp_path / "out") == [mine]


def test_an_output_caught_between_its_renames_is_put_back(tmp_path):
    out = tmp_path / "run"
    old = tmp_path / ".run.old"
    old.mkdir()
    (old / "result").write_text("earlier")
    with pytest.raises(OutputExistsError):  # the earlier output is back, and not overwritten unasked
        with atomic_dir(out):
            pass
    assert (out / "result").read_text() == "earlier" and not old.exists()
    os.rename(out, old)
    out.mkdir()  # killed after the second rename: the old copy is only debris
    remove_stale(out)
    assert not old.exists() and out.is_dir()


def test_to_json_is_json_with_each_list_of_numbers_on_one_line():
    record = {"confusion": [[3, 1], [0, 2]], "labels": [0, 1, None], "nested": {"a": [], "b": {}}, "x": 1.5}
    text = to_json(record)
    assert json.loads(text) == record and text.endswith("}\n")
    assert '"labels": [0, 1, null]' in text and "  [3, 1],\n  [0, 2]\n" in text


def test_atomic_outputs_get_the_permissions_of_ordinary_ones(tmp_path):
    import stat

    from dsmnet.core.fsutil import atomic_write_text

    (tmp_path / "ordinary.txt").write_text("x")
    (tmp_path / "ordinary").mkdir()
    atomic_write_text(tmp_path / "atomic.txt", "x")  # mkstemp's 0600 would hide it from the group
    with atomic_dir(tmp_path / "atomic") as tmp:  # and mkdtemp's 0700
        (tmp / "x").write_text("x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "ordinary.txt")
    assert mode(tmp_path / "atomic") == mode(tmp_path / "ordinary")
