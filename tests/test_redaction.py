"""Secrets are redacted from free text only, as whole tokens, before any cut; saved runs stay intact
with a placeholder key like "x", and runs corrupted by the old redaction are repaired."""
import csv
import io
import json
import sqlite3
import time

import httpx2
import openai
import pytest

from streamchat import errors, export
from streamchat.generation import (
    DONE,
    FAILED,
    Endpoint,
    ErrorInfo,
    Generation,
    GenerationParams,
    GenerationRequest,
)
from streamchat.store import RUN_COLUMNS, Store, run_fields_from_generation


def generation(key, *, base_url="http://127.0.0.1:8080/v1", error=None, usage=True):
    g = Generation(GenerationRequest(messages=({"role": "user", "content": "hi"},),
                                     params=GenerationParams(temperature=0.7, max_tokens=128)))
    g.endpoint = Endpoint("remote", base_url, "qwen2.5-0.5b", key)
    t0 = time.perf_counter()
    g.t_sent, g.t_headers, g.bytes_received = t0, t0 + 0.05, 321
    for i, text in enumerate(("", "one", " two", " three")):
        g._record_chunk(t0 + 0.1 + 0.1 * i, text)
    if usage:
        g.usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    g.timings = {"predicted_n": 3, "predicted_per_second": 10.0, "prompt_ms": 12.5}
    g.finish_reason, g.model_reported = "length", "qwen2.5-0.5b-instruct"
    g._finish(FAILED if error else DONE, error)
    return g


def status_error(status, message):
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(status, request=request)
    return openai.APIStatusError(message, response=response, body={"error": {"message": message}})


# ---- redact ----------------------------------------------------------------------------------
def test_a_short_key_is_not_a_secret_and_a_key_inside_a_word_is_left_alone():
    text = "max_tokens approximate: none of the nonexistent models"
    for key in ("x", "none", "proxima"):
        assert errors.redact(text, (key,)) == text
    key = "localkey123"
    assert errors.redact(f"key {key}, not {key}9 or my{key} or {key}_old.", (key,)) == \
        f"key ***, not {key}9 or my{key} or {key}_old."


def test_key_looking_strings_are_redacted_whatever_their_case():
    text = "keys SK-ABCDEF123456, sk_live_abcdef123 and sk-proj-abc_def-123; bearer tok.en/1= done"
    assert errors.redact(text) == "keys ***, *** and ***; *** done"
    assert errors.redact("ask-questions task_manager_id risk-assessment") == \
        "ask-questions task_manager_id risk-assessment"


def test_url_credentials_are_stripped():
    assert errors.redact("Cannot reach http://alice:PASS@host:8000/v1 (and https://bob@h/x).") == \
        "Cannot reach http://host:8000/v1 (and https://h/x)."
    info = errors.classify(openai.APIConnectionError(request=httpx2.Request("POST", "http://host/v1")),
                           base_url="http://alice:PASS@host/v1")
    assert "PASS" not in info.message and "alice" not in info.message
    assert "http://host/v1" in info.message


def test_a_key_straddling_the_length_limit_leaks_no_part_of_it():
    key = "k3y-" + "Q7w9Z" * 8
    for secrets in ((key,), ()):
        padded = "x" * 295 + " " + (key if secrets else "sk-" + key)
        info = errors.classify(status_error(400, f"{padded} is not valid"), secrets=secrets)
        assert "Q7w9Z" not in info.message and "k3y-" not in info.message, info.message
        assert "x ***" in info.message


# ---- saved runs ------------------------------------------------------------------------------
def test_a_placeholder_key_leaves_saved_runs_and_exports_intact(tmp_path):
    store = Store(tmp_path)
    store.record_run(**run_fields_from_generation(generation("x", usage=False), source="compare",
                                                  local_token_count=3, local_token_source="approximate"))
    run = store.runs()[0]
    assert run["output_tokens_source"] == "approximate"
    assert (run["extra"]["itl_max_s"], run["extra"]["params"]["max_tokens"]) == (pytest.approx(0.1), 128)
    assert run["extra"]["finish_reason"] == "length"
    row = next(csv.DictReader(io.StringIO(export.runs_csv([run]))))
    assert row["output_tokens_source"] == "approximate"
    assert json.loads(row["extra"])["params"]["max_tokens"] == 128
    assert json.loads(export.runs_json([run]))[0]["extra"]["itl_max_s"] == pytest.approx(0.1)
    for text in (export.runs_csv([run]), export.runs_json([run])):
        assert "***" not in text


