"""Settings are read once, on first use, and the server's extend them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medgym.errors import ConfigError
from medgym.settings import MedgymSettings, get_settings, reload_settings


def test_import_parses_no_setting() -> None:
    """A bad MEDGYM_* value does not break `import medgym`; it is named when first used."""
    code = (
        "import medgym, medgym.data, medgym.rewards\n"
        "from medgym.data.io import max_pixels\n"
        "try:\n    max_pixels()\nexcept medgym.errors.ConfigError as e:\n    print(e)\n"
    )
    env = {"MEDGYM_MAX_PIXELS": "lots", "MEDGYM_IMAGE_CACHE_SIZE": "-1", "PATH": ""}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MEDGYM_MAX_PIXELS:") and "'lots'" in proc.stdout


def test_read_once_until_reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGYM_IMAGE_CACHE_SIZE", "7")
    first = get_settings()
    monkeypatch.setenv("MEDGYM_IMAGE_CACHE_SIZE", "9")
    assert get_settings() is first and first.image_cache_size == 7
    assert reload_settings().image_cache_size == 9


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGYM_IMAGE_CACHE_SIZE", "-1")
    with pytest.raises(ConfigError, match="MEDGYM_IMAGE_CACHE_SIZE"):
        get_settings()


def test_server_settings_extend_the_shared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from medgym.serving.settings import ServerSettings

    monkeypatch.setenv("MEDGYM_TOKEN", "s3cret")
    monkeypatch.setenv("MEDGYM_MAX_PIXELS", "1000")
    server = ServerSettings()
    assert isinstance(server, MedgymSettings)
    assert server.token is not None and server.token.get_secret_value() == "s3cret"
    assert server.max_pixels == reload_settings().max_pixels == 1000
