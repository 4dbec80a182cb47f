"""Fetch, start, check and stop a local single-node Elasticsearch.

The node is the official ``integ-test-zip`` distribution from Maven Central: the
server core without analysis-common, painless or reindex, which is all this
project needs. It listens on 127.0.0.1 only, runs with security off and keeps its
data and logs under ``<cache_dir>/es-node-<port>/``. Elasticsearch refuses to run as
root, so when this code runs as root it starts the node as a non-root system user,
creating that user when missing.

Users with a cluster of their own set ``ES_URL`` and never call this module.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from patentmatch.config import Settings

logger = logging.getLogger(__name__)

MAVEN_GROUP = "org.elasticsearch.distribution.integ-test-zip"
MAVEN_ARTIFACT = "elasticsearch"
MIN_JAVA = 21


class ElasticsearchRunnerError(RuntimeError):
    """The local node could not be fetched, started or stopped."""


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    pid: int | None
    url: str
    health: str | None
    detail: str


def maven_zip_path(version: str) -> Path:
    """Path where ``mvn dependency:get`` leaves the zip in the local repository."""
    repo = Path(os.environ.get("MAVEN_REPO_LOCAL", Path.home() / ".m2" / "repository"))
    return (
        repo / MAVEN_GROUP.replace(".", "/") / MAVEN_ARTIFACT / version
        / f"{MAVEN_ARTIFACT}-{version}.zip"
    )


def fetch_distribution(settings: Settings) -> Path:
    """Download the pinned zip with Maven, once; return its path in the local repository."""
    path = maven_zip_path(settings.es_version)
    if path.is_file():
        return path
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ElasticsearchRunnerError(
            "Maven (`mvn`) is not on PATH, so the Elasticsearch zip cannot be fetched; "
            "install Maven (apt-get install maven) or set ES_URL to an existing cluster"
        )
    artifact = f"{MAVEN_GROUP}:{MAVEN_ARTIFACT}:{settings.es_version}:zip"
    logger.info("Fetching %s from Maven Central", artifact)
    command = [mvn, "-q", "-B", "dependency:get", f"-Dartifact={artifact}", "-Dtransitive=false"]
    if "MAVEN_REPO_LOCAL" in os.environ:
        command.append(f"-Dmaven.repo.local={os.environ['MAVEN_REPO_LOCAL']}")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file():
        raise ElasticsearchRunnerError(
            f"mvn dependency:get {artifact} failed (exit {result.returncode}): "
            f"{(result.stdout + result.stderr).strip()[-2000:]}"
        )
    return path


def unpack_distribution(settings: Settings, zip_path: Path) -> Path:
    """Unpack the zip into the cache folder unless already there; return ES home."""
    home = settings.es_home
    if (home / "bin" / "elasticsearch").is_file():
        return home
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    staging = settings.cache_dir / f".unpack-{settings.es_version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("Unpacking %s into %s", zip_path, home)
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            target = archive.extract(member, staging)
            mode = member.external_attr >> 16
            if mode:
                os.chmod(target, mode & 0o7777)
    inner = staging / f"elasticsearch-{settings.es_version}"
    if not (inner / "bin" / "elasticsearch").is_file():
        raise ElasticsearchRunnerError(f"{zip_path} does not contain {inner.name}/bin/elasticsearch")
    os.replace(inner, home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if not release.is_file():
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def find_java_home() -> Path:
    """Return a JDK of version 21 or newer: ES_JAVA_HOME, JAVA_HOME, then /usr/lib/jvm."""
    candidates = [os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        candidates += [str(p) for p in sorted(jvm_root.iterdir(), reverse=True)]
    for candidate in candidates:
        if not candidate:
            continue
        major = _java_major(Path(candidate))
        if major is not None and major >= MIN_JAVA:
            return Path(candidate)
    raise ElasticsearchRunnerError(
        f"no Java {MIN_JAVA}+ found in ES_JAVA_HOME, JAVA_HOME or /usr/lib/jvm; "
        "Elasticsearch 9 needs it: install a JDK 21+ and set ES_JAVA_HOME"
    )


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    logger.info("Creating system user %s to run Elasticsearch", name)
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise ElasticsearchRunnerError(f"useradd {name} failed: {result.stderr.strip()}")
    return pwd.getpwnam(name)


class LocalElasticsearch:
    """One local node on ``127.0.0.1:<port>``, with its own data, logs and config."""

    def __init__(self, settings: Settings, port: int | None = None, node_dir: Path | None = None):
        self.settings = settings
        self.port = port or settings.es_port
        self.node_dir = node_dir or settings.cache_dir / f"es-node-{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "elasticsearch.pid"

    @property
    def log_file(self) -> Path:
        return self.node_dir / "logs" / "patentmatch-local.log"

    def _write_config(self, home: Path) -> Path:
        config = self.node_dir / "config"
        if config.exists():
            shutil.rmtree(config)
        shutil.copytree(home / "config", config)
        (self.node_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.node_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.node_dir / "tmp").mkdir(parents=True, exist_ok=True)
        lines = {
            "cluster.name": "patentmatch-local",
            "node.name": f"local-{self.port}",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            # The transport port is picked from a range so two nodes can coexist.
            "transport.port": "9300-9399",
            "discovery.type": "single-node",
            "xpack.security.enabled": "false",
            "path.data": str(self.node_dir / "data"),
            "path.logs": str(self.node_dir / "logs"),
            # Development machines often have full disks; a read-only index
            # would make every ingest fail with an unrelated error.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }
        text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in lines.items())
        (config / "elasticsearch.yml").write_text(text)
        heap = self.settings.es_heap_mb
        (config / "jvm.options.d" / "heap.options").write_text(f"-Xms{heap}m\n-Xmx{heap}m\n")
        return config

    def _health(self, timeout: float = 2.0) -> dict | None:
        try:
            with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=timeout) as reply:
                return json.load(reply)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def status(self) -> NodeStatus:
        pid = self._read_pid()
        health = self._health()
        if health is not None:
            return NodeStatus(True, pid, self.url, health.get("status"), "responding")
        if pid is not None:
            return NodeStatus(True, pid, self.url, None, "process alive, HTTP not answering")
        return NodeStatus(False, None, self.url, None, "not running")

    def start(self) -> NodeStatus:
        """Start the node unless it already responds; block until it is yellow or green."""
        current = self.status()
        if current.health is not None:
            logger.info("Elasticsearch already responds at %s (%s)", self.url, current.health)
            return current
        if current.pid is not None:
            raise ElasticsearchRunnerError(
                f"process {current.pid} from {self.pid_file} is alive but {self.url} does "
                "not answer; run `patentmatch es stop` and try again"
            )
        home = unpack_distribution(self.settings, fetch_distribution(self.settings))
        java_home = find_java_home()
        self.node_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config(home)

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(config),
            "ES_TMPDIR": str(self.node_dir / "tmp"),
            "LANG": "C.UTF-8",
        }
        command = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        if os.geteuid() == 0:
            user = _ensure_user(self.settings.es_user)
            for root, dirs, files in os.walk(self.node_dir):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)
            os.chown(self.node_dir, user.pw_uid, user.pw_gid)
            self._check_readable(home, user.pw_name)
            command = ["runuser", "-u", user.pw_name, "--"] + command
            env["HOME"] = str(self.node_dir)

        logger.info("Starting Elasticsearch %s at %s (heap %d MiB, data in %s)",
                    self.settings.es_version, self.url, self.settings.es_heap_mb, self.node_dir)
        with self.log_file.open("ab") as log:
            result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise ElasticsearchRunnerError(
                f"Elasticsearch exited with {result.returncode} at start-up; see "
                f"{self.log_file} and {self.node_dir / 'logs'}:\n{self._log_tail()}"
            )
        return self.wait_until_ready()

    def _check_readable(self, home: Path, user: str) -> None:
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(home / "bin" / "elasticsearch")],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            raise ElasticsearchRunnerError(
                f"user {user!r} cannot read {home}; put the cache somewhere every user "
                "can traverse, e.g. PATENTMATCH_CACHE_DIR=/var/cache/patentmatch"
            )

    def _log_tail(self, lines: int = 40) -> str:
        logs = sorted((self.node_dir / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
        if not logs:
            return "(no log written)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def wait_until_ready(self) -> NodeStatus:
        deadline = time.monotonic() + self.settings.es_startup_timeout_s
        while time.monotonic() < deadline:
            health = self._health()
            if health is not None and health.get("status") in ("yellow", "green"):
                logger.info("Elasticsearch is %s at %s", health["status"], self.url)
                return NodeStatus(True, self._read_pid(), self.url, health["status"], "responding")
            if self.pid_file.exists() and self._read_pid() is None:
                raise ElasticsearchRunnerError(f"Elasticsearch died during start-up:\n{self._log_tail()}")
            time.sleep(0.5)
        raise ElasticsearchRunnerError(
            f"Elasticsearch at {self.url} was not ready after "
            f"{self.settings.es_startup_timeout_s:.0f} s (PATENTMATCH_ES_STARTUP_TIMEOUT_S):\n"
            f"{self._log_tail()}"
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the node with SIGTERM, then SIGKILL after ``timeout`` seconds.

        Returns False when no node was running.
        """
        pid = self._read_pid()
        if pid is None:
            return False
        logger.info("Stopping Elasticsearch (pid %d)", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            logger.warning("Elasticsearch (pid %d) ignored SIGTERM for %.0f s; killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
