"""Runs exports: empty fields stay empty (no "nan"), times are ISO 8601 with their offset."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pandas as pd

from streamchat import export

KOLKATA = timezone(timedelta(hours=5, minutes=30))


def frame_records():
    """Records the way the Runs page makes them: through a DataFrame, so missing numbers are NaN."""
    runs = [
        {"id": 2, "mode": "non-stream", "state": "done", "ttft_s": 16.2, "decode_tps": None,
         "conversation_id": None, "error": None, "output_tokens": 40,
         "created_at": "2025-03-01T12:00:00.250000+00:00"},
        {"id": 1, "mode": "stream", "state": "failed", "ttft_s": None, "decode_tps": None,
         "conversation_id": "c1", "error": "HTTP 500", "output_tokens": None,
         "created_at": "2025-03-01T11:59:00+00:00"},
    ]
    frame = pd.DataFrame(runs)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601") \
        .dt.tz_convert(KOLKATA)
    return frame.to_dict("records")


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_writes_empty_fields_not_nan():
    text = export.runs_csv(frame_records())
    assert "nan" not in text.lower() and "NaT" not in text and "None" not in text
    first, second = parse_csv(text)
    assert first["decode_tps"] == "" and first["conversation_id"] == "" and first["error"] == ""
    assert second["ttft_s"] == "" and second["output_tokens"] == ""
    assert first["ttft_s"] == "16.2" and second["error"] == "HTTP 500"


def test_csv_empty_markers_of_every_kind():
    row = {"a": float("nan"), "b": None, "c": pd.NaT, "d": pd.NA, "e": 0, "f": 0.0, "g": "",
           "h": "x"}
    (out,) = parse_csv(export.runs_csv([row]))
    assert out == {"a": "", "b": "", "c": "", "d": "", "e": "0", "f": "0.0", "g": "", "h": "x"}


def test_csv_times_are_iso_8601_with_offset():
    first, second = parse_csv(export.runs_csv(frame_records()))
    assert first["created_at"] == "2025-03-01T17:30:00.250000+05:30"
    assert second["created_at"] == "2025-03-01T17:29:00+05:30"
    for row in (first, second):
        offset = datetime.fromisoformat(row["created_at"]).utcoffset()
        assert offset == timedelta(hours=5, minutes=30)
    utc = datetime(2025, 1, 2, 9, 30, tzinfo=timezone.utc)
    (plain,) = parse_csv(export.runs_csv([{"created_at": utc}]))
    assert plain["created_at"] == "2025-01-02T09:30:00+00:00"


def test_json_has_null_for_empty_fields_and_is_strict_json():
    text = export.runs_json(frame_records())

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    first, second = json.loads(text, parse_constant=refuse)
    assert first["decode_tps"] is None and first["conversation_id"] is None
    assert second["ttft_s"] is None and second["output_tokens"] is None
    assert first["output_tokens"] == 40 and first["ttft_s"] == 16.2
    assert first["created_at"] == "2025-03-01T17:30:00.250000+05:30"


def test_formula_guard_still_applies():
    (out,) = parse_csv(export.runs_csv([{"error": "=HYPERLINK(1)"}]))
    assert out["error"] == "'=HYPERLINK(1)"
