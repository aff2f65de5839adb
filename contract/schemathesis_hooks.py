"""schemathesis hooks for contract/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS)."""

from urllib.parse import parse_qsl

import schemathesis


@schemathesis.deserializer("application/x-www-form-urlencoded")
def form_encoded(ctx, response):
    """The revocation endpoint's errors are form-encoded, as Salesforce's: decoded to an
    object, so that they are checked against the OAuthError schema like the JSON ones."""
    text = response.content.decode("utf-8")
    return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))


@schemathesis.deserializer("text/plain", "text/html")
def text(ctx, response):
    """Plain-text answers (`/healthz`, `/readyz`, the identity URL's error codes) and the pages:
    the text itself, so that a documented `const` or `enum` is checked too."""
    return response.content.decode("utf-8")
