from streamchat.inputs import MAX_MESSAGE_CHARS, clean_user_message


def test_empty_and_whitespace_are_refused_with_a_message():
    assert clean_user_message("") == ("", "Type a message first.")
    assert clean_user_message(" \n\t")[0] == ""
    assert clean_user_message(None)[0] == ""


def test_huge_message_is_refused_with_its_size():
    text, problem = clean_user_message("x" * 200_000)
    assert text == "" and "200,000" in problem and f"{MAX_MESSAGE_CHARS:,}" in problem


def test_nul_and_lone_surrogates_are_cleaned():
    text, problem = clean_user_message("a\x00b \ud800 c 😀")
    assert text == "ab \ufffd c 😀" and "could not be read" in problem   # said, not silent
    text.encode("utf-8")  # must not raise
