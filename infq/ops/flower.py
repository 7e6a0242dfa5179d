"""Flower's basic-auth credentials: from settings, or (locally) generated once and kept
in the stack directory, so Flower never runs open, not even on a laptop."""

from __future__ import annotations

import secrets

from infq.errors import ConfigurationError
from infq.settings import Environment, Settings

PASSWORD_FILE = "flower-password"  # noqa: S105 - a file name


def credentials(settings: Settings) -> tuple[str, str]:
    """``(user, password)`` for Flower's ``--basic-auth``."""
    if settings.flower_password is not None:
        return settings.flower_user, settings.flower_password.get_secret_value()
    if settings.environment is Environment.PRODUCTION:
        raise ConfigurationError("set INFQ_FLOWER_PASSWORD: Flower never runs without auth")
    path = settings.stack_dir / PASSWORD_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return settings.flower_user, path.read_text().strip()
