"""How ``cxmon run`` runs: tick timing (``scheduler:``) and where slow fits run (``executor:``).

These settings change no result, only when and where work happens, so they are kept apart
from the models that describe what is monitored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from monitor.config.fields import _STRICT, _non_negative, _positive
from monitor.durations import Duration, format_duration


class SchedulerConfig(BaseModel):
    """Tick timing: jitter spreads polls; misfire grace lets a late tick still run; how long
    a stop waits for a delivery pass still sending."""

    model_config = _STRICT

    jitter: Duration = timedelta(seconds=5)
    misfire_grace: Duration = timedelta(minutes=1)
    delivery_stop_timeout: Duration = Field(
        timedelta(seconds=30), description="at a stop (SIGTERM), how long to wait for a "
        "delivery pass still sending (a webhook that hangs); what it did not send stays in "
        "the outbox, sent by the next start")

    _durations_non_negative = field_validator("jitter", "misfire_grace",
                                              "delivery_stop_timeout")(_non_negative)


class InlineExecutorConfig(BaseModel):
    """Slow model fits run on the tick itself (reproducible; what backtests do)."""

    model_config = _STRICT

    type: Literal["inline"]


class StallLimits(BaseModel):
    """How long ``cxmon run --once`` waits for its fits when none finishes (a cluster without
    workers accepts fits and never runs them): warn after ``stall_warning``, cancel after
    ``stall_timeout``. Why settable: a big Prophet refit on a slow pool can take longer than
    the defaults, and a CI smoke run wants to fail sooner."""

    model_config = _STRICT

    stall_warning: Duration = Field(timedelta(minutes=1), description="--once: log a warning "
                                    "when no fit has finished for this long")
    stall_timeout: Duration = Field(timedelta(minutes=5), description="--once: cancel the "
                                    "waiting fits (retried on the next run) when none has "
                                    "finished for this long")

    _stall_positive = field_validator("stall_warning", "stall_timeout")(_positive)

    @model_validator(mode="after")
    def _warning_first(self) -> StallLimits:
        if self.stall_warning > self.stall_timeout:
            raise ValueError(f"stall_warning ({format_duration(self.stall_warning)}) is after "
                             f"stall_timeout ({format_duration(self.stall_timeout)}): the "
                             "warning would never be logged")
        return self


class LocalExecutorConfig(StallLimits):
    """Slow model fits (Prophet refits) run in a pool of this process, off the tick path."""

    model_config = _STRICT

    type: Literal["local"] = "local"
    workers: int = Field(1, ge=1, le=256, description="Fits running at once.")
    processes: bool = Field(False, description="Worker processes instead of threads "
                            "(isolates a fit that crashes or leaks; costs start-up time).")


class DaskExecutorConfig(StallLimits):
    """Slow model fits run on a Dask cluster (``dask.distributed``)."""

    model_config = _STRICT

    type: Literal["dask"]
    address: str = Field(min_length=1, description="Scheduler address, e.g. "
                         "tcp://dask-scheduler:8786 (workers need cxmon installed).")
    timeout: Duration = Field(timedelta(seconds=10), description="Connecting to the "
                              "scheduler gives up after this long (a host that does not "
                              "resolve or a refused port fails at once).")

    _timeout_positive = field_validator("timeout")(_positive)

    @field_validator("address")
    @classmethod
    def _address_form(cls, v: str) -> str:
        """``[tcp://]host:port``, checked here: Dask's own errors for a malformed address
        are tracebacks from deep inside its client."""
        scheme, sep, rest = v.partition("://")
        if not sep:
            scheme, rest = "tcp", v
        if scheme in ("tls", "wss"):
            raise ValueError(f"{scheme}:// needs TLS settings that cxmon does not pass to Dask "
                             "yet; use tcp:// (e.g. inside a private network)")
        if scheme not in ("tcp", "ws", "inproc", "ucx"):
            raise ValueError(f"unknown scheme {scheme!r}: a Dask scheduler address is "
                             "tcp://host:port (also ws://, ucx://)")
        host, colon, port = rest.rpartition(":")
        if scheme != "inproc" and (not colon or not host.strip("[]") or not port.isdigit()
                                   or not 0 < int(port) < 65536):
            raise ValueError("expected tcp://host:port with a port from 1 to 65535, e.g. "
                             "tcp://dask-scheduler:8786")
        return v


def _executor_type(value: Any) -> str | None:
    """The executor's ``type:``; ``local`` when omitted (``{workers: 4}``)."""
    if isinstance(value, Mapping):
        return value.get("type", "local") if isinstance(value.get("type", "local"), str) else None
    return getattr(value, "type", None)


ExecutorConfig = Annotated[
    Annotated[InlineExecutorConfig, Tag("inline")]
    | Annotated[LocalExecutorConfig, Tag("local")]
    | Annotated[DaskExecutorConfig, Tag("dask")],
    Discriminator(_executor_type, custom_error_type="executor_type",
                  custom_error_message="unknown executor type; valid types: inline, local, dask"),
]
