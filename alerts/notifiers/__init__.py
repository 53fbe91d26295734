"""Notifiers: one module per delivery channel."""

from alerts.notifiers.base import Notifier, NotifyError
from alerts.notifiers.console import ConsoleNotifier

__all__ = ["ConsoleNotifier", "Notifier", "NotifyError"]
