"""Read-only share links in the store: unguessable tokens, owner-only listing and revoking, and a
lookup that tells unknown, revoked and gone apart (migration 009)."""
from __future__ import annotations

import base64

import pytest

from streamchat import migrations
from streamchat.store import ShareStatus


@pytest.fixture
def store(backend_store):
    """On SQLite and on PostgreSQL."""
    return backend_store


def test_a_share_link_shows_one_conversation_until_revoked(store):
    cid = store.create_conversation(owner="alice")
    token = store.create_share("alice", conversation_id=cid)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    assert token != store.create_share("alice", conversation_id=cid)   # each link its own token
    found = store.resolve_share(token)
    assert found.ok and found.share["conversation_id"] == cid and found.share["run_id"] is None
    assert [s["token"] for s in store.list_shares("alice")][1] == token   # newest first
    assert store.list_shares("bob") == []
    assert not store.revoke_share(token, "bob")                       # not his
    assert store.resolve_share(token).ok
    assert store.revoke_share(token, "alice")
    assert not store.revoke_share(token, "alice")                     # once
    assert store.resolve_share(token).status == ShareStatus.REVOKED
    assert token not in [s["token"] for s in store.list_shares("alice", include_revoked=False)]


def test_unknown_and_deleted_are_told_apart(store):
    assert store.resolve_share("nope").status == ShareStatus.UNKNOWN
    assert store.resolve_share("").status == ShareStatus.UNKNOWN
    assert store.resolve_share(None).status == ShareStatus.UNKNOWN
    assert store.resolve_share("x" * 1000).status == ShareStatus.UNKNOWN
    cid = store.create_conversation(owner="alice")
    token = store.create_share("alice", conversation_id=cid)
    store.delete_conversation(cid)
    assert store.resolve_share(token).status == ShareStatus.GONE


def test_only_the_owner_can_share_and_a_run_can_be_shared(store):
    cid = store.create_conversation(owner="alice")
    with pytest.raises(PermissionError):
        store.create_share("bob", conversation_id=cid)
    with pytest.raises(KeyError):
        store.create_share("alice", conversation_id="missing")
    with pytest.raises(ValueError):
        store.create_share("alice")
    run_id = store.record_run(source="compare", owner="alice", model="m")
    token = store.create_share("alice", run_id=run_id)
    assert store.resolve_share(token).share["run_id"] == run_id
    with pytest.raises(PermissionError):
        store.create_share("bob", run_id=run_id)
    # Single-user mode (no owner): anything can be shared, and listed under None.
    single = store.create_share(None, conversation_id=cid)
    assert [s["token"] for s in store.list_shares(None)] == [single]


def test_recordings_go_with_their_conversation(store):
    cid = store.create_conversation(owner="alice")
    mid = store.add_message(cid, "assistant", "hi")
    store.save_recording(b"packed", message_id=mid)
    assert store.recording_data(message_id=mid) == b"packed"
    assert store.recorded_messages(cid) == {mid}
    store.delete_conversation(cid)
    assert store.recording_data(message_id=mid) is None


def test_migrations_008_and_009_are_idempotent(store):
    with store._connect(write=True) as conn:
        conn.set_schema_version(7)
    store._open()   # applies 008 and 009 again over the existing tables
    assert store.schema_version == len(migrations.MIGRATIONS) >= 9
