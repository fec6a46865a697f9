from streamchat.replies import history_for_request, left_out, trim_more


def msg(role, content="x", state="done"):
    return {"role": role, "content": content, "state": state}


def test_failed_and_empty_replies_are_not_sent():
    history = history_for_request([msg("user", "q"), msg("assistant", "", "failed"),
                                   msg("assistant", "partial", "stopped"), msg("user", "again")],
                                  system_prompt="be brief")
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user"]


def test_trimming_cuts_before_a_user_message_so_turns_still_alternate():
    base = [msg("user"), msg("assistant"), msg("user"), msg("assistant"), msg("user"),
            msg("assistant"), msg("user", "the question")]
    first = trim_more(base, 0)
    assert base[first]["role"] == "user" and 0 < first < 6
    sent = history_for_request(base, skip_oldest=first)
    assert sent[0]["role"] == "user" and sent[-1]["content"] == "the question"
    second = trim_more(base, first)
    assert first < second <= 6 and base[second]["role"] == "user"
    assert trim_more(base, 6) == 6          # only the question is left: nothing more to cut


def test_left_out_counts_only_messages_that_would_have_been_sent():
    base = [msg("user"), msg("assistant", "", "failed"), msg("assistant"), msg("user")]
    assert left_out(base, 3) == 2
