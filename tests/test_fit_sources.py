"""How result rows and CSV files become fit points: the learning-rate choice when some seeds
diverged, and bad input refused naming the file, row or field."""

import json
import re

import pytest

from jaxscale.fit import DivergedRowsWarning
from jaxscale.fit.sources import load_csv, load_source, rows_to_data


def _row(lr, seed, loss, diverged=False):
    return {"run_id": f"s-{lr}-{seed}", "name": "s", "config": {}, "params": 1.2e4,
            "non_embedding_params": 1e4, "seed": seed, "lr": lr, "batch_size": 8, "seq_len": 64,
            "steps": 100, "tokens": 1e6, "flops": 6e10, "val_loss": loss, "test_loss": loss,
            "diverged": diverged, "corpus": {"name": "t", "fingerprint": "x"}}


def test_a_rate_that_lost_a_seed_does_not_win_on_its_survivor():
    # lr 1e-2: seed 0 diverged, seed 1 survived with the lowest loss of all (a lucky survivor);
    # lr 1e-3 kept both seeds. Ranking by the survivors' mean alone picked the unstable rate.
    rows = [_row(1e-3, 0, 3.0), _row(1e-3, 1, 3.2),
            _row(1e-2, 0, float("nan"), diverged=True), _row(1e-2, 1, 2.5)]
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(rows)
    assert data.loss.tolist() == [pytest.approx(3.1)]
    assert any("1 learning rate(s) whose surviving seeds scored best were passed over" in n
               for n in data.notes)


def test_when_every_rate_lost_a_seed_the_survivors_still_decide():
    rows = [_row(1e-3, 0, float("nan"), diverged=True), _row(1e-3, 1, 3.2),
            _row(1e-2, 0, float("nan"), diverged=True), _row(1e-2, 1, 2.5)]
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(rows)
    assert data.loss.tolist() == [2.5]
    assert not any("passed over" in n for n in data.notes)


# --- bad input: each refused naming the file, row or column, and what was wrong ---------------

def _good_rows():
    return [_row(1e-3, 0, 3.0), {**_row(1e-3, 0, 2.8), "run_id": "big", "name": "b",
                                 "non_embedding_params": 1e5, "params": 1.2e5}]


@pytest.mark.parametrize("field, value, want", [
    ("tokens", None, "a finite number > 0, got None"),        # was float(None): TypeError
    ("tokens", "abc", "a finite number > 0, got 'abc'"),      # was "could not convert string to float"
    ("tokens", float("inf"), "a finite number > 0, got inf"),
    ("non_embedding_params", None, "a finite number > 0, got None"),   # TypeError
    ("non_embedding_params", 0, "a finite number > 0, got 0"),  # "(first at index 0)" after sorting
    ("non_embedding_params", -5, "a finite number > 0, got -5"),
    ("name", 7, "a string, got 7"),
    ("lr", [1], r"a finite number or null, got \[1\]"),          # unhashable type: 'list'
    ("seed", [0], r"a number, a string or null, got \[0\]"),     # unhashable type: 'list'
    ("test_loss", "3.1", "a number or null, got '3.1'"),         # was dropped as "no finite loss"
    ("val_loss", "x", "a number or null, got 'x'"),              # was ignored by the lr choice
    ("flops", -1.0, "a finite number > 0 or null, got -1.0"),    # was taken as the compute
])
def test_rows_to_data_names_the_row_and_field_of_a_wrongly_typed_value(tmp_path, field, value, want):
    rows = _good_rows()
    rows[1][field] = value
    with pytest.raises(ValueError, match=rf"^rows: row 1 \(from 0, run_id 'big'\): field '{field}' must be {want}$"):
        rows_to_data(rows)
    # from a file, the file is named too
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: rows: row 1 .*field '{field}'"):
        load_source(path)


def test_a_folder_where_a_file_is_expected(tmp_path):
    for name in ("runs", "runs.csv"):  # was "[Errno 21] Is a directory"
        (tmp_path / name).mkdir()
        with pytest.raises(ValueError, match=rf"{name}: is a folder; a file is expected"):
            load_source(tmp_path / name)


def test_bytes_that_are_not_utf8_name_the_file(tmp_path):
    for name in ("bin.csv", "bin.jsonl"):  # was "'utf-8' codec can't decode byte 0xff" (csv), no rows (jsonl)
        (tmp_path / name).write_bytes(b"\n\xff\xfe")
        with pytest.raises(ValueError, match=rf"{name}: not UTF-8 text \(byte 1\)"):
            load_source(tmp_path / name)


def test_a_csv_not_named_csv_is_not_called_a_corrupt_results_file(tmp_path):
    path = tmp_path / "runs.txt"
    path.write_text("N,loss\n1e4,3\n1e5,2.5\n")  # was "line 1 is not valid JSON ...; the file is corrupt"
    with pytest.raises(ValueError, match=r"runs.txt: not JSON Lines \(its first line is 'N,loss'\); "
                                         r"a CSV file must be named .csv$"):
        load_source(path)


@pytest.mark.parametrize("text, message", [
    # extra cells were dropped silently
    ("N,loss\n1e4,3,9,9\n3e4,2.8\n", r"row 2 has 4 cells for 2 columns$"),
    # the last N column won, then an error about the other column's numbers
    ("N,N,loss\n1e4,5,3\n3e4,5,2.8\n", r"column 'N' appears twice; keep one$"),
    ("N,n,loss\n1e4,5,3\n3e4,5,2.8\n", r"columns 'N' and 'n' are one column \(names are matched ignoring case\)"),
    # N was used and params ignored without a word
    ("N,params,loss\n1e4,5,3\n3e4,5,2.8\n", r"columns 'N', 'params' are aliases of one quantity \(N\); keep one"),
])
def test_csv_shapes_that_were_read_silently_are_refused(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {message}"):
        load_csv(path)


def test_csv_label_aliases_may_both_be_present_and_the_first_names_the_points(tmp_path):
    # "size" is a label alias: a table with both a name and a size column is ordinary
    path = tmp_path / "t.csv"
    path.write_text("name,size,N,loss\na,small,1e4,3\nb,big,3e4,2.8\n")
    assert load_csv(path).names == ("a", "b")


def test_csv_unnamed_columns_and_a_byte_order_mark_are_still_read(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffN,loss,,\n1e4,3,,\n3e4,2.8,,\n", encoding="utf-8")
    assert load_csv(path).N.tolist() == [1e4, 3e4]
