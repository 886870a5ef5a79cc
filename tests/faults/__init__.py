"""Fault tests: components killed or restarted under a running replay."""
