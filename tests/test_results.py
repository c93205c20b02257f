"""Result rows: atomic appends, NaN-safe JSON, and a truncated last line reported, not fatal."""


import pytest

from jaxscale.results import TruncatedRowWarning, append_row, append_rows, read_rows


def test_round_trip_and_nan_becomes_null(tmp_path):
    path = tmp_path / "r.jsonl"
    append_rows(path, [{"a": 1, "loss": float("nan")}, {"a": 2, "loss": 1.5}])
    rows = read_rows(path)
    assert rows == [{"a": 1, "loss": None}, {"a": 2, "loss": 1.5}]


def test_truncated_last_line_is_reported_and_rest_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    append_row(path, {"a": 1})
    append_row(path, {"a": 2})
    with open(path, "a") as f:
        f.write('{"a": 3, "los')
    with pytest.warns(TruncatedRowWarning, match="last line 3 is truncated"):
        rows = read_rows(path)
    assert rows == [{"a": 1}, {"a": 2}]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_rows(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_rows(tmp_path / "none.jsonl")
