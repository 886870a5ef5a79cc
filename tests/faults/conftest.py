"""Fixtures of the fault tests (defined in :mod:`tests.e2e.harness`)."""

from __future__ import annotations

import pytest

# Before the import: the harness holds the accounting assertions, and pytest
# rewrites asserts only in the modules it is told about.
pytest.register_assert_rewrite("tests.e2e.harness", "tests.faults.helpers")

from tests.e2e.harness import (  # noqa: E402  (after the rewrite registration)
    intel_slice,
    pytest_runtest_makereport,
    site,
    store_url,
)

__all__ = ["intel_slice", "pytest_runtest_makereport", "site", "store_url"]
