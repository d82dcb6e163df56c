"""Configuration: defaults, the file, environment overrides, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_config_file_is_the_defaults(tmp_path: Path):
    loaded = load_config(ROOT / "config.toml", env={})
    assert loaded == Config(base_dir=str(ROOT))
    assert loaded.db_path == ROOT / "taskgate.db"


def test_file_values_and_relative_database_path(tmp_path: Path):
    (tmp_path / "c.toml").write_text('[server]\nport = 9000\n[storage]\npath = "data/x.db"\nsynchronous = "normal"\n')
    config = load_config(tmp_path / "c.toml", env={})
    assert (config.server.port, config.storage.synchronous, config.db_path) == (9000, "NORMAL",
                                                                                tmp_path / "data/x.db")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[server]\nport = 9000\n")
    env = {"TASKGATE_CONFIG": str(tmp_path / "c.toml"), "TASKGATE_PORT": "9100", "TASKGATE_HOST": "0.0.0.0",
           "TASKGATE_DB": "rel.db", "TASKGATE_LOG_FORMAT": "console", "TASKGATE_STORAGE_MAX_BATCH": "8",
           "TASKGATE_SERVER_SHUTDOWN_TIMEOUT": "2.5", "UNRELATED": "x"}
    config = load_config(env=env)
    assert (config.server.port, config.server.host, config.db_path, config.log.format,
            config.storage.max_batch, config.server.shutdown_timeout) == (
        9100, "0.0.0.0", tmp_path / "rel.db", "console", 8, 2.5)


@pytest.mark.parametrize("text, env, message", [
    ("[server]\nport = 70000\n", {}, "server.port: must be between 0 and 65535; got 70000"),
    ('[server]\nport = "80"\n', {}, "server.port: expected int, got '80'"),
    ("[server]\nprot = 1\n", {}, "server.prot: unknown key"),
    ("[srever]\n", {}, "srever: unknown section"),
    ('[storage]\nsynchronous = "sometimes"\n', {}, "storage.synchronous: must be one of FULL, NORMAL, EXTRA; "
                                                   "got 'sometimes'"),
    ("[log]\nformat = 1\n", {}, "log.format: expected str, got 1"),
    ("[server\n", {}, "c.toml: not valid TOML"),
    ("", {"TASKGATE_PORT": "eighty"}, "server.port (from the environment): expected int, got 'eighty'"),
    ("", {"TASKGATE_SERVER_NOPE": "1"}, "server.nope: unknown key"),
    ("", {"TASKGATE_AUTH_TOKEN_TTL_SECONDS": "0"}, "auth.token_ttl_seconds (from the environment): must be "
                                                   "between 1 and ∞; got 0"),
])
def test_invalid_values_name_their_key(tmp_path: Path, text: str, env: dict, message: str):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.toml", env=env)
    assert str(info.value).startswith(message)


def test_a_missing_explicit_file_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_serve_with_an_invalid_value_exits_2_naming_the_key(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          env={"TASKGATE_PORT": "x", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 2
    assert done.stderr == ("taskgate: invalid configuration: server.port (from the environment): "
                           "expected int, got 'x'\n")