def test_the_saved_error_is_redacted_but_nothing_else(tmp_path):
    store = Store(tmp_path)
    key = "sk-" + "A1b2C3" * 8
    error = ErrorInfo("auth", f"Key {key} refused at http://alice:PASS@host/v1.", status=401)
    fields = run_fields_from_generation(generation(key, base_url="http://alice:PASS@host/v1",
                                                   error=error), source="chat")
    assert fields["error"] == "Key *** refused at http://host/v1."
    assert fields["base_url"] == "http://host/v1"
    store.record_run(**fields)
    assert store.runs()[0]["error"] == fields["error"]


# ---- migration 004 ---------------------------------------------------------------------------
def write_as_the_old_code_did(path, fields, key):
    """Insert `fields` with the key replaced in every text field, as store.py before 004 did."""
    old = {k: v.replace(key, "***") if isinstance(v, str) else v for k, v in fields.items()}
    old.setdefault("created_at", "2025-01-01T00:00:00+00:00")
    with sqlite3.connect(path) as conn:
        cur = conn.execute(f"INSERT INTO runs ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})",
                           list(old.values()))
        return cur.lastrowid


def add_chat(path, cid, mid):
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) "
                     "VALUES (?, 't', 'now', 'now')", (cid,))
        conn.execute("INSERT INTO messages (id, conversation_id, role, content, state, created_at, seq) "
                     "VALUES (?, ?, 'assistant', 'a', 'done', 'now', 1)", (mid, cid))


def test_migration_repairs_runs_written_with_a_short_key(tmp_path):
    store = Store(tmp_path)
    cid, mid = "c0ffee" + "1a" * 13, "bead" + "2b1" * 9 + "f"
    add_chat(store.path, cid, mid)
    expected, ids = {}, {}
    cases = {
        "x": dict(usage=False, count=dict(local_token_count=3, local_token_source="approximate")),
        "a": {},        # hits the ids (hex), "usage", "params", "chat", ...
        "l": {},        # hits JSON's null: the stored extra_json is not even valid JSON
        "1": {},        # only the ids tell: every known word is intact, numbers and URL are not
    }
    for key, case in cases.items():
        g = generation(key, usage=case.get("usage", True))
        fields = run_fields_from_generation(g, source="chat", conversation_id=cid, message_id=mid,
                                            **case.get("count", {}))
        ids[key] = write_as_the_old_code_did(store.path, fields, key)
        expected[key] = fields
    # Not repaired: a free-text error, and a run where nothing known was hit.
    lost = dict(expected["x"], error="Incorrect API key provided: x", model="mixtral")
    ids["lost-error"] = write_as_the_old_code_did(store.path, lost, "x")
    ids["nothing-known"] = write_as_the_old_code_did(store.path, {"source": "chat", "model": "gpt-4o-mini"},
                                                     "4o")
    with sqlite3.connect(store.path) as conn:
        assert "ma***_tokens" in conn.execute("SELECT extra_json FROM runs WHERE id = ?",
                                              (ids["x"],)).fetchone()[0]
        conn.execute("PRAGMA user_version = 3")
    store = Store(tmp_path)
    runs = {r["id"]: r for r in store.runs()}
    for key, fields in expected.items():
        run = runs[ids[key]]
        for column in RUN_COLUMNS:
            if column not in ("created_at", "extra_json", "owner"):
                # .get: a column the builder leaves out (visible_ttft_s, set later) stays NULL
                assert run[column] == fields.get(column), (key, column)
        assert run["extra"] == json.loads(fields["extra_json"]), key
    assert runs[ids["x"]]["output_tokens_source"] == "approximate"
    assert runs[ids["x"]]["extra"]["params"]["max_tokens"] == 128
    assert runs[ids["lost-error"]]["error"] == "Incorrect API key provided: ***"
    assert runs[ids["lost-error"]]["model"] == "mixtral"    # the key is known from the other fields
    assert runs[ids["lost-error"]]["extra"]["itl_max_s"] == pytest.approx(0.1)
    assert runs[ids["nothing-known"]]["model"] == "gpt-***-mini"
    assert "***" not in export.runs_json([runs[ids[k]] for k in expected])
