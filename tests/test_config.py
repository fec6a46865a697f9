from pathlib import Path

from streamchat.config import LOCAL, REMOTE, load_settings


def test_no_configuration_means_the_embedded_model(tmp_path):
    s = load_settings(env_file=tmp_path / "missing.env", environ={})
    assert s.default_provider == LOCAL
    assert s.data_dir == Path("data")


def test_env_file_is_read_and_environment_wins(tmp_path):
    env = tmp_path / ".env"
    env.write_text("OPENAI_BASE_URL=http://127.0.0.1:9/v1/\nOPENAI_MODEL=from-file\n"
                   "OPENAI_API_KEY=sk-file\nSTREAMCHAT_DATA_DIR=/tmp/x\n")
    s = load_settings(env_file=env, environ={"OPENAI_MODEL": "from-env"})
    assert s.default_provider == REMOTE
    assert s.base_url == "http://127.0.0.1:9/v1"
    assert s.model == "from-env"
    assert s.data_dir == Path("/tmp/x")


def test_api_key_alone_means_openai_and_never_in_repr(tmp_path):
    s = load_settings(env_file=None, environ={"OPENAI_API_KEY": "sk-secret-123"})
    assert s.default_provider == REMOTE
    assert s.remote_base_url == "https://api.openai.com/v1"
    assert "sk-secret" not in repr(s)


def test_blank_values_are_unset():
    s = load_settings(env_file=None, environ={"OPENAI_BASE_URL": "  ", "LOCAL_MODEL_PATH": ""})
    assert s.default_provider == LOCAL and s.local_model_path is None
