"""Offline token counting: never blocks on tiktoken's download, labels what it counted."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import tiktoken.load

from streamchat import tokens
from streamchat.tokens import TokenCount, count_text_tokens


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """An empty, isolated tiktoken cache, and any network fetch from the caller's thread fails."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    caller = threading.get_ident()
    downloads: list[str] = []

    def no_sync_network(blobpath):
        if "://" in blobpath and threading.get_ident() == caller:
            raise AssertionError(f"synchronous download of {blobpath}")
        return real_read_file(blobpath)

    def fake_download(url, sha256, path):
        assert threading.get_ident() != caller, "download must run in the background"
        downloads.append(url)

    real_read_file = tiktoken.load.read_file
    monkeypatch.setattr(tiktoken.load, "read_file", no_sync_network)
    monkeypatch.setattr(tokens, "_download", fake_download)
    monkeypatch.setattr(tokens, "_attempted_downloads", set())
    # Forget encodings loaded by other tests, except the offline one (saves ~0.1 s each).
    monkeypatch.setattr(tokens, "_encodings", {k: v for k, v in tokens._encodings.items() if k == tokens._OFFLINE})
    return downloads


def test_hello_world_is_two_cl100k_tokens():
    count = count_text_tokens("hello world", "some-llama-on-vllm")
    assert count == TokenCount(2, "approximate", "tiktoken cl100k_base (offline file, approximate)")


def test_openai_model_without_cached_encoding_is_approximate_and_fast(offline):
    t0 = time.monotonic()
    count = count_text_tokens("The quick brown fox.", "gpt-4o")
    assert time.monotonic() - t0 < 5
    assert count.source == "approximate" and count.n == 5
    # At most one background attempt per file, however many calls.
    count_text_tokens("again", "gpt-4o-mini")
    deadline = time.monotonic() + 2
    while not offline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert offline == ["https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"]


def test_no_download_when_disabled(offline, monkeypatch):
    monkeypatch.setattr(tokens, "background_download", False)
    assert count_text_tokens("hi", "gpt-4o").source == "approximate"
    time.sleep(0.05)
    assert offline == []


def test_cl100k_models_are_exact_offline():
    count = count_text_tokens("hello world", "gpt-4")
    assert count == TokenCount(2, "exact", "tiktoken cl100k_base (offline file)")
    assert count_text_tokens("hello world", "openai/gpt-3.5-turbo").source == "exact"


def test_corrupt_cached_file_is_not_trusted(tmp_path, offline):
    url, _ = tokens._FILES["o200k_base"]
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    bad = cache / hashlib.sha1(url.encode()).hexdigest()
    bad.write_bytes(b"garbage")
    assert count_text_tokens("hello world", "gpt-4o").source == "approximate"
    assert not bad.exists()  # removed, as tiktoken would, but without a synchronous re-download


def test_special_token_text_is_counted_as_text():
    assert count_text_tokens("<|endoftext|>", "gpt-4").n > 1


def test_tokenize_callable_is_exact():
    count = count_text_tokens("hello world", "SmolLM2", tokenize=lambda text: 7)
    assert count == TokenCount(7, "exact", "llama.cpp /tokenize")


def test_failing_tokenize_falls_back():
    def broken(text):
        raise ConnectionError("server gone")

    count = count_text_tokens("hello world", "SmolLM2", tokenize=broken)
    assert count.n == 2 and count.source == "approximate"


def test_usage_count_is_labelled_server():
    assert TokenCount.from_usage(12) == TokenCount(12, "server", "reported by the server (usage)")


def test_thread_safe_and_fast():
    results = []
    text = " ".join(["hello world"] * 10)

    def work():
        for _ in range(200):
            results.append(count_text_tokens(text, "gpt-4o").n)

    threads = [threading.Thread(target=work) for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - t0 < 5
    assert set(results) == {20}
