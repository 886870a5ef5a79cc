"""Alerts: the lifecycle the monitor runs, and their delivery to people and devices.

- :mod:`hub.alerts.notice` holds what is delivered (:class:`Notice`) and the
  one JSON shape of an alert on MQTT, the live stream and webhooks.
- The store (:class:`hub.storage.base.Store`) keeps alerts and their history.
"""
