"""A password inside base_url is scrubbed like any other secret."""

from __future__ import annotations

from sources.http import HttpSourceConfig, scrub_secrets, secrets_of


def test_password_in_base_url_is_a_secret() -> None:
    cfg = HttpSourceConfig.model_validate(
        {"type": "http_json", "base_url": "https://bob:s3cr3t-pw@api.example.com/v1"})
    msg = "GET https://bob:s3cr3t-pw@api.example.com/v1/x failed"
    assert "s3cr3t-pw" not in scrub_secrets(msg, secrets_of(cfg))
