import pytest

from streamchat.runner import Runner


@pytest.fixture(scope="module")
def runner():
    """A runner of the module's own (its own loop thread), shut down after the module."""
    r = Runner()
    yield r
    r.shutdown()
