"""Local stand-ins for vendor APIs: real HTTP servers on 127.0.0.1 ephemeral ports that
replay each vendor's documented response formats (pagination, 429 + Retry-After, 5xx,
expired credentials)."""
