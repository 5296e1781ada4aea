"""Posting a Slack-compatible message ``{"text": ...}`` to a webhook, with the standard library.

The webhook's URL is a secret (it is the credential): no message, log line or error carries it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def post_text(url: str, text: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Post ``text``; None when delivered, else why not, in one line without the URL."""
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return None
    except urllib.error.HTTPError as error:
        return f"the webhook answered HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"the webhook could not be reached: {str(reason).replace(url, '<webhook>')}"
