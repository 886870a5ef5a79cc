"""End-to-end tests: every StreamFlow part as its own process."""
