"""Containers and namespaces: which netns, which cgroup, which pod did it.

Real probes, real network namespaces and real cgroup v2 directories made by the
tests (a Kubernetes-shaped cgroup tree under a private parent, and kubelet-style
log links in a fake host root for pod and container names).
"""
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from nlbpf.places import cgroup2_mount

from tests.helpers.live import NLCLIENT, Netns

TIMEOUT = 120


@pytest.fixture
def netns_pair():
    a, b = Netns(), Netns()
    yield a, b
    a.delete()
    b.delete()


class Cgroup:
    """A cgroup v2 directory this test owns (removed, children first, at the end)."""

    def __init__(self, mount, rel):
        self.mount = mount
        self.rel = rel
        self.path = Path(mount) / rel.lstrip("/")
        self.path.mkdir(parents=True)

    @property
    def id(self):
        return os.stat(self.path).st_ino

    def child(self, name):
        return Cgroup(self.mount, f"{self.rel}/{name}")

    def popen(self, argv, **kw):
        """Run argv inside this cgroup (the shell moves itself in, then execs)."""
        return subprocess.Popen(["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"',
                                 "sh", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kw)

    def run(self, argv):
        proc = self.popen(argv)
        out, err = proc.communicate(timeout=TIMEOUT)
        return proc.pid, proc.returncode, out, err

    def remove(self):
        dirs = sorted((p for p in self.path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in dirs + [self.path]:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)        # the last process is still on its way out


@pytest.fixture
def cgroup_root():
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 file system mounted")
    cg = Cgroup(mount, f"/nlbpf-test-{uuid.uuid4().hex[:8]}")
    yield cg
    cg.remove()


def by_pid(records, pid):
    return [r for r in records if r["pid"] == pid]


def failing_batch(ns, n):
    """n route adds then n deletes of routes that do not exist (each fails ESRCH)."""
    lines = [f"route add 10.77.{i}.0/24 dev lo" for i in range(n)]
    lines += [f"route del 10.78.{i}.0/24 dev lo" for i in range(n)]
    path = Path(f"/tmp/{ns.name}.batch")
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(["ip", "-n", ns.name, "-force", "-batch", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=TIMEOUT)
    path.unlink()
    assert err.count("No such process") == n, err[:500]
    return proc.pid


def test_one_host_instance_sees_every_netns_and_netns_filters_apply_in_kernel(nlbpf, netns_pair):
    a, b = netns_pair
    only_a = nlbpf("errors", "--netns", a.name, "--json")
    only_b = nlbpf("errors", "--netns", str(b.inode), "--json")     # by inode
    everything = nlbpf("trace", "--json")
    pid_a = failing_batch(a, 20)
    pid_b = failing_batch(b, 20)
    for run in (only_a, only_b, everything):
        run.stop(settle=1.0)

    recs_a = only_a.records()
    assert recs_a, only_a.stderr
    assert {r["netns"] for r in recs_a} == {a.inode}
    assert {r["netns_name"] for r in recs_a} == {a.name}
    dels = [r for r in by_pid(recs_a, pid_a) if r["type"] == "RTM_DELROUTE"]
    assert len(dels) == 20 and all(r["error"] == "ESRCH" for r in dels)
    assert not by_pid(recs_a, pid_b)

    recs_b = only_b.records()
    assert {r["netns"] for r in recs_b} == {b.inode}
    assert len([r for r in by_pid(recs_b, pid_b) if r["type"] == "RTM_DELROUTE"]) == 20
    assert not by_pid(recs_b, pid_a)

    # the unfiltered trace has both, each with its own inode and name
    seen = everything.records()
    for ns, pid in ((a, pid_a), (b, pid_b)):
        mine = by_pid(seen, pid)
        adds = [r for r in mine if r["type"] == "RTM_NEWROUTE" and r["direction"] == "request"]
        dels = [r for r in mine if r["type"] == "RTM_DELROUTE" and r["direction"] == "request"]
        assert len(adds) == 20 and len(dels) == 20
        assert {r["netns"] for r in mine} == {ns.inode}
        assert {r["netns_name"] for r in mine} == {ns.name}
        assert all(f"[netns {ns.name}]" in r["summary"] for r in mine)
    for run in (only_a, only_b, everything):
        assert run.lost() == 0


SETNS_CLIENT = textwrap.dedent("""
    import ctypes, json, os, socket, struct, sys
    CLONE_NEWNET = 0x40000000

    def sock():
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        s.bind((0, 0))
        return s

    def ask(s, type_, flags, seq, payload):
        s.send(struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, 0) + payload)
        while True:
            data = s.recv(65536)
            length, t, f, rseq, pid = struct.unpack_from("=IHHII", data)
            if rseq == seq and t == 2:          # NLMSG_ERROR (ack or error)
                return -struct.unpack_from("=i", data, 16)[0]

    host = sock()                               # opened before setns: stays in the host
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(sys.argv[1], os.O_RDONLY)
    assert libc.setns(fd, CLONE_NEWNET) == 0, ctypes.get_errno()
    inside = sock()                             # opened after: lives in the netns
    ifinfo = struct.pack("=BxHiII", 0, 0, 1, 0, 0)
    rtmsg = struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, 0, 0, 0, 0)
    dst = struct.pack("=HH4s", 8, 1, bytes([198, 51, 100, 0]))
    out = {"pid": os.getpid(),
           "host_getlink": ask(host, 18, 1 | 4, 101, ifinfo),          # RTM_GETLINK lo, ack
           "ns_delroute": ask(inside, 25, 1 | 4, 102, rtmsg + dst)}    # RTM_DELROUTE -> ESRCH
    print(json.dumps(out))
""")


def test_requests_made_inside_another_netns_are_attributed_to_it(nlbpf, netns):
    run = nlbpf("trace", "--json")
    # `ip netns exec` switches netns and execs: the request belongs to the netns
    ipx = subprocess.run(["ip", "netns", "exec", netns.name, "ip", "route", "del",
                          "198.51.100.0/24", "dev", "lo"], capture_output=True, text=True)
    assert ipx.returncode != 0
    # one process, two sockets: each request goes to the netns of its socket
    proc = subprocess.run([sys.executable, "-c", SETNS_CLIENT, f"/run/netns/{netns.name}"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ns_delroute"] == 3
    run.stop()
    recs = run.records()
    host_inode = os.stat("/proc/2/ns/net").st_ino       # kthreadd lives in init_net

    ip_dels = [r for r in recs if r["comm"] == "ip" and r["type"] == "RTM_DELROUTE"
               and r["request"]["attrs"].get("RTA_DST") == "198.51.100.0"
               and r["netns"] == netns.inode]
    assert ip_dels, "ip netns exec's request was not attributed to the netns"
    assert all(r["netns_name"] == netns.name for r in ip_dels)

    mine = by_pid(recs, result["pid"])
    getlink = [r for r in mine if r["type"] == "RTM_GETLINK" and r["direction"] == "request"]
    delroute = [r for r in mine if r["type"] == "RTM_DELROUTE" and r["direction"] == "request"]
    assert len(getlink) == 1 and len(delroute) == 1, mine
    assert getlink[0]["netns"] == host_inode and getlink[0]["netns_name"] == "host"
    assert "[netns" not in getlink[0]["summary"]
    assert delroute[0]["netns"] == netns.inode and delroute[0]["netns_name"] == netns.name
    error = [r for r in mine if r["direction"] == "reply" and r["error"] == "ESRCH"]
    assert error and error[0]["netns"] == netns.inode


def test_cgroup_path_and_kernel_cgroup_filter(nlbpf, netns, cgroup_root):
    job = cgroup_root.child("job")
    worker = job.child("worker")                    # below the filtered cgroup
    run = nlbpf("errors", "--cgroup", job.rel, "--json")
    everything = nlbpf("errors", "--json")
    argv = ["ip", "-n", netns.name, "route", "del", "198.51.100.0/24", "dev", "lo"]
    in_job, rc1, _, _ = job.run(argv)
    in_worker, rc2, _, _ = worker.run(argv)
    outside = subprocess.run(argv, capture_output=True)
    assert rc1 and rc2 and outside.returncode
    run.stop()
    everything.stop()

    recs = run.records()
    assert sorted(r["pid"] for r in recs) == sorted([in_job, in_worker]), run.stdout_lines
    got = {r["pid"]: r for r in recs}
    assert got[in_job]["cgroup"] == job.id and got[in_job]["cgroup_path"] == job.rel
    assert got[in_worker]["cgroup"] == worker.id
    assert got[in_worker]["cgroup_path"] == worker.rel
    assert got[in_job]["container"] is None
    # the unfiltered run saw the outside one too: the filter did the dropping
    assert any(r["type"] == "RTM_DELROUTE" and r["netns"] == netns.inode
               and r["pid"] not in (in_job, in_worker) for r in everything.records())


def kube_layout(cgroup_root, tmp_path):
    """A pod's cgroups as kubelet + containerd (systemd driver) make them, and the
    kubelet log link that names pod, namespace and container."""
    uid = str(uuid.uuid4())
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    pod = cgroup_root.child("kubepods.slice").child("kubepods-burstable.slice").child(
        f"kubepods-burstable-pod{uid.replace('-', '_')}.slice")
    ctr = pod.child(f"cri-containerd-{cid}.scope")
    host = tmp_path / "host"
    (host / "var/log/containers").mkdir(parents=True)
    (host / f"var/log/containers/web-5f7c9_shop_nginx-{cid}.log").write_text("")
    (host / f"var/log/pods/shop_web-5f7c9_{uid}").mkdir(parents=True)
    (host / "run").mkdir()
    (host / "run/netns").symlink_to("/run/netns")      # the host's `ip netns` names
    return uid, cid, ctr


def test_container_filter_and_kubernetes_names(nlbpf, netns, cgroup_root, tmp_path, monkeypatch):
    uid, cid, ctr = kube_layout(cgroup_root, tmp_path)
    monkeypatch.setenv("NLBPF_HOST_ROOT", str(tmp_path / "host"))
    by_id = nlbpf("errors", "--container", cid[:12], "--json")
    by_name = nlbpf("errors", "--container", "web-5f7c9/nginx", "--json")
    text = nlbpf("errors", "--container", cid)
    argv = ["ip", "-n", netns.name, "route", "del", "198.51.100.0/24", "dev", "lo"]
    pid, rc, _, _ = ctr.run(argv)
    outside = subprocess.run(argv, capture_output=True)
    assert rc and outside.returncode
    for run in (by_id, by_name, text):
        run.stop()
    want = {"id": cid, "runtime": "containerd", "name": "nginx", "pod": "web-5f7c9",
            "namespace": "shop", "pod_uid": uid}
    for run in (by_id, by_name):
        recs = run.records()
        assert [r["pid"] for r in recs] == [pid], run.stdout_lines
        assert recs[0]["container"] == want
        assert recs[0]["cgroup_path"] == ctr.rel and recs[0]["cgroup"] == ctr.id
        assert recs[0]["summary"].startswith(f"ip {pid} [web-5f7c9/nginx] route RTM_DELROUTE")
    lines = [ln for ln in text.stdout_lines if "RTM_DELROUTE" in ln]
    assert len(lines) == 1 and "[web-5f7c9/nginx]" in lines[0]


def test_top_groups_by_container_and_by_netns(nlbpf, netns, cgroup_root, tmp_path, monkeypatch):
    uid, cid, ctr = kube_layout(cgroup_root, tmp_path)
    monkeypatch.setenv("NLBPF_HOST_ROOT", str(tmp_path / "host"))
    by_container = nlbpf("top", "--json", "-i", "1", "--by", "container")
    by_netns = nlbpf("top", "--json", "-i", "1", "--by", "netns")
    # two processes in the container, 40 and 60 requests, in the test's netns
    for n in (40, 60):
        _, rc, out, err = ctr.run(["ip", "netns", "exec", netns.name, sys.executable,
                                   str(NLCLIENT), "getlink", str(n)])
        assert rc == 0, err
    time.sleep(1.5)
    by_container.stop(settle=0)
    by_netns.stop(settle=0)

    rows = [r for i in by_container.records() for r in i["rows"]
            if (r.get("container") or {}).get("id") == cid]
    assert rows, by_container.stdout_lines
    assert all(r["group"] == "web-5f7c9/nginx" for r in rows)
    assert sum(r["requests"] for r in rows) == 100
    assert len({p for r in rows for p in r["pids"]}) == 2

    rows = [r for i in by_netns.records() for r in i["rows"] if r["netns"] == netns.inode]
    assert rows and all(r["netns_name"] == netns.name for r in rows)
    assert sum(r["requests"] for r in rows) >= 100
