"""The one way to read a saved message's figures."""
from streamchat.messages import figures


def test_figures_are_the_saved_metrics_or_nothing():
    assert figures({"role": "assistant", "metrics": {"ttft": {"value": 0.1}}}) == {"ttft": {"value": 0.1}}
    assert figures({"role": "user", "metrics": None}) == {}
    assert figures({"role": "assistant"}) == {}
    assert figures(None) == {}
    assert figures({"metrics": "damaged"}) == {}
