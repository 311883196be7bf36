"""bench/floor.py --sock-copy, for real: the floor that says what a socket-layer trace
would cost must copy every netlink message it sees, or it measures nothing."""
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.live import require_sock_layer

FLOOR = Path(__file__).resolve().parents[2] / "bench" / "floor.py"
ROUTES = 300


@pytest.fixture(scope="module")
def sock_layer_loads():
    require_sock_layer()


def test_sock_copy_floor_hands_over_every_request_and_ack(sock_layer_loads, netns):
    proc = subprocess.Popen([sys.executable, str(FLOOR), "--sock-copy"], stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr.readline().startswith("Tracing netlink"), "floor.py did not attach"
        netns.batch([f"route add blackhole 10.{i // 250}.{i % 250}.0/24" for i in range(ROUTES)])
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, err
    m = re.search(r"floor: (\d+) records read, (\d+) lost", err)
    assert m, err
    # each route add is a request (sock_send_length) and its ACK (sk_data_ready);
    # other netlink traffic on the machine only adds to it
    assert int(m.group(1)) >= 2 * ROUTES, err
    assert m.group(2) == "0", err


def test_every_copy_costs_variant_loads(sock_layer_loads):
    """bench/copy_costs.py's variants compile, pass the verifier and attach"""
    import importlib.util
    bench = FLOOR.parent
    mods = {}
    for name in ("floor", "copy_costs"):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", bench / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    from nlbpf.capture import environment
    environment.kernel_headers()
    for name, _, knobs, pages in mods["copy_costs"].VARIANTS:
        bpf, progs, ring = mods["floor"].load_sock_copy(ring_pages=pages, defines=knobs)
        ring.close()
        progs.close()
        bpf.cleanup()
