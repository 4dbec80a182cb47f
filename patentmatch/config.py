"""Settings for every part of the service, read from a TOML file and the environment.

Precedence, lowest first: the defaults below, the TOML file named by
``PATENTMATCH_CONFIG`` (or ``patentmatch.toml`` in the working directory), then
environment variables. Every setting ``name`` is read from ``PATENTMATCH_<NAME>``.
``es_url`` is also read from the bare ``ES_URL``, because the docker-compose file
and most Elasticsearch tooling set that one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "PATENTMATCH_"


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the setting and the fix."""


# Characters that Elasticsearch (8 and 9; checked on 9.2.4, which rejects
# "cfgcheck:x" with "must not contain ':'") rejects in index and alias names.
_INVALID_INDEX_CHARS = frozenset('\\/*?"<>|, #:')
_MAX_INDEX_NAME_BYTES = 255


def index_name_problem(value: str) -> str | None:
    """Return the Elasticsearch naming rule that ``value`` breaks, or None when it is valid."""
    if not value:
        return "it must not be empty"
    if value in (".", ".."):
        return "it must not be '.' or '..'"
    if value != value.lower():
        return "it must be lowercase"
    invalid = sorted({char for char in value if char in _INVALID_INDEX_CHARS})
    if invalid:
        shown = " ".join(repr(char) for char in invalid)
        return f"it must not contain {shown}; Elasticsearch rejects \\ / * ? \" < > | , # : and space"
    if value[0] in "-_+":
        return "it must not start with '-', '_' or '+'"
    size = len(value.encode("utf-8"))
    if size > _MAX_INDEX_NAME_BYTES:
        return f"it has {size} bytes in UTF-8; the maximum is {_MAX_INDEX_NAME_BYTES}"
    return None


def _default_cache_dir() -> Path:
    # As root the local Elasticsearch runs as a system user that cannot enter
    # /root, so root gets the system-wide cache folder.
    if os.geteuid() == 0:
        return Path("/var/cache/patentmatch")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "patentmatch"


