"""``search_api.app.run``: start-up failures that need no cluster."""

from __future__ import annotations

import logging
import socket

import pytest
from aiohttp import web, web_runner

import search_api.app
from patentmatch.cli import main
from patentmatch.config import ConfigError, load_settings
from search_api.app import run
from search_api.vectors import VectorStoreMismatch


def test_run_port_in_use_names_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = load_settings(environ={}, api_host="127.0.0.1", api_port=port,
                                 cache_dir=tmp_path)
        with pytest.raises(ConfigError) as info:
            run(settings, web.Application())
    assert f"api_port {port}" in str(info.value)
    assert "already in use" in str(info.value)
    assert "PATENTMATCH_API_PORT" in str(info.value)


class StopWhenListening(logging.Handler):
    """Record whether the port accepts connections when "API listening" is logged, then stop."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.port_accepted: bool | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith("API listening"):
            return
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
            self.port_accepted = True
        except OSError:
            self.port_accepted = False
        raise web_runner.GracefulExit()


def test_run_logs_listening_after_bind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(environ={}, api_host="127.0.0.1", api_port=port, cache_dir=tmp_path)
    handler = StopWhenListening(port)
    app_logger = logging.getLogger("search_api.app")
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    try:
        run(settings, web.Application())
    finally:
        app_logger.removeHandler(handler)
        app_logger.setLevel(logging.NOTSET)
    assert handler.port_accepted is True


def test_run_port_in_use_logs_no_listening(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = load_settings(environ={}, api_host="127.0.0.1", api_port=port,
                                 cache_dir=tmp_path)
        with caplog.at_level(logging.INFO, logger="search_api.app"), pytest.raises(ConfigError):
            run(settings, web.Application())
    assert "API listening" not in caplog.text


def test_serve_stale_store_exits_cleanly(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATENTMATCH_CACHE_DIR", str(tmp_path))

    def stale_store(settings, app):
        raise VectorStoreMismatch("the vector store is stale; run `patentmatch index update`")

    monkeypatch.setattr(search_api.app, "create_app", lambda settings, default_mode=None: None)
    monkeypatch.setattr(search_api.app, "run", stale_store)
    with caplog.at_level(logging.ERROR):
        status = main(["serve"])
    assert status == 1
    assert "API not started" in caplog.text
    assert "patentmatch index update" in caplog.text
