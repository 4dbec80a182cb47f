"""Settings: defaults, TOML file, environment precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from patentmatch.config import ConfigError, describe_settings, load_settings


def test_defaults_without_file_or_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.es_url == ""
    assert settings.index_alias == "patents"
    assert settings.es_port == 9200


def test_file_then_env_precedence(tmp_path):
    config = tmp_path / "pm.toml"
    config.write_text('es_port = 9333\nindex_alias = "from-file"\ncache_dir = "/tmp/x"\n')
    settings = load_settings(config, environ={"PATENTMATCH_INDEX_ALIAS": "from-env"})
    assert settings.es_port == 9333
    assert settings.index_alias == "from-env"
    assert settings.cache_dir == Path("/tmp/x")


def test_bare_es_url_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"ES_URL": "http://127.0.0.1:9999"})
    assert settings.es_url == "http://127.0.0.1:9999"


def test_overrides_win_over_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"PATENTMATCH_API_PORT": "8000"}, api_port=8001)
    assert settings.api_port == 8001


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PATENTMATCH_ES_PORT": "70000"}, "es_port must be a TCP port"),
        ({"PATENTMATCH_ES_PORT": "abc"}, "PATENTMATCH_ES_PORT: cannot read 'abc' as int"),
        ({"PATENTMATCH_DEVICE": "tpu"}, "device must be auto, cpu or cuda"),
        ({"PATENTMATCH_BULK_CHUNK_SIZE": "0"}, "bulk_chunk_size must be positive"),
        ({"PATENTMATCH_SMTP_TLS": "ssl"}, "smtp_tls must be none, starttls or tls"),
        ({"PATENTMATCH_REQUEST_TIMEOUT_S": "-5"}, "request_timeout_s must be a positive number"),
        ({"PATENTMATCH_REQUEST_TIMEOUT_S": "nan"}, "request_timeout_s must be a positive number"),
        ({"PATENTMATCH_ES_REQUEST_TIMEOUT_S": "0"}, "es_request_timeout_s must be a positive"),
        ({"PATENTMATCH_ES_STARTUP_TIMEOUT_S": "inf"}, "es_startup_timeout_s must be a positive"),
        ({"PATENTMATCH_BULK_MAX_BACKOFF_S": "-1"}, "bulk_max_backoff_s must be a positive"),
        ({"PATENTMATCH_BULK_MAX_RETRIES": "-1"}, "bulk_max_retries must be 0 or more"),
    ],
)
def test_invalid_values_are_named(tmp_path, monkeypatch, env, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert message in str(info.value)


def test_empty_cache_dir_means_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = load_settings(environ={}).cache_dir
    settings = load_settings(environ={"PATENTMATCH_CACHE_DIR": ""})
    assert settings.cache_dir == default


def test_unknown_key_in_file_is_rejected(tmp_path):
    config = tmp_path / "pm.toml"
    config.write_text("es_prot = 1\n")
    with pytest.raises(ConfigError, match="unknown settings \\['es_prot'\\]"):
        load_settings(config, environ={})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_every_setting_is_documented():
    for env_name, _default, help_text in describe_settings():
        assert env_name.startswith("PATENTMATCH_")
        assert help_text, f"{env_name} has no help text"


@pytest.mark.parametrize("name", ["index_alias", "demands_index"])
@pytest.mark.parametrize(("value", "rule"), [
    ("usertest-UPPER bad", "lowercase"),
    ("user test", "must not contain ' '"),
    ("a/b", "must not contain '/'"),
    ("a*b", "must not contain '*'"),
    ('a"b', "must not contain '\"'"),
    ("a,b", "must not contain ','"),
    ("a#b", "must not contain '#'"),
    ("a:b", "must not contain ':'"),
    ("-patents", "must not start with"),
    ("_patents", "must not start with"),
    ("+patents", "must not start with"),
    (".", "must not be '.' or '..'"),
    ("..", "must not be '.' or '..'"),
    ("", "must not be empty"),
    ("a" * 256, "256 bytes"),
    ("특" * 86, "258 bytes"),
])
def test_invalid_index_name_rejected(tmp_path, monkeypatch, name, value, rule):
    monkeypatch.chdir(tmp_path)
    env_name = f"PATENTMATCH_{name.upper()}"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={env_name: value})
    message = str(info.value)
    assert name in message
    assert repr(value) in message
    assert rule in message
    assert env_name in message


@pytest.mark.parametrize("value", ["patents", "usertest-demands", ".hidden-patents", "a" * 255,
                                   "특허-색인"])
def test_valid_index_names_accepted(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"PATENTMATCH_INDEX_ALIAS": value,
                                      "PATENTMATCH_DEMANDS_INDEX": value})
    assert settings.index_alias == value
    assert settings.demands_index == value
