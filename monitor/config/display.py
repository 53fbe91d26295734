"""The ``display:`` section: names people read for labels and label values.

Identifiers stay in series keys and links; this module validates the readable names (text,
distinct) and warns about names nothing uses, apart from the rest of the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.config.fields import _STRICT, DisplayName, LabelName
from monitor.config.problems import format_path
from monitor.config.validator_errors import Loc, _did_you_mean, _raise, _relocate
from monitor.zones import Zone

if TYPE_CHECKING:  # the root model holds this section
    from monitor.config.root import MonitorConfig


def _yaml_key_problem(key: Any) -> str | None:
    """Why a YAML key cannot be a label value (None: it can, after ``str``)."""
    if isinstance(key, bool) or key is None:
        what = "null (~, null)" if key is None else "a boolean (yes, no, on, off, true, false)"
        return (f"a label value is read by YAML as {what}, not text: quote it ('no': Norway)")
    if isinstance(key, float):
        return f"{key} is read by YAML as a number: quote the label value as in the data"
    return None


class DisplayConfig(BaseModel):
    """Names people read for labels and label values in alerts and dashboards (identifiers
    stay in series keys, links and webhook ``labels``)."""

    model_config = _STRICT

    labels: dict[LabelName, DisplayName] = Field(
        default_factory=dict, description="label -> its display name (channel: Channel)")
    values: dict[LabelName, dict[str, DisplayName]] = Field(
        default_factory=dict,
        description="label -> {value: display name} (channel: {app: Mobile app})")
    timezone: Zone = Field(
        "UTC", description="IANA time zone of the times people read: alert text (Slack, the "
        "console, PagerDuty) and cxmon anomalies, e.g. Europe/Berlin (stored times stay UTC)")

    @field_validator("values", mode="wrap")
    @classmethod
    def _values_text(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        """Label values are text in the data: ``1`` becomes "1"; a YAML boolean (``no``),
        null or float is an error with a hint to quote it, reported with the other
        problems of the section."""
        if not isinstance(value, Mapping):
            return handler(value)
        mine: list[InitErrorDetails] = []
        out: dict[Any, Any] = {}
        for label, names in value.items():
            out[label] = names
            if isinstance(names, Mapping):
                out[label] = {}
                for key, name in names.items():
                    if (why := _yaml_key_problem(key)) is not None:
                        mine.append(InitErrorDetails(type=PydanticCustomError("value_key", why),
                                                     loc=(label,), input=None))
                    else:
                        out[label][str(key)] = name
        try:
            result = handler(out)
        except ValidationError as exc:
            mine += _relocate(exc)
        if mine:
            raise ValidationError.from_exception_data("values", mine)
        return result

    @model_validator(mode="after")
    def _distinct(self) -> DisplayConfig:
        """Two labels (or two values of a label) with one display name would make alerts that
        cannot tell them apart."""
        errors: list[tuple[Loc, str, str]] = []
        errors += _same_names(self.labels, ("labels",), "label")
        for label, names in self.values.items():
            errors += _same_names(names, ("values", label), f"{label} value")
        _raise("display", errors)
        return self


def _same_names(names: Mapping[str, str], loc: Loc, what: str) -> list[tuple[Loc, str, str]]:
    """A problem per key whose display name an earlier key already has."""
    first: dict[str, str] = {}
    out: list[tuple[Loc, str, str]] = []
    for key, name in names.items():
        if name.casefold() in first:
            out.append(((*loc, key), "duplicate",
                        f"display name {name!r} is already that of {what} "
                        f"{first[name.casefold()]!r}: alerts could not tell them apart"))
        else:
            first[name.casefold()] = key
    return out


def display_warnings(config: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for display names nothing uses: a label in ``display`` that
    no metric has (as a dimension, ``split_by`` or ``labels`` key: a typo, the text stays an
    identifier), and two metrics with one ``title``. Not errors: the alerts still work."""
    known = sorted({k for m in config.metrics for k in (*m.dimensions, *m.split_by, *m.labels)})
    out: list[tuple[str, str]] = []
    for part in ("labels", "values"):
        for label in getattr(config.display, part):
            if label not in known:
                out.append((format_path(("display", part, label)),
                            f"no metric has a label {label!r}{_did_you_mean(label, known)}; "
                            f"metric labels: {', '.join(known) or 'none'}"))
    titles: dict[str, int] = {}
    for i, m in enumerate(config.metrics):
        if m.title is None:
            continue
        if m.title.casefold() in titles:
            j = titles[m.title.casefold()]
            out.append((format_path(("metrics", i, "title")),
                        f"{m.title!r} is also the title of {config.metrics[j].name} "
                        f"(metrics[{j}]): alerts could not tell them apart"))
        else:
            titles[m.title.casefold()] = i
    return out
