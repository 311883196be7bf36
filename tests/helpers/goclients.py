"""The test clients written in Go (tests/clients/*.go), against Debian's Go netlink
library: built by tests/clients/build.sh (scripts/setup.sh --go runs it; so does
vm/run-tests.sh, for the guest, which has no Go toolchain)."""
import shutil
import subprocess

import pytest

from tests.helpers.live import TESTS

CLIENTS = TESTS / "clients"


def go_client(name):
    """The path of client `name`, built first where Go is installed; the test skips,
    saying why, where it cannot be had."""
    src, binary = CLIENTS / f"{name}.go", CLIENTS / "bin" / name
    stale = not binary.exists() or binary.stat().st_mtime < src.stat().st_mtime
    if stale and shutil.which("go"):
        r = subprocess.run(["bash", str(CLIENTS / "build.sh")], capture_output=True, text=True)
        if r.returncode:
            pytest.fail(f"tests/clients/build.sh failed: {r.stderr.strip()}")
    elif stale:
        pytest.skip(f"the Go client {name} is not built and there is no Go toolchain here "
                    f"(scripts/setup.sh --go installs it)")
    return str(binary)
