"""Alerting: routing, grouping, the durable outbox and the notifiers. No statistics here."""
