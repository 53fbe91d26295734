"""A password inside base_url is scrubbed like any other secret."""

from __future__ import annotations

from sources.http import HttpSourceConfig, scrub_secrets, secrets_of


def test_password_in_base_url_is_a_secret() -> None:
    cfg = HttpSourceConfig.model_validate(
        {"type": "http_json", "base_url": "https://bob:s3cr3t-pw@api.example.com/v1"})
    msg = "GET https://bob:s3cr3t-pw@api.example.com/v1/x failed"
    assert "s3cr3t-pw" not in scrub_secrets(msg, secrets_of(cfg))


def test_a_percent_encoded_password_is_scrubbed_in_both_forms() -> None:
    """``p%40ss`` in the URL is ``p@ss`` once a client decodes it: both are hidden."""
    cfg = HttpSourceConfig.model_validate(
        {"type": "http_json", "base_url": "https://bob:p%40ss-w0rd@api.example.com/v1"})
    msg = "auth bob:p@ss-w0rd failed for https://bob:p%40ss-w0rd@api.example.com/v1"
    scrubbed = scrub_secrets(msg, secrets_of(cfg))
    assert "p@ss-w0rd" not in scrubbed and "p%40ss-w0rd" not in scrubbed
