"""The README's shell examples run as written, and every command is in the README.

Each fenced ``sh`` block of README.md is run by bash, one after the other in one session
(so ``$ID`` and ``$KEY`` set by one line are there for the next), in a scratch folder:
``.venv/bin/activate`` there puts a ``dreamflare`` that runs this checkout on the PATH,
as the README's install would. Only the blocks that install packages or run the
development tools are left out (by their first words, below). The one change made to the
text: the server's port 8000 becomes a free port, so the test never meets another server.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dreamflare_store.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Blocks that install or develop: they need the network, or run this very test suite.
NOT_RUN = ("python3 -m venv", ".venv/bin/python -m pytest")


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def runnable() -> list[str]:
    return [block for block in shell_blocks() if not block.startswith(NOT_RUN)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_venv(work: Path) -> None:
    """``.venv/bin/activate`` and ``.venv/bin/dreamflare`` running this checkout."""
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    command = bin_dir / "dreamflare"
    command.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c"
        ' \'import sys; from dreamflare_store.cli import main; sys.argv[0] = "dreamflare";'
        ' main()\' "$@"\n'
    )
    command.chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')


def test_the_readme_has_the_examples_this_test_runs() -> None:
    blocks = runnable()
    assert len(blocks) >= 3  # the command line, the HTTP API, sync
    assert any("dreamflare demo" in block for block in blocks)
    assert any("curl" in block and "$KEY" in block and "$ID" in block for block in blocks)


@pytest.mark.timeout(200)
def test_the_readme_shell_examples_run_as_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fake_venv(work)
    port = str(free_port())
    script = "set -euo pipefail\n" + "\n".join(block.replace("8000", port) for block in runnable())
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DREAMFLARE_") and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the server it starts in the background is in its group
    )
    try:
        out, err = process.communicate(timeout=150)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the README's `kill %1` ran
            os.killpg(process.pid, signal.SIGTERM)
    assert process.returncode == 0, (out[-4000:], err[-4000:])
    # What the session says it did, it did.
    assert "Uploaded 7 files: 1 new, 0 new versions, 6 unchanged (1 deduplicated)" in out
    assert (work / "renders" / "comfyui" / "forest-0001.png").is_file()
    assert (work / "backup" / "renders" / "a1111" / "cat-0002.png").is_file()
    assert (work / "shared" / "cat-0001.png").is_file()
    assert (work / "cat.png").read_bytes() == (work / "renders/a1111/cat-0001.png").read_bytes()
    assert "renders/comfyui/robot-0001.png" in out.splitlines()  # the jq line
    assert (work / "backup-remote").is_dir()
    assert "Traceback" not in err


def leaf_commands(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):  # the root group imports its commands lazily
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found.extend(leaf_commands(command, f"{prefix}{name} "))
        else:
            found.append(f"{prefix}{name}")
    return found


@pytest.mark.parametrize("command", sorted(leaf_commands(cli)))
def test_every_command_is_in_the_readme(command: str) -> None:
    first = command.split()[0]
    assert f"dreamflare {command}" in README or f"`{first}" in README, command
