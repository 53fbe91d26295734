"""Files under a URL (``s3://``, ``gs://``, ``az://`` ...) for the ``files`` source, via fsspec.

Why: Lookout for Metrics read its data from S3, and that is where its users' exports still
land. Syncing the bucket to a local folder first (``aws s3 sync`` in cron) adds a second
schedule that can lag or fail silently; reading the objects directly keeps one poll with its
retries, metrics and errors. fsspec is the filesystem layer pandas and Dask already use; the
protocol's own package (``s3fs`` for ``s3://``: ``pip install 'cxmon[s3]'``; ``gcsfs``,
``adlfs``) does the talking. Credentials come from that package's usual chain (for S3:
``AWS_*`` variables, ``AWS_PROFILE``, an instance or pod role) or from ``storage_options``.

Each poll lists the prefix afresh (fsspec caches listings, which would hide new objects) and
downloads an object again only when its ETag (or modification time) or size changed.
Failures become source errors a user can act on, with every secret of ``storage_options``
scrubbed: missing package or credentials and access denied are fatal, connection trouble is
retriable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from glob import has_magic as glob_has_magic
from typing import Any

import fsspec

from monitor.redact import is_secret_name
from sources.base import FatalSourceError, RetriableSourceError
from sources.scrubbing import scrub_secrets

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: the package each common protocol needs, for the install hint
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs", "abfss": "adlfs"}


def protocol_of(path: str) -> str | None:
    """The URL scheme of a remote path (None for a local path or ``file://``).

    >>> protocol_of("s3://bucket/exports/*.csv"), protocol_of("exports/*.csv")
    ('s3', None)
    """
    m = _SCHEME.match(path)
    return None if m is None or m.group(1).lower() == "file" else m.group(1).lower()


def protocol_problem(path: str) -> str | None:
    """Why a URL's protocol cannot be read here (unknown, or its package not installed),
    for config validation; None when it can."""
    protocol = protocol_of(path)
    if protocol is None:
        return None
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        return f"unknown protocol {protocol}:// (fsspec has no filesystem of that name)"
    except ImportError:
        package = PACKAGES.get(protocol, f"the fsspec package for {protocol}://")
        extra = (" (pip install 'cxmon[s3]')" if package == "s3fs" else
                 f" (pip install {package})" if protocol in PACKAGES else "")
        return f"{protocol}:// paths need {package}, which is not installed{extra}"
    return None


def secret_options(options: Mapping[str, Any]) -> list[str]:
    """Values of ``storage_options`` (nested ones too) whose key names a credential."""
    out: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            out += secret_options(value)
        elif isinstance(value, str) and value and is_secret_name(str(key)):
            out.append(value)
    return out


def join_url(base: str, path: str) -> str:
    """``path`` under the URL ``base`` (an absolute URL ``path`` wins).

    >>> join_url("s3://bucket/exports/", "2026/*.csv")
    's3://bucket/exports/2026/*.csv'
    """
    return path if protocol_of(path) else f"{base.rstrip('/')}/{path.lstrip('/')}"


class RemoteFiles:
    """The objects of one protocol, as the ``files`` source needs them: glob, version, bytes."""

    def __init__(self, source: str, protocol: str, options: Mapping[str, Any]) -> None:
        self.source = source
        self.protocol = protocol
        self._options = dict(options)
        self._secrets = secret_options(options)
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            with self._errors(f"{self.protocol}://"):
                try:
                    self._fs = fsspec.filesystem(self.protocol, skip_instance_cache=True,
                                                 **self._options)
                except (KeyError, ValueError) as exc:
                    # the options contradict each other (s3fs: both ``secret`` and its alias
                    # ``password``, which a connection and a source can each bring): no retry
                    # fixes that, and validate must say so instead of a traceback
                    why = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                    raise FatalSourceError(scrub_secrets(
                        f"source {self.source}: storage_options refused by "
                        f"{self.protocol}://: {str(why).splitlines()[0]}",
                        self._secrets)) from None
        return self._fs

    def glob(self, pattern: str) -> list[str]:
        """The objects matching ``pattern`` now (full URLs, sorted); a missing bucket or
        prefix matches nothing."""
        fs = self.fs
        with self._errors(pattern):
            fs.invalidate_cache()  # a cached listing would hide objects written since
            try:
                found = fs.glob(pattern, detail=True)
            except FileNotFoundError:
                return []
        return sorted(self._url(p) for p, info in found.items() if info.get("type") != "directory")

    def missing_bucket(self, pattern: str) -> str | None:
        """Why ``pattern`` matches nothing when its S3 bucket is not there (a misspelt bucket
        name would otherwise read as an empty drop folder); None when the bucket exists or
        cannot be checked."""
        bucket = pattern.split("://", 1)[-1].split("/", 1)[0]
        if self.protocol not in ("s3", "s3a") or not bucket or glob_has_magic(bucket):
            return None  # only S3 tells "no such bucket" apart from "not allowed" cheaply
        try:
            # HEAD: 404 only when there is no such bucket (s3fs: FileNotFoundError); a 403
            # (a policy allowing some prefixes only) or a network error claims nothing
            self.fs.call_s3("head_bucket", Bucket=bucket)
        except FileNotFoundError:
            return f"bucket {bucket!r} does not exist; check its name"
        except Exception:  # the listing's own error is what the poll reports
            return None
        return None

    def version(self, url: str) -> tuple[str, int] | None:
        """What identifies this version of the object (ETag or modification time, and size);
        None when it is gone."""
        with self._errors(url):
            try:
                info = self.fs.info(url)
            except FileNotFoundError:
                return None
        tag = next((info[k] for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified",
                                      "updated", "last_modified") if info.get(k)), "")
        return str(tag), int(info.get("size") or 0)

    def read(self, url: str) -> bytes:
        """The object's bytes."""
        with self._errors(url):
            return bytes(self.fs.cat_file(url))

    def _url(self, path: str) -> str:
        return path if protocol_of(path) else f"{self.protocol}://{path}"

    @contextmanager
    def _errors(self, where: str) -> Iterator[None]:
        """Failures as source errors: fatal what a retry cannot fix, retriable the rest of
        the I/O trouble; secrets scrubbed, the first line of the cause kept."""
        try:
            yield
        except (FatalSourceError, RetriableSourceError):
            raise
        except ImportError:
            raise FatalSourceError(f"source {self.source}: {protocol_problem(where)}") from None
        except TypeError as exc:
            if "unexpected keyword argument" not in str(exc):
                raise
            package = PACKAGES.get(self.protocol, f"the fsspec package for {self.protocol}://")
            m = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
            hint = (" (S3 and S3-compatible stores: endpoint_url, key, secret, token, "
                    "client_kwargs, config_kwargs)" if package == "s3fs" else "")
            raise FatalSourceError(scrub_secrets(
                f"source {self.source}: storage_options: {package} has no option "
                f"{m.group(1) if m else '?'!r}{hint}", self._secrets)) from None
        except PermissionError as exc:
            raise FatalSourceError(self._say(where, "access denied", exc)) from None
        except Exception as exc:
            names = {c.__name__ for c in type(exc).__mro__}
            if names & {"NoCredentialsError", "PartialCredentialsError"}:
                raise FatalSourceError(
                    f"source {self.source}: no credentials for {where}: set them the usual way "
                    f"for {self.protocol} (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "AWS_PROFILE, or an instance role) or in storage_options") from None
            if isinstance(exc, OSError | TimeoutError) or names & {
                    "BotoCoreError", "ClientError", "ClientConnectorError"}:
                raise RetriableSourceError(self._say(where, "cannot read", exc)) from None
            raise

    def _say(self, where: str, what: str, exc: BaseException) -> str:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        return scrub_secrets(f"source {self.source}: {what} {where}: {first}", self._secrets)
