"""Readable messages for the app: exceptions become one or two sentences, never a traceback."""

from __future__ import annotations

import html
import logging

LOGGER = logging.getLogger("aiida_mofmlp.app")


def readable_error(error: BaseException, action: str) -> str:
    """``action`` failed: the exception's own message (the plugin's messages name input and fix)."""
    LOGGER.debug("%s failed", action, exc_info=error)
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    return f"{action} failed: {text}"


def daemon_status() -> tuple[bool, str]:
    """Whether the AiiDA daemon of the loaded profile runs, with a sentence for the user."""
    try:
        from aiida.engine.daemon.client import get_daemon_client

        client = get_daemon_client()
        if client.is_daemon_running:
            return True, f"the AiiDA daemon of profile {client.profile.name!r} is running"
        return False, (
            f"the AiiDA daemon of profile {client.profile.name!r} is not running: start it with "
            f"`verdi -p {client.profile.name} daemon start` (scripts/app.sh starts it), then submit again"
        )
    except Exception as error:  # no profile, no broker configured, ...
        return False, readable_error(error, "checking the AiiDA daemon")


def as_html_list(lines: list[str], css_class: str) -> str:
    """Lines as an escaped HTML list with ``css_class`` (empty string for no lines)."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<ul class="{css_class}">{items}</ul>'
