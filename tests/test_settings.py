import subprocess
import sys

import pytest

from api.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("TLOUNGE_"):
            monkeypatch.delenv(key)


def test_load_settings_defaults_are_embedded() -> None:
    settings = load_settings()
    assert settings.env == "dev"
    assert settings.api_port == 8080
    assert settings.temporal_port == 7233
    assert settings.temporal_ui_port == 8233
    assert settings.database_url is None
    assert settings.s3_endpoint is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TLOUNGE_API_PORT": "eighty"},
            "TLOUNGE_API_PORT: Input should be a valid integer",
        ),
        (
            {"TLOUNGE_API_PORT": "70000"},
            "TLOUNGE_API_PORT: Input should be less than or equal to 65535",
        ),
        (
            {"TLOUNGE_ENV": "staging"},
            "TLOUNGE_ENV: Input should be 'dev' or 'production'",
        ),
        (
            {"TLOUNGE_ENV": "production"},
            "TLOUNGE_JWT_SECRET: required outside dev mode",
        ),
        (
            {"TLOUNGE_ENV": "production", "TLOUNGE_JWT_SECRET": "changeme"},
            "TLOUNGE_JWT_SECRET: must be a random value of at least 32 characters",
        ),
        (
            {"TLOUNGE_ENV": "production", "TLOUNGE_JWT_SECRET": "a" * 36},
            "TLOUNGE_JWT_SECRET: has only 1 different character(s), fewer than the"
            " 10 a random value has; make one with `openssl rand -hex 32`",
        ),
        (
            {"TLOUNGE_DEFAULT_COWORKING_ID": "nope"},
            "TLOUNGE_DEFAULT_COWORKING_ID: Input should be a valid UUID",
        ),
        (
            {"TLOUNGE_DATA_DIR": ""},
            "TLOUNGE_DATA_DIR: empty; unset it for the default .tlounge, or name a"
            " folder",
        ),
        (
            {"TLOUNGE_DATA_DIR": __file__},
            f"TLOUNGE_DATA_DIR: {__file__} exists and is not a folder",
        ),
    ],
    ids=[
        "port-not-int",
        "port-range",
        "env-unknown",
        "prod-no-secret",
        "prod-weak-secret",
        "prod-one-letter-secret",
        "bad-uuid",
        "data-dir-empty",
        "data-dir-a-file",
    ],
)
def test_load_settings_bad_value_names_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value)


def test_load_settings_production_accepts_strong_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TLOUNGE_ENV", "production")
    monkeypatch.setenv("TLOUNGE_JWT_SECRET", "3f1c9a520a4e4c559d615b0e2f7f2a10")
    monkeypatch.setenv("TLOUNGE_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.effective_log_json is True


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TLOUNGE_API_PORT", "x",
         "Input should be a valid integer, unable to parse string as an integer"),
        ("TLOUNGE_TRUSTED_PROXIES", "10.0.0.1, *",
         "'*' is not an IP address or network"),
    ],
    ids=["port", "trusted-proxies"],
)  # fmt: skip
def test_cli_bad_setting_exits_with_one_line(
    variable: str, value: str, reason: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "migrate"],
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr.strip().splitlines()) == (
        2,
        [f"tlounge: invalid configuration: {variable}: {reason}"],
    )
