"""SMS through a provider with Twilio's REST API shape.

`POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with form fields `To`,
`From`, `Body` and basic auth (account SID, auth token). A 4xx means the
request itself is wrong (a bad number): not retried. 429 and 5xx are retried.
"""

from __future__ import annotations

import httpx

from fhir_server.notifications.channels.base import DeliveryError
from fhir_server.settings import Settings


def send_sms(settings: Settings, to: str, body: str) -> None:
    assert settings.sms_base_url is not None
    sid = settings.sms_account_sid or ""
    url = f"{settings.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
    try:
        response = httpx.post(
            url,
            data={"To": to, "From": settings.sms_from, "Body": body},
            auth=(sid, settings.sms_auth_token or ""),
            timeout=10,
        )
    except httpx.HTTPError:
        raise DeliveryError("The SMS provider could not be reached.") from None
    status = response.status_code
    if status < 300:
        return
    permanent = 400 <= status < 500 and status != 429
    raise DeliveryError(f"The SMS provider answered {status}.", permanent=permanent)
