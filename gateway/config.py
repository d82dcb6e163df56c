"""Configuration: frozen dataclasses read from ``config.toml`` plus environment overrides.

Precedence, lowest first: built-in defaults, the TOML file, ``TASKGATE_*`` variables,
command-line flags. Every value is checked here, so a bad value stops start-up with a
message naming its key (the CLI turns :class:`ConfigError` into exit status 2).
This module does no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Config", "ConfigError", "load_config", "ENV_ALIASES"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


def _opt(default: Any, *, choices: tuple[Any, ...] = (), lo: float | None = None,
         hi: float | None = None, doc: str = "", pattern: str = "") -> Any:
    return field(default=default, metadata={"choices": choices, "lo": lo, "hi": hi, "doc": doc, "pattern": pattern})


@dataclass(frozen=True)
class ServerConfig:
    host: str = _opt("127.0.0.1", doc="address to listen on")
    port: int = _opt(8080, lo=0, hi=65535, doc="TCP port (0 picks a free one)")
    max_body_bytes: int = _opt(1_048_576, lo=1, doc="largest request body accepted")
    shutdown_timeout: float = _opt(10.0, lo=0, doc="seconds in-flight requests and queued writes get on SIGTERM")
    unix_socket: str = _opt("", doc="listen on this unix socket instead of host/port; "
                                    "relative paths are beside the config file")
    unix_socket_mode: str = _opt("660", doc="octal file mode of the unix socket")
    base_path: str = _opt("", doc="prefix of every route, e.g. /taskgate; empty serves at /")
    trusted_proxies: str = _opt("", doc="comma-separated addresses/CIDRs (and `unix`) "
                                        "whose forwarding headers are honoured")
    forwarded_headers: str = _opt("x-forwarded", choices=("x-forwarded", "forwarded"),
                                  doc="which forwarding headers the trusted proxies set: X-Forwarded-For/-Proto/-Host "
                                      "or RFC 7239 Forwarded; the other family is ignored")
    max_request_line: int = _opt(8190, lo=256, hi=1_048_576, doc="longest request line (method, URL, version) in bytes")
    max_header_bytes: int = _opt(8190, lo=256, hi=1_048_576, doc="longest header name or value in bytes (431 above it)")
    max_headers: int = _opt(100, lo=8, hi=10_000, doc="most request headers (431 above it)")
    keepalive_timeout: float = _opt(75.0, lo=0.1, doc="seconds a connection may stay open without a whole "
                                    "request arriving: idle keep-alive and slow request headers alike")
    body_timeout: float = _opt(60.0, lo=0.1, doc="seconds a client has to send a request body once its headers are in")
    send_timeout: float = _opt(60.0, lo=0.1, doc="seconds a streamed answer (a long list, search or audit page) "
                                                 "waits for the client to take the next part before the "
                                                 "connection is closed")
    max_connections: int = _opt(1000, lo=0, doc="most connections open at once; one beyond it is answered 503 and "
                                                "closed unread (0: no limit). Keep it below the process's file "
                                                "descriptor limit (LimitNOFILE in the systemd unit)")
    max_lists_per_user: int = _opt(2, lo=0, hi=10_000, doc="lists and searches one user may have running at once in "
                                   "a worker process; the user's further ones wait their turn, first come first "
                                   "served, and cost the others nothing (0: no limit)")
    max_large_writes_per_user: int = _opt(2, lo=0, hi=10_000, doc="writes with a body over 64 KiB (or of unknown "
                                          "length) one user may have running at once in a worker process; the "
                                          "user's further ones wait their turn, unread, first come first served "
                                          "(0: no limit)")
    workers: str = _opt("1", pattern=r"auto|[1-9][0-9]{0,2}",
                        doc="HTTP worker processes on the one listening socket, under a supervisor that restarts "
                            "one that dies (1: one process, no supervisor; auto: one per core)")


def is_database_url(path: str) -> bool:
    """Whether *path* (``storage.path``) is a PostgreSQL URL rather than a SQLite file."""
    return path.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """*url* without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


@dataclass(frozen=True)
class StorageConfig:
    path: str = _opt("taskgate.db", doc="SQLite file (relative paths are beside the config file), or the URL of a "
                                        "PostgreSQL database, postgresql://user:password@host:port/database "
                                        "(gateways on several hosts sharing one set of tasks; see scaling.md)")
    synchronous: str = _opt("FULL", choices=("FULL", "NORMAL", "EXTRA"), doc="PRAGMA synchronous")
    busy_timeout_ms: int = _opt(5000, lo=0, doc="PRAGMA busy_timeout")
    max_batch: int = _opt(256, lo=1, doc="most writes committed together (group commit; on PostgreSQL at most 64)")
    min_free_mib: int = _opt(64, lo=0, doc="free space on the database's file system below which /readyz "
                                           "reports not ready (0: not checked)")
    max_db_mib: int = _opt(0, lo=0, doc="largest the database file may grow, in MiB (SQLite's max_page_count): a "
                                        "disk budget. A write past it is refused with 503 as on a full disk; "
                                        "reads go on (0: no limit)")


