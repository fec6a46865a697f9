"""How long a test waits for "promptly".

Latency targets (Stop reaches the server within 250 ms, …) are measured and compared by `make bench`;
a timed assertion in the suite would flake on a loaded 2-core CI box. A test only proves that the event
followed from its cause, and not from the end of the stream: every script that uses this bound keeps
streaming for far longer than PROMPTLY_S.
"""
PROMPTLY_S = 1.5


def follows(measured: float, actual: float) -> bool:
    """A client-side time (from "request sent") against the server's own record of the same event
    on the same clock (stamped just before the server writes it): never before it, late by at most
    PROMPTLY_S. How close it comes on a quiet machine (within 3 % of the schedule) is a `make bench`
    figure."""
    return actual - 0.002 <= measured < actual + PROMPTLY_S
