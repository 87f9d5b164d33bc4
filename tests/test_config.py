"""Where settings come from: defaults, the instance folder's config.py, EMOCARE_* variables,
create_app's overrides; and a secret key that is made once and kept."""

from __future__ import annotations

import importlib
import stat

import pytest

from emocare import config as config_module

from .conftest import close_app, make_app


def test_environment_overrides_defaults_and_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCARE_CARE_COOLDOWN_S", "12.5")
    monkeypatch.setenv("EMOCARE_TTA", "false")
    monkeypatch.setenv("EMOCARE_DEFAULT_LANGUAGE", "zh-CN")
    app = make_app(tmp_path)
    try:
        assert app.config["CARE_COOLDOWN_S"] == 12.5
        assert app.config["TTA"] is False
        assert app.config["DEFAULT_LANGUAGE"] == "zh-CN"
    finally:
        close_app(app)


def test_instance_config_file_then_environment_then_overrides(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text("CARE_SUSTAIN_S = 7.0\nSPEECH_RATE = 120\nHISTORY_FLUSH_S = 2.0\n")
    monkeypatch.setenv("EMOCARE_SPEECH_RATE", "130")
    app = make_app(tmp_path, HISTORY_FLUSH_S=0.5)
    try:
        assert app.config["CARE_SUSTAIN_S"] == 7.0  # from the file
        assert app.config["SPEECH_RATE"] == 130  # the environment wins over the file
        assert app.config["HISTORY_FLUSH_S"] == 0.5  # create_app's overrides win over both
    finally:
        close_app(app)


def test_plain_database_url_is_honoured(tmp_path, monkeypatch):
    url = "sqlite:///" + str(tmp_path / "elsewhere.sqlite3")
    monkeypatch.setenv("DATABASE_URL", url)
    app = make_app(tmp_path)
    try:
        assert app.config["DATABASE_URL"] == url
        assert (tmp_path / "elsewhere.sqlite3").exists()
    finally:
        close_app(app)


def test_secret_key_is_made_once_and_kept(tmp_path):
    first = make_app(tmp_path, SECRET_KEY=None)
    close_app(first)
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = make_app(tmp_path, SECRET_KEY=None)
    close_app(second)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == path.read_text().strip()
    assert len(first.config["SECRET_KEY"]) == 64


def test_importing_the_config_reads_no_environment(monkeypatch):
    monkeypatch.setenv("EMOCARE_ANALYZER", "fer")
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    module = importlib.reload(config_module)
    assert module.Config.ANALYZER == "emocare"
    assert module.Config.SECRET_KEY is None


def test_the_analysis_mode_comes_from_the_environment_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOCARE_ANALYSIS", "device")
    app = make_app(tmp_path)
    try:
        assert app.config["ANALYSIS"] == "device"
    finally:
        close_app(app)
    monkeypatch.setenv("EMOCARE_ANALYSIS", "cloud")
    with pytest.raises(ValueError, match="ANALYSIS must be one of server, device"):
        make_app(tmp_path / "other")