@dataclass(frozen=True)
class LogConfig:
    format: str = _opt("json", choices=("json", "console"), doc="audit and request log format")
    file: str = _opt("", doc="log file; empty means standard error")
    level: str = _opt("info", choices=("debug", "info", "warning", "error"), doc="least level logged")


@dataclass(frozen=True)
class AuthConfig:
    token_ttl_seconds: int = _opt(3600, lo=1, doc="lifetime of tokens issued by /oauth/token")
    cli_token_ttl_seconds: int = _opt(7_776_000, lo=0, doc="lifetime of tokens made by `taskgate token create` "
                                                           "without --expires-in (0: never expire)")
    bootstrap_user: str = _opt("admin", doc="admin created by `serve` when the database has no user")
    max_failures: int = _opt(10, lo=0, doc="failed password/client-secret checks per client address "
                                           "and window before 429 (0: no limit)")
    failure_window_seconds: int = _opt(60, lo=1, doc="length of the window in which failures are counted")
    max_tracked_clients: int = _opt(10_000, lo=1, doc="most client addresses whose failures are remembered")
    max_concurrent_checks: int = _opt(4, lo=0, doc="password/client-secret checks running at once in the process "
                                                   "(scrypt is costly by design); one beyond waits up to 1 s for a "
                                                   "slot, then gets 429 with Retry-After (0: no ceiling)")


@dataclass(frozen=True)
class QuotaConfig:
    tasks_per_user: int = _opt(10_000, lo=1, doc="most tasks an ordinary user may own in each style (who owns a task "
                                                 "is each style's rule); a write beyond it gets 413. Admins are "
                                                 "not limited")
    mib_per_user: int = _opt(256, lo=1, doc="most MiB an ordinary user's tasks may take in each style: their "
                                            "documents and the audit rows of their changes; a write beyond it "
                                            "gets 413. Admins are not limited")
    writes_per_second: float = _opt(5000.0, lo=0.01, doc="task writes an ordinary user may make per second, "
                                                         "sustained (a token bucket per user and process); one "
                                                         "beyond it gets 429 with Retry-After. Admins are not limited")
    write_burst: int = _opt(10_000, lo=1, doc="task writes an ordinary user may make at once before "
                                              "quota.writes_per_second applies (the bucket's size)")


@dataclass(frozen=True)
class SuperOfficeConfig:
    strict_readonly: bool = _opt(False, doc="PUT that changes a read-only field gets 400 instead of being ignored")
    app_tokens: str = _opt("", doc="comma-separated SO-AppToken values; when set, SOTicket requests must send one")
    time_zone: str = _opt("UTC", doc="base zone of dates without offset when no SO-TimeZone header is sent")


@dataclass(frozen=True)
class WebMethodsConfig:
    update_completed_task: bool = _opt(False, doc="allow updates of completed/expired/cancelled tasks")
    service_errors_as_500: bool = _opt(False, doc="answer every service exception with 500, as Integration Server does")
    debug_errors: bool = _opt(False, doc="fill $errorDump with the exception detail")
    sweep_interval_seconds: float = _opt(1.0, lo=0.05, doc="how often scheduled/expired tasks are swept")


@dataclass(frozen=True)
class MetricsConfig:
    expose: str = _opt("loopback", choices=("off", "loopback", "token"),
                       doc="who may read /metrics: nobody, loopback clients, or bearers of metrics.token")
    token: str = _opt("", doc="bearer token for /metrics when metrics.expose is token")


@dataclass(frozen=True)
class UiConfig:
    max_live_streams: int = _opt(100, lo=0, hi=100_000, doc="most dashboard pages open at once with live updates "
                                                             "(GET /ui/live); one beyond is answered 503")
    max_live_streams_per_user: int = _opt(10, lo=0, hi=100_000, doc="most of those one user may have open at once "
                                          "(0: only the bound above); one beyond is answered 429, so that one "
                                          "user cannot take every live page's place")


