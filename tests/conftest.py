"""Shared fixtures: a real Elasticsearch for the whole session, clean indices per test.

Where the cluster comes from (``PATENTMATCH_ES_TEST_BACKEND``):

- ``url``: the cluster at ``ES_URL``;
- ``local`` (default): the project's own runner starts a node on a free port
  (``ES_URL`` wins when set, so developers can reuse a running node);
- ``testcontainers``: the official image through a Docker engine.

Without a cluster, tests that need one skip and list what was tried, except
under ``CI=true`` where a missing cluster fails the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from patentmatch.config import load_settings

# Tests never reach a model hub: every model is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Elasticsearch is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no Elasticsearch: {reason}")


@pytest.fixture(scope="session")
def es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Elasticsearch cluster for the test session."""
    settings = load_settings()
    backend = settings.es_test_backend
    if settings.es_url or backend == "url":
        if not settings.es_url:
            _unavailable("PATENTMATCH_ES_TEST_BACKEND=url but ES_URL is empty")
        from elasticsearch import Elasticsearch

        try:
            Elasticsearch(settings.es_url, request_timeout=5).cluster.health()
        except Exception as exc:  # any transport error means the cluster is unusable
            _unavailable(f"ES_URL={settings.es_url} does not answer: {exc}")
        yield settings.es_url
        return

    if backend == "testcontainers":
        from testcontainers.elasticsearch import ElasticSearchContainer

        image = f"docker.elastic.co/elasticsearch/elasticsearch:{settings.es_version}"
        with ElasticSearchContainer(image, mem_limit="2g") as container:
            yield container.get_url()
        return

    from patentmatch.es_runner import ElasticsearchRunnerError, LocalElasticsearch

    port = _free_port()
    node_dir = settings.cache_dir / f"es-test-{port}"
    node = LocalElasticsearch(settings, port=port, node_dir=node_dir)
    try:
        node.start()
    except (ElasticsearchRunnerError, OSError) as exc:
        node.stop()
        _unavailable(f"the local runner failed on port {port}: {exc}")
    try:
        yield node.url
    finally:
        node.stop()
        import shutil

        shutil.rmtree(node_dir, ignore_errors=True)


@pytest.fixture()
def es_client(es_url: str):
    """A synchronous client; the caller's indices are removed by ``index_prefix``."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture()
def index_prefix(es_client) -> Iterator[str]:
    """A unique name prefix for the indices and aliases one test creates; wiped afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    es_client.indices.delete(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True)


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The bundled compressed sample of real KIPRIS records."""
    return REPO_ROOT / "ingest" / "data" / "kipris-sample.jsonl.gz"


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory: pytest.TempPathFactory, sample_path: Path) -> Path:
    """Folder of a tiny sentence encoder built from 400 bundled patents in a few seconds.

    A WordPiece vocabulary learned on the patents, a 2-layer BERT with 32 hidden
    units and 30 contrastive steps on title-abstract pairs: real code paths, no
    retrieval quality. Load it with ``encoder.load_encoder(tiny_encoder_path)``.
    """
    from training.corpus import read_patents
    from training.tiny import build_tiny_encoder

    if not sample_path.is_file():
        pytest.fail(f"the bundled sample {sample_path} is missing; the tiny encoder "
                    "is trained on it", pytrace=False)
    patents = read_patents(sample_path, limit=400)
    return build_tiny_encoder(patents, tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="module")
def module_index_prefix(es_url: str) -> Iterator[str]:
    """Like ``index_prefix``, shared by the tests of one module and wiped after them.

    For modules whose tests share one expensive setup, such as a search API over
    an ingested and encoded corpus.
    """
    from elasticsearch import Elasticsearch

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = Elasticsearch(es_url, request_timeout=60)
    try:
        client.indices.delete(index=f"{prefix}*", ignore_unavailable=True, allow_no_indices=True)
    finally:
        client.close()


# Debian's chromium and chromedriver: the dash_duo fixture (dash.testing) reads
# its browser options from this hook. Chromium runs headless and without its
# sandbox because tests run as root without a display, and without background
# networking because nothing outside 127.0.0.1 is reachable.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
    "--window-size=1400,1000",
)


# Selenium Manager would look up driver versions online; offline, it takes
# chromedriver from PATH.
os.environ.setdefault("SE_OFFLINE", "true")


@pytest.hookimpl(optionalhook=True)
def pytest_setup_options():
    """Return the Chromium options for Dash's browser fixtures."""
    import shutil

    from selenium.webdriver.chrome.options import Options

    options = Options()
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    if binary:
        options.binary_location = binary
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    return options
