"""The one decision the app's settings form and the CLI share: which provider, which model."""
from streamchat.config import LOCAL, REMOTE, provider_for
from streamchat.providers import model_choices


def test_a_base_url_or_a_key_means_a_remote_endpoint_and_nothing_the_embedded_model():
    assert provider_for(None, None) == LOCAL
    assert provider_for("", "") == LOCAL
    assert provider_for("http://127.0.0.1:8000/v1", None) == REMOTE
    assert provider_for(None, "sk-x") == REMOTE          # a key alone: OpenAI itself


def test_the_wanted_model_comes_first_else_the_first_listed():
    assert model_choices("m2", ["m1", "m2"]) == (["m1", "m2"], "m2")
    assert model_choices("mine", ["m1"]) == (["mine", "m1"], "mine")   # offered though unlisted
    assert model_choices(None, ["m1", "m2"]) == (["m1", "m2"], "m1")
    assert model_choices(None, []) == ([], None)
