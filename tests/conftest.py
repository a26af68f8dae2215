"""Shared fixtures: every test gets its own store in tmp_path; real backends come from backends/."""

from __future__ import annotations

import os

# Must be set before gcsfs is first imported: its experimental layout probe retries a gRPC
# call against the emulator for up to a minute per operation.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

pytest_plugins = ["backends.fixtures"]
