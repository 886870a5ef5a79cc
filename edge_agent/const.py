"""Constants of the edge agent: defaults, buffer accounting and names."""

from __future__ import annotations

from typing import Final

#: The agent's name in its state messages (``agent`` field), before the version.
AGENT_NAME: Final = "streamflow-edge"

#: The hub refuses payloads above this (protocol v1, case C17); no batch may
#: pass it.
HUB_MAX_PAYLOAD_BYTES: Final = 256 * 1024

#: Bytes a pending reading is accounted for besides its dev, metric and unit
#: text. Measured on SQLite 3 with this schema (rowid, five numbers, the
#: received_at index): 58 bytes of row, index and page overhead per reading;
#: rounded up so that the accounted size is never below the used pages.
ROW_OVERHEAD_BYTES: Final = 60

#: Readings written in one transaction at most (a group of incoming messages).
WRITE_GROUP_READINGS: Final = 1000
#: A group stops taking new messages this long after its first one.
WRITE_GROUP_S: Final = 0.05
#: A group of only a few local messages waits this long for more, because a
#: commit costs about 120 µs of CPU (fsync included) however small it is:
#: at 1,000 messages/s this cuts the agent's CPU from 23 % to 13 % of a core.
WRITE_LINGER_S: Final = 0.005
#: ... but not once it holds this many: below Mosquitto's default inflight
#: window (20 un-PUBACKed messages), so the linger never waits for messages
#: the broker holds back until we PUBACK.
LOCAL_GROUP_MIN: Final = 10

#: Inbox entries kept to recognise a local message redelivered after a crash.
#: Only messages the local broker had not seen acknowledged are redelivered,
#: which are at most its inflight window (Mosquitto: 20 by default, and MQTT 5
#: Receive Maximum at most 65535).
INBOX_KEEP: Final = 65536

#: Reasons a reading is dropped by the buffer (meta counters ``dropped:*``).
DROP_BUFFER_FULL: Final = "buffer_full"

#: Reject counted when an adapter raised instead of returning rejects (a bug
#: in the adapter, not bad input; logged with its traceback).
REJECT_ADAPTER_ERROR: Final = "adapter_error"

#: Longest wait of the worker loop when nothing is due (seconds).
IDLE_WAKE_S: Final = 1.0
#: Wait of the worker loop while readings are pending (seconds).
BUSY_WAKE_S: Final = 0.05

#: A warning of one kind is logged at most once per this many seconds.
WARNING_INTERVAL_S: Final = 10.0
