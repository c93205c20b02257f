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


def _read_strictly(path):
    """``read_rows`` with its truncation warning turned into an error: the file must be whole."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedRowWarning)
        return read_rows(path)


def test_append_after_a_truncated_last_line_cuts_it_off_first(tmp_path):
    """An append used to glue its row onto the fragment ``read_rows`` skips; at the next append
    that glued line was a middle line, and the whole file was refused as corrupt."""
    path = tmp_path / "r.jsonl"
    append_rows(path, [{"a": 1}, {"a": 2}])
    with open(path, "a") as f:
        f.write('{"a": 3, "los')
    with pytest.warns(TruncatedRowWarning, match="dropped the unreadable last line"):
        append_row(path, {"a": 3})
    append_row(path, {"a": 4})
    assert _read_strictly(path) == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    assert path.read_bytes().endswith(b'{"a": 4}\n')


def test_append_after_an_unreadable_last_line_with_its_newline_cuts_it_off(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\x00\x00\x00\n')  # what read_rows skips as its last line
    with pytest.warns(TruncatedRowWarning):
        append_row(path, {"a": 2})
    assert _read_strictly(path) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("text", ['{\n  "a": 1\n}\n', '{\n  "a": 1\n}', '{"a": 1}\nnot a row\n'])
def test_append_refuses_a_file_that_is_not_a_results_file_and_cuts_nothing(tmp_path, text):
    # pretty-printed JSON ends in "}": cutting it as a "truncated row" destroyed another file
    path = tmp_path / "results.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match="its last line is not a result row"):
        append_row(path, {"a": 2})
    assert path.read_text() == text


def test_a_line_that_is_json_but_not_an_object_is_refused_by_name(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnull\n{"a": 2}\n')
    with pytest.raises(ValueError, match=r"line 2 is not a result row \(a JSON object\), but NoneType"):
        read_rows(path)
    with pytest.raises(ValueError, match="is a folder"):
        read_rows(tmp_path)


def test_append_keeps_a_complete_last_row_that_lacks_its_newline(tmp_path):
    """A readable last line is a row: it gets its newline, it is never cut."""
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    append_row(path, {"a": 3})
    assert _read_strictly(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_write_rows_replaces_the_file_with_json_safe_rows(tmp_path):
    from jaxscale.results import write_rows

    path = tmp_path / "selected.jsonl"
    write_rows(path, [{"a": 1, "loss": float("nan")}])
    write_rows(path, [{"a": 2, "loss": 1.5}])
    assert _read_strictly(path) == [{"a": 2, "loss": 1.5}]
    assert not (tmp_path / "selected.jsonl.tmp").exists()
