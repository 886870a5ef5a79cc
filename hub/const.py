"""Constants of the hub: defaults, timings and names shared by its modules."""

from __future__ import annotations

from typing import Final

#: The MQTT client id of the hub; with a persistent session the broker keeps
#: the hub's QoS 1 messages under this id while it restarts.
DEFAULT_CLIENT_ID: Final = "streamflow-hub"
DEFAULT_MQTT_URL: Final = "mqtt://127.0.0.1:1883"
DEFAULT_DATA_DIR: Final = "./streamflow-data"
DEFAULT_API_HOST: Final = "127.0.0.1"
DEFAULT_API_PORT: Final = 8000
DEFAULT_BROKER_HOST: Final = "127.0.0.1"
DEFAULT_BROKER_PORT: Final = 1883
SQLITE_FILE_NAME: Final = "streamflow.db"

#: Everything the hub subscribes to and publishes is QoS 1 (README, "Protocol v1").
QOS: Final = 1
#: Seconds the broker keeps the hub's session (MQTT 5 only; MQTT 3.1.1
#: brokers keep a persistent session as long as they are configured to).
SESSION_EXPIRY_S: Final = 3600
KEEPALIVE_S: Final = 30
#: How long the first connection to PostgreSQL may take at start-up.
DB_PROBE_TIMEOUT_S: Final = 5
#: How long start() waits for the broker's CONNACK.
CONNECT_TIMEOUT_S: Final = 10.0
#: paho's own reconnect back-off, first and longest delay.
RECONNECT_MIN_DELAY_S: Final = 1
RECONNECT_MAX_DELAY_S: Final = 30

#: A message waits this long for room in the full queue before it is shed.
SHED_AFTER_S: Final = 2.0
#: Store retry back-off while the database is down or refusing writes.
RETRY_MIN_DELAY_S: Final = 0.2
RETRY_MAX_DELAY_S: Final = 5.0
#: How long stop() may take to drain the queue into the store and ack.
STOP_GRACE_S: Final = 10.0
#: Interval of the counters line logged at INFO.
METRICS_LOG_INTERVAL_S: Final = 60.0
#: Interval at which the hub rewrites its status file (read by /healthz).
STATUS_INTERVAL_S: Final = 2.0
STATUS_FILE_NAME: Final = "hub-status.json"

#: A repeated warning for the same (topic, reason) is logged at most this often.
WARNING_INTERVAL_S: Final = 60.0
#: Keys the warning rate limiter remembers before it forgets the oldest.
WARNING_KEYS_MAX: Final = 4096
#: Bytes of a payload kept in a log line (never the full payload).
LOG_PAYLOAD_PREVIEW: Final = 64