@dataclass(frozen=True)
class EventsConfig:
    poll_seconds: float = _opt(0.5, lo=0.01, hi=60, doc="how often the change feed reads the audit trail for "
                                                        "changes other processes committed (this process's own "
                                                        "commits are sent at once)")
    heartbeat_seconds: float = _opt(15.0, lo=0.05, hi=3600, doc="seconds between heartbeat comments on an idle "
                                                                "GET /events stream, so proxies keep it open")
    buffer_events: int = _opt(4096, lo=1, doc="recent events kept for the streams: a client further behind the "
                                              "feed than this is cut off with the id to resume from")
    buffer_bytes: int = _opt(8_388_608, lo=65_536, doc="bytes of recent events kept for the streams, the same "
                                                       "window bounded by size")
    max_streams: int = _opt(1000, lo=0, hi=100_000, doc="most GET /events streams open at once in a worker process "
                                                        "(503 beyond; 0: none)")
    max_streams_per_user: int = _opt(20, lo=0, hi=100_000, doc="most of those one user may have open at once "
                                                               "(429 beyond; 0: no limit per user)")


@dataclass(frozen=True)
class TestingConfig:
    enabled: bool = _opt(False, doc="serve the admin-only /_taskgate/ test-control API and the /_ns/{name}/ "
                                    "namespaces (reset, checkpoints, journal, faults, clock); for test suites, "
                                    "never in production (`serve --testing` also turns it on)")
    max_namespaces: int = _opt(32, lo=1, hi=1024, doc="most namespaces open at once; each is a SQLite file in "
                                                      "a folder beside the database (<db>.namespaces)")
    max_namespaces_per_user: int = _opt(4, lo=0, hi=1024, doc="most of those a user who is not an admin may have "
                                                              "made by first use and still open (429 beyond; "
                                                              "0: no limit per user)")
    journal_entries: int = _opt(1000, lo=0, hi=1_000_000, doc="most requests each namespace's journal keeps "
                                                              "(the oldest are dropped)")
    journal_bytes: int = _opt(1_048_576, lo=0, doc="most bytes of entries each namespace's journal keeps")
    journal_body_bytes: int = _opt(2048, lo=0, hi=65_536, doc="longest request body a journal entry keeps "
                                                              "(longer is truncated)")


@dataclass(frozen=True)
class WebhooksConfig:
    dispatch: bool = _opt(True, doc="run the webhook dispatcher in `serve`; of several processes on one database, "
                                    "one dispatches at a time (a lock beside the database file)")
    allow_targets: str = _opt("", doc="comma-separated addresses/CIDRs a webhook target may resolve to although the "
                                      "guard would refuse them, e.g. 127.0.0.1 for a receiver on this host")
    allow_private: bool = _opt(False, doc="let targets resolve to private ranges (10/8, 172.16/12, 192.168/16, "
                                          "100.64/10, fc00::/7); loopback, link-local and metadata addresses stay "
                                          "refused unless listed in webhooks.allow_targets")
    timeout_seconds: float = _opt(10.0, lo=0.1, hi=300, doc="seconds one delivery may take, connecting included")
    max_failures: int = _opt(9, lo=1, hi=10_000, doc="consecutive failed deliveries that disable a hook (SuperOffice's "
                                                     "TooManyErrors comes after 9)")
    retry_base_seconds: float = _opt(1.0, lo=0.001, hi=3600, doc="wait before the first retry; each further retry "
                                                                  "doubles it (with jitter), up to retry_max_seconds")
    retry_max_seconds: float = _opt(300.0, lo=0.001, hi=86_400, doc="longest wait between two retries")
    poll_seconds: float = _opt(1.0, lo=0.05, hi=60, doc="how often the dispatcher reads the trail when no commit of "
                                                        "its own process woke it (changes other processes commit)")
    max_connections: int = _opt(32, lo=1, hi=10_000, doc="outbound connections open at once")
    max_hooks: int = _opt(100, lo=1, hi=10_000, doc="most subscriptions per style")
    log_rows: int = _opt(10_000, lo=10, hi=10_000_000, doc="delivery log rows kept (the newest)")


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    log: LogConfig = field(default_factory=LogConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    superoffice: SuperOfficeConfig = field(default_factory=SuperOfficeConfig)
    webmethods: WebMethodsConfig = field(default_factory=WebMethodsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    testing: TestingConfig = field(default_factory=TestingConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    #: folder that relative paths in the file are resolved against
    base_dir: str = "."

    @property
    def storage_url(self) -> str | None:
        """The PostgreSQL URL ``storage.path`` names, or None for a SQLite file."""
        return self.storage.path if is_database_url(self.storage.path) else None

    @property
    def db_path(self) -> Path:
        path = Path(self.storage.path)
        return path if path.is_absolute() else Path(self.base_dir) / path

    @property
    def unix_socket_path(self) -> Path | None:
        if not self.server.unix_socket:
            return None
        path = Path(self.server.unix_socket)
        return path if path.is_absolute() else Path(self.base_dir) / path

    def replace(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section changed, checked like the file's."""
        current = getattr(self, section)
        checked = {k: _check(f"{section}.{k}", _field(type(current), section, k), v)
                   for k, v in values.items()}
        return _validate(dataclasses.replace(self, **{section: dataclasses.replace(current, **checked)}))


_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def _validate(config: Config) -> Config:
    """Checks that span keys or need parsing; the message names the key."""
    server = config.server
    if server.base_path and (not _BASE_PATH.fullmatch(server.base_path)
                             or {".", ".."} & set(server.base_path.split("/"))):
        raise ConfigError(f"server.base_path: must be empty or like /taskgate (segments of letters, digits, "
                          f"'.', '_', '~', '-', no trailing slash); got {server.base_path!r}")
    if not re.fullmatch(r"0?[0-7]{3}", server.unix_socket_mode):
        raise ConfigError("server.unix_socket_mode: must be an octal mode such as 660; "
                          f"got {server.unix_socket_mode!r}")
    for entry in filter(None, (e.strip() for e in server.trusted_proxies.split(","))):
        if entry != "unix":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"server.trusted_proxies: {entry!r} is neither an address, a CIDR nor unix") from None
    for entry in filter(None, (e.strip() for e in config.webhooks.allow_targets.split(","))):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"webhooks.allow_targets: {entry!r} is neither an address nor a CIDR") from None
    if config.metrics.expose == "token" and not config.metrics.token:
        raise ConfigError("metrics.token: must be set when metrics.expose is token")
    return config


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)  # type: ignore[misc]
                              if f.name != "base_dir"}

