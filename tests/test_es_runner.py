"""The local Elasticsearch runner and the `patentmatch es` command."""

from __future__ import annotations

import socket
import pytest

from patentmatch.cli import main
from patentmatch.config import load_settings
from patentmatch.es_runner import (
    ElasticsearchRunnerError,
    LocalElasticsearch,
    find_java_home,
    maven_zip_path,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_maven_zip_path_layout():
    path = maven_zip_path("9.2.4").as_posix()
    assert path.endswith(
        "org/elasticsearch/distribution/integ-test-zip/elasticsearch/9.2.4/"
        "elasticsearch-9.2.4.zip"
    )


def test_java_home_is_21_or_newer():
    java_home = find_java_home()
    release = (java_home / "release").read_text()
    major = int(release.split('JAVA_VERSION="')[1].split(".")[0].split('"')[0])
    assert major >= 21


def test_status_of_absent_node(tmp_path):
    settings = load_settings(environ={}, cache_dir=tmp_path)
    node = LocalElasticsearch(settings, port=_closed_port(), node_dir=tmp_path / "node")
    status = node.status()
    assert status.running is False
    assert status.health is None
    assert node.stop() is False


def test_stale_pid_file_is_ignored(tmp_path):
    settings = load_settings(environ={}, cache_dir=tmp_path)
    node = LocalElasticsearch(settings, port=_closed_port(), node_dir=tmp_path / "node")
    node.pid_file.parent.mkdir(parents=True)
    node.pid_file.write_text("999999999\n")
    assert node.status().pid is None


def test_unknown_version_fails_with_maven_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MAVEN_REPO_LOCAL", str(tmp_path / "m2"))
    settings = load_settings(environ={}, cache_dir=tmp_path, es_version="0.0.1-absent")
    node = LocalElasticsearch(settings, port=_closed_port(), node_dir=tmp_path / "node")
    with pytest.raises(ElasticsearchRunnerError, match="mvn dependency:get"):
        node.start()


def test_cli_status_reports_cluster_health(es_url, monkeypatch, capsys):
    monkeypatch.setenv("ES_URL", es_url)
    assert main(["es", "status"]) == 0
    output = capsys.readouterr().out
    assert es_url in output
    assert "green" in output or "yellow" in output


def test_cli_refuses_start_when_es_url_is_set(monkeypatch, capsys):
    monkeypatch.setenv("ES_URL", "http://127.0.0.1:1")
    assert main(["es", "start"]) == 2
    assert "ES_URL is set" in capsys.readouterr().out


def test_running_node_reports_pid_and_health(es_url):
    port = int(es_url.rsplit(":", 1)[1])
    settings = load_settings(environ={})
    node = LocalElasticsearch(settings, port=port)
    status = node.status()
    assert status.health in ("green", "yellow")
    assert status.url == es_url
