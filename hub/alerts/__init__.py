"""Alerts: the lifecycle the monitor runs, and their delivery to people and devices.

- :mod:`hub.alerts.lifecycle`: the engine, one alert per condition, with
  flapping, storms and the rate limit (:class:`~hub.alerts.lifecycle.AlertEngine`);
  its settings in :mod:`hub.alerts.config`.
- :mod:`hub.alerts.notice`: what is delivered (:class:`~hub.alerts.notice.Notice`)
  and the one JSON shape of an alert on MQTT, the live stream and webhooks.
- The channels: :mod:`hub.alerts.email` (SMTP), :mod:`hub.alerts.webhook`
  (signed HTTP POSTs) and :mod:`hub.alerts.downlink` (the device's topic
  through its gateway); :mod:`hub.alerts.dispatch` runs each channel on a
  worker of its own, with retries.
- The store (:class:`hub.storage.base.Store`) keeps alerts and their history.
"""