@dataclass
class Settings:
    """All settings. Units are in the help text; defaults suit one machine."""

    # Elasticsearch
    es_url: str = field(
        default="",
        metadata={"help": "URL of an existing Elasticsearch cluster. Empty: the project "
                  "starts and uses its own local node (see `patentmatch es start`)."},
    )
    es_version: str = field(
        default="9.2.4",
        metadata={"help": "Version of the Elasticsearch integ-test-zip distribution "
                  "that `patentmatch es start` fetches from Maven Central."},
    )
    es_port: int = field(
        default=9200, metadata={"help": "HTTP port of the local node, on 127.0.0.1."}
    )
    es_heap_mb: int = field(
        default=1024, metadata={"help": "JVM heap of the local node, in MiB (-Xms = -Xmx)."}
    )
    es_user: str = field(
        default="patentmatch",
        metadata={"help": "Non-root system user that runs the local node when the "
                  "command runs as root. Created when missing."},
    )
    es_startup_timeout_s: float = field(
        default=180.0,
        metadata={"help": "Seconds to wait for the local node to report yellow or green."},
    )
    es_request_timeout_s: float = field(
        default=30.0, metadata={"help": "Timeout of one Elasticsearch request, in seconds."}
    )
    es_test_backend: str = field(
        default="local",
        metadata={"help": "How the test suite gets a cluster: `local` (the Maven zip "
                  "runner), `testcontainers` (needs a Docker engine) or `url` (ES_URL)."},
    )
    index_alias: str = field(
        default="patents",
        metadata={"help": "Alias that readers query; versioned indices sit behind it."},
    )
    demands_index: str = field(
        default="demands", metadata={"help": "Index of registered technology demands."}
    )

    # Files
    cache_dir: Path = field(
        default_factory=_default_cache_dir,
        metadata={"help": "Folder for the Elasticsearch distribution, its data and logs, "
                  "vector indices and ingest checkpoints."},
    )
    six_t_table: Path | None = field(
        default=None,
        metadata={"help": "CSV that replaces the bundled approximate IPC-to-6T table "
                  "(columns: ipc_prefix,six_t,reason)."},
    )

    # Ingest
    bulk_chunk_size: int = field(
        default=500, metadata={"help": "Documents per bulk request."}
    )
    bulk_max_retries: int = field(
        default=5, metadata={"help": "Retries of a bulk chunk rejected with 429 or a timeout."}
    )
    bulk_max_backoff_s: float = field(
        default=60.0, metadata={"help": "Cap of the exponential backoff between retries, in seconds."}
    )

    # Encoder and vector index
    model: str = field(
        default="",
        metadata={"help": "Sentence encoder: a local folder or a hub id. Empty: the "
                  "model shipped in encoder/models/."},
    )
    max_seq_length: int = field(
        default=256, metadata={"help": "Token limit per text; longer text is truncated."}
    )
    encode_batch_size: int = field(
        default=64, metadata={"help": "Texts per encoder batch."}
    )
    device: str = field(
        default="auto", metadata={"help": "`auto` (CUDA when present), `cpu` or `cuda`."}
    )
    faiss_factory: str = field(
        default="Flat",
        metadata={"help": "Faiss index factory string for abstract vectors: `Flat` "
                  "(exact), or e.g. `IVF4096,SQ8` / `HNSW32,SQ8` for the full corpus."},
    )

    faiss_nprobe: int = field(
        default=0,
        metadata={"help": "IVF cells visited per query; 0 picks nlist/16 (at least 16). "
                  "Higher: better recall, slower search."},
    )
    faiss_ef_search: int = field(
        default=1024,
        metadata={"help": "HNSW candidate-list size per query; never below the number "
                  "of candidates requested."},
    )

    # API and dashboard
    api_host: str = field(default="127.0.0.1", metadata={"help": "Address the API binds."})
    api_port: int = field(default=8080, metadata={"help": "Port of the API."})
    dashboard_port: int = field(default=8050, metadata={"help": "Port of the dashboard."})
    api_url: str = field(
        default="",
        metadata={"help": "URL the dashboard calls. Empty: http://<api_host>:<api_port>."},
    )
    max_request_bytes: int = field(
        default=64 * 1024, metadata={"help": "Largest accepted request body, in bytes."}
    )
    request_timeout_s: float = field(
        default=30.0, metadata={"help": "Time limit of one API request, in seconds."}
    )
    api_key: str = field(
        default="", metadata={"help": "Key for operator endpoints (X-API-Key header)."}
    )

    # E-mail
    smtp_host: str = field(default="127.0.0.1", metadata={"help": "SMTP server host."})
    smtp_port: int = field(default=25, metadata={"help": "SMTP server port."})
    smtp_tls: str = field(
        default="none", metadata={"help": "`none`, `starttls` or `tls` (implicit TLS)."}
    )
    smtp_user: str = field(default="", metadata={"help": "SMTP login; empty: no login."})
    smtp_password: str = field(default="", metadata={"help": "SMTP password."})
    mail_from: str = field(
        default="patentmatch@localhost", metadata={"help": "Sender address of e-mails."}
    )
    public_url: str = field(
        default="",
        metadata={"help": "Base URL put in e-mail links. Empty: the API's own URL."},
    )

    def __post_init__(self) -> None:
        # An empty PATENTMATCH_CACHE_DIR reads as None, which means the default folder.
        if self.cache_dir is None:
            self.cache_dir = _default_cache_dir()
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.six_t_table is not None:
            self.six_t_table = Path(self.six_t_table).expanduser()
        for name in ("es_port", "api_port", "dashboard_port", "smtp_port"):
            value = getattr(self, name)
            if not 0 < value < 65536:
                raise ConfigError(f"{name} must be a TCP port in 1..65535, found {value!r}")
        for name in ("faiss_nprobe", "bulk_max_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, found {getattr(self, name)!r}")
        for name in ("es_startup_timeout_s", "es_request_timeout_s", "bulk_max_backoff_s",
                     "request_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, found {value!r}")
        for name in ("es_heap_mb", "bulk_chunk_size", "max_seq_length", "faiss_ef_search",
                     "encode_batch_size", "max_request_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, found {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, found {self.device!r}")
        if self.smtp_tls not in ("none", "starttls", "tls"):
            raise ConfigError(f"smtp_tls must be none, starttls or tls, found {self.smtp_tls!r}")
        self._check_index_names()
        if self.es_test_backend not in ("local", "testcontainers", "url"):
            raise ConfigError(
                "es_test_backend must be local, testcontainers or url, "
                f"found {self.es_test_backend!r}"
            )

    def _check_index_names(self) -> None:
        for name in ("index_alias", "demands_index"):
            value = getattr(self, name)
            problem = index_name_problem(value)
            if problem is not None:
                raise ConfigError(
                    f"{name} {value!r} is not a valid Elasticsearch index or alias name: "
                    f"{problem}; set PATENTMATCH_{name.upper()} to a name such as 'patents'"
                )

    @property
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def es_home(self) -> Path:
        """Folder of the unpacked local Elasticsearch distribution."""
        return self.cache_dir / f"elasticsearch-{self.es_version}"


def _coerce(name: str, raw: Any, annotation: str) -> Any:
    """Convert a TOML or environment value to the field's declared type."""
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if annotation in ("Path", "Path | None"):
            return None if raw in ("", None) else Path(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {raw!r} as {annotation}") from exc


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and overrides.

    Raises:
        ConfigError: for an unknown key in the file or an invalid value.
    """
    environ = os.environ if environ is None else environ
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path("patentmatch.toml").is_file():
        path = "patentmatch.toml"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found; fix the path in "
                              f"{ENV_PREFIX}CONFIG or create the file")
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{path}: unknown settings {unknown}; known: {sorted(fields)}")
        for key, raw in data.items():
            values[key] = _coerce(key, raw, str(fields[key].type))

    if environ.get("ES_URL"):
        values["es_url"] = environ["ES_URL"]
    for name, spec in fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(ENV_PREFIX + name.upper(), raw, str(spec.type))

    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def describe_settings() -> list[tuple[str, str, str]]:
    """Return (environment variable, default, help) for every setting."""
    rows = []
    for spec in dataclasses.fields(Settings):
        if spec.default is not dataclasses.MISSING:
            default = repr(spec.default)
        else:
            default = "(computed)"
        rows.append((ENV_PREFIX + spec.name.upper(), default, spec.metadata.get("help", "")))
    return rows
