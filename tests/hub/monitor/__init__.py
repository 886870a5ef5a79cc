"""Tests of the monitor (hub/monitor)."""
