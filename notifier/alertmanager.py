"""Alertmanager's API v2 over HTTP (httpx): post alerts, read its resolve_timeout.

Only the edge: what to post is decided in ``notifier.alerts``, when to retry in
``notifier.service`` with ``notifier.backoff``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import yaml

from notifier.alerts import AmAlert, parse_go_duration
from notifier.config import Settings

log = logging.getLogger("notifier")

#: Alertmanager answers these when an alert itself is invalid: sending it again cannot help.
PERMANENT = (400, 422)


class DeliveryError(RuntimeError):
    """Alertmanager did not accept the alerts; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Alertmanager:
    """A client of one Alertmanager, with the configured TLS and basic auth."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        # Settings has both or neither.
        auth = (
            (settings.username, settings.password)
            if settings.username and settings.password
            else None
        )
        self.url = settings.alertmanager_url
        self._client = httpx.Client(
            base_url=settings.alertmanager_url + "/",
            timeout=settings.request_timeout_seconds,
            verify=settings.tls if settings.tls is not None else True,
            auth=auth,
            headers={"User-Agent": "sensor-anomaly-notifier"},
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def post(self, alerts: Sequence[AmAlert]) -> None:
        """POST /api/v2/alerts; returns once Alertmanager answered 200, else ``DeliveryError``."""
        if not alerts:
            return
        try:
            resp = self._client.post("api/v2/alerts", json=[a.payload() for a in alerts])
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 200:
            return
        body = resp.text.strip().replace("\n", " ")[:300]
        raise DeliveryError(
            f"HTTP {resp.status_code}: {body}", permanent=resp.status_code in PERMANENT
        )

    def resolve_timeout(self) -> float | None:
        """Alertmanager's ``global.resolve_timeout`` in seconds (from GET /api/v2/status), or
        None if it cannot be read now (down, an older API): a best-effort start-up check."""
        try:
            resp = self._client.get("api/v2/status", timeout=5)
            resp.raise_for_status()
            original = resp.json()["config"]["original"]
            text = yaml.safe_load(original).get("global", {}).get("resolve_timeout", "5m")
            return parse_go_duration(str(text))
        except (
            httpx.HTTPError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            yaml.YAMLError,
        ) as exc:
            log.debug("could not read Alertmanager's resolve_timeout: %s", exc)
            return None
