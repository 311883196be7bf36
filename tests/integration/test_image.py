"""The container image: built here from Debian packages (deploy/image/build.sh), run
with podman as the DaemonSet runs it (privileged, the host's pids and network), and
seeing a failure made on the host."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.live import Netns
from tests.helpers.prometheus import free_port, get, need

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/nlbpf:test"


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """podman as this machine runs it (../shared/container-notes.md): no default
    ulimits, runc and cgroupfs (the cgroup setup is hybrid), vfs storage."""
    conf = tmp_path_factory.mktemp("podman")
    (conf / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n')
    (conf / "storage.conf").write_text(
        '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\n'
        'graphroot = "/var/lib/containers/storage"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf")}
    need("podman")
    need("mmdebstrap")
    t0 = time.monotonic()
    build = subprocess.run([str(REPO / "deploy/image/build.sh"), "--tag", TAG], env=env,
                           capture_output=True, text=True, timeout=1500)
    assert build.returncode == 0, build.stderr[-4000:]
    assert build.stdout.strip() == TAG
    print(f"image built in {time.monotonic() - t0:.0f} s: {build.stderr.strip().splitlines()[-1]}")
    yield env
    subprocess.run(["podman", "rmi", "-f", TAG], env=env, capture_output=True)


def test_the_image_serves_a_failure_made_on_the_host(podman):
    port = free_port()
    ns = Netns()
    name = f"nlbpf-test-{port}"
    run = subprocess.run(
        ["podman", "run", "-d", "--rm", "--name", name, "--privileged", "--pid=host",
         "--network=host", "-v", "/sys/kernel:/sys/kernel", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
         "-v", "/run/netns:/run/netns:ro,rslave", "-v", "/lib/modules:/lib/modules:ro",
         TAG, "serve", "--listen", f"127.0.0.1:{port}", "--slow", "off", "--interval", "0.5"],
        env=podman, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        # the endpoint answers at once; nlbpf_up is 1 once the probes are attached
        deadline = time.monotonic() + 180
        while True:
            try:
                text, _ = get(url, timeout=5)
                if "\nnlbpf_up 1.0" in text:
                    break
            except OSError:
                pass
            logs = subprocess.run(["podman", "logs", name], env=podman,
                                  capture_output=True, text=True)
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
            time.sleep(1)
        for i in range(4):
            ns.ip("route", "del", f"10.98.{i}.0/24", check=False)
        deadline = time.monotonic() + 30
        value = None
        while time.monotonic() < deadline:
            text, _ = get(url)
            line = next((line for line in text.splitlines()
                         if line.startswith("nlbpf_request_errors_total{")
                         and f'netns="{ns.name}"' in line and "ESRCH" in line), None)
            value = float(line.rsplit(" ", 1)[1]) if line else None
            if value == 4:
                break
            time.sleep(0.5)
        assert value == 4, text[-3000:]
        assert 'comm="ip"' in line and 'type="RTM_DELROUTE"' in line, line
    finally:
        logs = subprocess.run(["podman", "logs", name], env=podman, capture_output=True,
                              text=True)
        subprocess.run(["podman", "stop", "-t", "20", name], env=podman, capture_output=True)
        ns.delete()
    assert "Tracing netlink" in logs.stderr + logs.stdout, logs.stderr