#: environment variables with short names; every key also has TASKGATE_<SECTION>_<KEY>
ENV_ALIASES = {
    "TASKGATE_DB": ("storage", "path"),
    "TASKGATE_HOST": ("server", "host"),
    "TASKGATE_PORT": ("server", "port"),
}


def _field(cls: type, section: str, key: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == key:
            return f
    raise ConfigError(f"{section}.{key}: unknown key")


def _check(name: str, f: dataclasses.Field, value: Any, *, from_env: bool = False) -> Any:
    kind: type[Any] = type(f.default)
    meta = f.metadata
    if from_env and kind is not str:  # environment values are text
        raw = value.strip()
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = raw.lower() in ("true", "1", "yes")
            else:
                value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if meta.get("pattern") and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a count written as a TOML number
    if type(value) is not kind:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}")
    if meta.get("pattern") and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{name}: must match {meta['pattern']}; got {value!r}")
    if meta["choices"]:
        folded = {str(c).lower(): c for c in meta["choices"]}
        if str(value).lower() not in folded:
            raise ConfigError(f"{name}: must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
        value = folded[str(value).lower()]
    if meta["lo"] is not None and value < meta["lo"] or meta["hi"] is not None and value > meta["hi"]:
        raise ConfigError(f"{name}: must be between {meta['lo']} and {meta['hi'] or '∞'}; got {value!r}")
    return value


def _section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a table")
    return cls(**{k: _check(f"{name}.{k}", _field(cls, name, k), v) for k, v in values.items()})


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Read *path* (or ``$TASKGATE_CONFIG``, or ``./config.toml`` if present) and the env."""
    env = os.environ if env is None else env
    explicit = path if path is not None else env.get("TASKGATE_CONFIG")
    cfg_path = Path(explicit) if explicit else Path("config.toml")
    data: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path.name}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"config: file {str(cfg_path)!r} does not exist")
    for name in data:
        if name not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section")
    overrides: dict[str, dict[str, Any]] = {}
    for var, value in env.items():
        if var in ENV_ALIASES:
            section, key = ENV_ALIASES[var]
        elif var.startswith("TASKGATE_") and var != "TASKGATE_CONFIG":
            section, _, key = var[len("TASKGATE_"):].lower().partition("_")
            if section not in _SECTIONS:
                continue
        else:
            continue
        _field(_SECTIONS[section], section, key)
        overrides.setdefault(section, {})[key] = value
    sections = {}
    for name, cls in _SECTIONS.items():
        loaded = _section(name, cls, data.get(name, {}))
        env_values = overrides.get(name, {})
        checked = {k: _check(f"{name}.{k} (from the environment)", _field(cls, name, k), v, from_env=True)
                   for k, v in env_values.items()}
        sections[name] = dataclasses.replace(loaded, **checked)
    base = cfg_path.resolve().parent if cfg_path.is_file() else Path.cwd()
    config = _validate(Config(**sections, base_dir=str(base)))
    if "path" in overrides.get("storage", {}) and config.storage_url is None:  # env paths are cwd-relative
        config = config.replace("storage", path=str(Path(config.storage.path).resolve()))
    if "unix_socket" in overrides.get("server", {}) and config.server.unix_socket:
        config = config.replace("server", unix_socket=str(Path(config.server.unix_socket).resolve()))
    return config
