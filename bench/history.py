"""The conversation history both bench apps are opened with (same texts, same sizes)."""
PARAGRAPH = ("Streaming shows the first words as soon as the server sends them; the whole reply "
             "takes about as long either way. ")


def history_messages(n: int) -> list[dict]:
    """`n` messages, user and assistant in turn, about 250 / 750 characters each."""
    return [{"role": "user", "content": f"Question {i // 2 + 1}: " + PARAGRAPH * 2} if i % 2 == 0
            else {"role": "assistant", "content": f"Answer {i // 2 + 1}. " + PARAGRAPH * 6}
            for i in range(n)]
