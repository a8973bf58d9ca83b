"""The fast re-read of a dataset's volumes gives what mrcfile gives, and its errors."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from dsmnet.dataset.mrc import DataError, read_mrc, read_volume, write_mrc


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.int16, np.float16])
def test_read_volume_reads_what_mrcfile_reads(tmp_path, dtype):
    data = (np.random.default_rng(0).normal(size=(6, 7, 8)) * 20).astype(dtype)
    path = tmp_path / "v.mrc"
    write_mrc(path, data, 10.0)
    np.testing.assert_array_equal(read_volume(path, (6, 7, 8), np.float32), read_mrc(path)[0])


def test_read_volume_with_an_extended_header_and_big_endian_bytes(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "big.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(">f4"))
        mrc.set_extended_header(np.zeros(10, dtype=[("x", "i4")]))
    assert read_mrc(path)[0].tolist() == data.tolist()
    np.testing.assert_array_equal(read_volume(path, (4, 5, 6)), data)


def test_read_volume_falls_back_to_mrcfile_and_its_errors(tmp_path):
    path = tmp_path / "v.mrc"
    write_mrc(path, np.ones((4, 4, 4), np.float32), 10.0)
    assert read_volume(path, (5, 5, 5)).shape == (4, 4, 4)  # another size: read as it is (the caller checks)
    short = tmp_path / "short.mrc"
    short.write_bytes(path.read_bytes()[:1100])
    with pytest.raises(DataError, match="short.mrc"):
        read_volume(short, (4, 4, 4))
    with pytest.raises(DataError, match="no such MRC file"):
        read_volume(tmp_path / "missing.mrc", (4, 4, 4))
