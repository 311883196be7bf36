"""Who and where: cgroup paths -> containers and pods, netns names, top grouping."""
import json
import os
import struct
import subprocess
import sys

import pytest

from nlbpf.commands.top import TopState, render_table
from nlbpf.places import (Cgroups, Context, Netns, RuntimeState, cgroup2_mount, place_tag,
                           container_label, parse_cgroup_path)
from nlbpf.errors import NlbpfError
from nlbpf.filters import Filters
from nlbpf.model import Message, REQUEST
from nlbpf.output.records import Decoder, message_record

CID = "3f1a" + "0123456789abcdef" * 3 + "deadbeefcafe"           # 64 hex
CID2 = "b" * 64
UID = "6f3e9c2a-41d7-4b8e-9a55-0c1d2e3f4a5b"
UID_ = UID.replace("-", "_")
UID2 = "0a1b2c3d-0000-4000-8000-123456789abc"


# ------------------------------------------------------------ cgroup layouts

@pytest.mark.parametrize("path,cid,runtime,pod_uid,own", [
    # containerd CRI, systemd driver
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope", CID, "containerd", UID, None),
    # guaranteed QoS has no QoS slice
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope",
     CID, "containerd", UID, None),
    # cri-o, systemd driver and cgroupfs driver
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"crio-{CID}.scope", CID, "cri-o", UID, None),
    (f"/kubepods/besteffort/pod{UID}/crio-{CID}", CID, "cri-o", UID, None),
    # cgroupfs-driver Kubernetes: the path does not name the runtime
    (f"/kubepods/burstable/pod{UID}/{CID}", CID, None, UID, None),
    # docker, systemd and cgroupfs drivers; dockershim in a pod slice
    (f"/system.slice/docker-{CID}.scope", CID, "docker", None, None),
    (f"/docker/{CID}", CID, "docker", None, None),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"docker-{CID}.scope", CID, "docker", UID, None),
    # podman: rootful, rootless with its nested "container" cgroup, cgroupfs
    (f"/machine.slice/libpod-{CID}.scope", CID, "podman", None, None),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container",
     CID, "podman", None,
     f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope"),
    (f"/libpod_parent/libpod-{CID}", CID, "podman", None, None),
    (f"/libpod_parent/{CID}", CID, "podman", None, None),
    # nerdctl (containerd without Kubernetes)
    (f"/system.slice/nerdctl-{CID}.scope", CID, "containerd", None, None),
    # kind: a Kubernetes node inside a docker container; the innermost one wins
    (f"/system.slice/docker-{CID2}.scope/kubelet.slice/kubelet-kubepods.slice/"
     f"kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope", CID, "containerd", UID, None),
])
def test_container_layouts(path, cid, runtime, pod_uid, own):
    ref = parse_cgroup_path(path)
    assert ref is not None
    assert ref["id"] == cid
    assert ref["runtime"] == runtime
    assert ref["pod_uid"] == pod_uid
    assert ref["cgroup"] == (own or path)


@pytest.mark.parametrize("path", ["/", "", None, "/system.slice/sshd.service",
                                  "/user.slice/user-1000.slice/session-3.scope",
                                  "/system.slice/containerd.service", "/init.scope",
                                  "/system.slice/docker.service",
                                  f"/system.slice/crio-conmon-{CID}.scope"])
def test_not_containers(path):
    assert parse_cgroup_path(path) is None


def test_systemd_nspawn_and_lxc_are_named_containers():
    ref = parse_cgroup_path("/machine.slice/machine-web\\x2d1.scope/payload")
    assert ref["runtime"] == "machined" and ref["name"] == "web-1"
    assert ref["cgroup"] == "/machine.slice/machine-web\\x2d1.scope"
    assert parse_cgroup_path("/machine.slice/systemd-nspawn@db.service")["name"] == "db"
    assert parse_cgroup_path("/lxc.payload.c1")["name"] == "c1"
    assert parse_cgroup_path("/lxc/c2/init.scope")["runtime"] == "lxc"


def test_pod_level_cgroup_without_a_container():
    path = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
    ref = parse_cgroup_path(path)
    assert ref["id"] is None and ref["pod_uid"] == UID and ref["cgroup"] == path


def test_labels():
    assert container_label({"pod": "web-0", "name": "nginx", "id": CID}) == "web-0/nginx"
    assert container_label({"name": "db", "id": CID}) == "db"
    assert container_label({"id": CID, "runtime": "docker"}) == f"docker:{CID[:12]}"
    assert container_label({"pod": "web-0", "id": None}) == "web-0"
    assert container_label(None) is None


def test_cgroup2_mount_from_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
        "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n")
    assert cgroup2_mount(str(mi)) == "/sys/fs/cgroup/unified"
    mi.write_text("26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert cgroup2_mount(str(mi)) == "/sys/fs/cgroup"
    mi.write_text("26 25 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert cgroup2_mount(str(mi)) is None


# ------------------------------------------------------- a fake node on disk

def make_cgroup(root, rel):
    d = root / rel.strip("/")
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text("")
    return d


@pytest.fixture
def node(tmp_path):
    """A cgroup tree and runtime state files as a Kubernetes node would have them."""
    cg = tmp_path / "cgroup"
    host = tmp_path / "host"
    pod_slice = (f"kubepods.slice/kubepods-burstable.slice/"
                 f"kubepods-burstable-pod{UID_}.slice")
    paths = {
        "app": f"/{pod_slice}/cri-containerd-{CID}.scope",
        "sandbox": f"/{pod_slice}/cri-containerd-{CID2}.scope",
        "docker": f"/system.slice/docker-{'c' * 64}.scope",
        "podman": f"/machine.slice/libpod-{'d' * 64}.scope",
        "crio": f"/kubepods/besteffort/pod{UID2}/crio-{'e' * 64}",
        "svc": "/system.slice/kubelet.service",
    }
    for rel in paths.values():
        make_cgroup(cg, rel)
    make_cgroup(cg, "/")
    # kubelet's log links name pod, namespace and container of each container id
    logs = host / "var/log/containers"
    logs.mkdir(parents=True)
    (logs / f"web-7d9f_shop_nginx-{CID}.log").write_text("")
    (host / f"var/log/pods/shop_web-7d9f_{UID}").mkdir(parents=True)
    # containerd's bundle for the sandbox
    bundle = host / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{CID2}"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps({"annotations": {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-name": "web-7d9f",
        "io.kubernetes.cri.sandbox-namespace": "shop"}}))
    docker = host / f"var/lib/docker/containers/{'c' * 64}"
    docker.mkdir(parents=True)
    (docker / "config.v2.json").write_text(json.dumps({"Name": "/redis", "Config": {"Labels": {}}}))
    store = host / "var/lib/containers/storage/overlay-containers"
    (store / ("d" * 64) / "userdata").mkdir(parents=True)
    (store / ("d" * 64) / "userdata/config.json").write_text(json.dumps({"annotations": {}}))
    (store / "containers.json").write_text(json.dumps([{"id": "d" * 64, "names": ["toolbox"]}]))
    (store / ("e" * 64) / "userdata").mkdir(parents=True)
    (store / ("e" * 64) / "userdata/config.json").write_text(json.dumps({"annotations": {
        "io.kubernetes.container.name": "coredns", "io.kubernetes.pod.name": "coredns-5d78",
        "io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.uid": UID2}}))
    cgroups = Cgroups(mount=str(cg), use_handles=False)
    ctx = Context(host_root=str(host), cgroups=cgroups, netns=Netns(str(host)),
                  state=RuntimeState(str(host)))
    ids = {name: os.stat(cgroups.abs(rel)).st_ino for name, rel in paths.items()}
    return ctx, paths, ids


def test_cgroup_ids_resolve_to_paths_and_containers(node):
    ctx, paths, ids = node
    info = ctx.describe(0, ids["app"])
    assert info["cgroup_path"] == paths["app"]
    assert info["container"] == {"id": CID, "runtime": "containerd", "name": "nginx",
                                 "pod": "web-7d9f", "namespace": "shop", "pod_uid": UID}
    assert place_tag(info) == "[web-7d9f/nginx]"
    sandbox = ctx.describe(0, ids["sandbox"])["container"]
    assert sandbox["name"] == "POD" and sandbox["pod"] == "web-7d9f"
    assert ctx.describe(0, ids["docker"])["container"]["name"] == "redis"
    podman = ctx.describe(0, ids["podman"])["container"]
    assert podman["runtime"] == "podman" and podman["name"] == "toolbox"
    crio = ctx.describe(0, ids["crio"])["container"]
    assert (crio["runtime"], crio["name"], crio["pod"], crio["namespace"]) == \
        ("cri-o", "coredns", "coredns-5d78", "kube-system")
    svc = ctx.describe(0, ids["svc"])
    assert svc["cgroup_path"] == "/system.slice/kubelet.service" and svc["container"] is None
    assert place_tag(svc) == ""


def test_unknown_cgroup_id_is_none_not_an_error(node):
    ctx, _, _ = node
    assert ctx.describe(0, 987654321) == {"netns_name": None, "cgroup_path": None,
                                          "container": None}
    assert ctx.describe(0, 0)["cgroup_path"] is None


def test_kubelet_pod_dir_fallback(tmp_path):
    host = tmp_path
    pod = host / f"var/lib/kubelet/pods/{UID}"
    (pod / "volumes/kubernetes.io~projected/kube-api-access-x2").mkdir(parents=True)
    (pod / "volumes/kubernetes.io~projected/kube-api-access-x2/namespace").write_text("payments")
    (pod / "etc-hosts").write_text("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                                   "10.244.1.7\tapi-0\n")
    got = RuntimeState(str(host)).lookup(
        parse_cgroup_path(f"/kubepods/pod{UID}/{CID}"))
    assert (got["pod"], got["namespace"], got["name"]) == ("api-0", "payments", None)


def test_container_option_resolves_ids_names_and_pods(node):
    ctx, paths, _ = node
    d, label = ctx.resolve_container(CID[:8])
    assert ctx.cgroups.rel(d) == paths["app"] and label == "web-7d9f/nginx"
    assert ctx.cgroups.rel(ctx.resolve_container("nginx")[0]) == paths["app"]
    assert ctx.cgroups.rel(ctx.resolve_container("web-7d9f/nginx")[0]) == paths["app"]
    assert ctx.cgroups.rel(ctx.resolve_container("shop/web-7d9f/nginx")[0]) == paths["app"]
    assert ctx.cgroups.rel(ctx.resolve_container("redis")[0]) == paths["docker"]
    # a pod name means the pod's cgroup: all its containers
    d, label = ctx.resolve_container("web-7d9f")
    assert ctx.cgroups.rel(d) == paths["app"].rsplit("/", 1)[0]
    with pytest.raises(NlbpfError, match="no container"):
        ctx.resolve_container("nope")
    make_cgroup(ctx.cgroups.mount and __import__("pathlib").Path(ctx.cgroups.mount),
                f"/system.slice/docker-{CID[:8]}{'9' * 56}.scope")
    with pytest.raises(NlbpfError, match="matches 2 containers"):
        ctx.resolve_container(CID[:8])


def test_cgroup_option_paths(node):
    ctx, paths, ids = node
    d, rel, cgid = ctx.cgroups.resolve(paths["svc"])
    assert rel == paths["svc"] and cgid == ids["svc"]
    assert ctx.cgroups.resolve(paths["svc"].lstrip("/"))[1] == paths["svc"]
    assert ctx.cgroups.resolve(ctx.cgroups.abs(paths["svc"]))[1] == paths["svc"]
    for bad in ("/no/such", "/system.slice/../etc", ""):
        with pytest.raises(NlbpfError):
            ctx.cgroups.resolve(bad)
    with pytest.raises(NlbpfError, match="cgroup v2"):
        Cgroups(mount="", use_handles=False).resolve("/x")


def test_netns_names_ignore_plain_files(tmp_path):
    (tmp_path / "run/netns").mkdir(parents=True)
    (tmp_path / "run/netns/stale").write_text("")       # not a bind mount any more
    ns = Netns(str(tmp_path))
    assert ns.scan_mounts() == {}
    assert ns.name(ns.host) == "host"
    assert ns.name(0) is None


def test_netns_name_of_a_process_owned_namespace():
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare")
    proc = subprocess.Popen(["unshare", "-n", "sleep", "30"])
    try:
        # until unshare has made the namespace and exec'd sleep (seconds on a busy machine)
        for _ in range(500):
            try:
                ino = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
                comm = open(f"/proc/{proc.pid}/comm").read().strip()
                if ino != os.stat("/proc/self/ns/net").st_ino and comm == "sleep":
                    break
            except OSError:
                pass
            __import__("time").sleep(0.02)
        ns = Netns()
        name = ns.name(ino)
        assert name == f"pid {proc.pid} (sleep)"
    finally:
        proc.kill()
        proc.wait()


def test_tags():
    assert place_tag({"netns_name": "host", "container": None}) == ""
    assert place_tag({"netns_name": "blue", "container": None}) == "[netns blue]"
    assert place_tag({"netns_name": None, "container": None}, 4026532999) == "[netns 4026532999]"
    assert place_tag({"netns_name": "cni-1", "container": {"pod": "p", "name": "c"}}) == "[p/c]"


# ----------------------------------------------------------------- records

def test_records_carry_netns_name_cgroup_path_and_container(node):
    ctx, paths, ids = node
    data = struct.pack("=IHHII", 32, 18, 1, 7, 0) + bytes(16)
    msg = Message(ts_ns=1, pid=4242, tid=4242, comm="ip", protocol=0, direction=REQUEST,
                  data=data, length=32, netns=0, cgroup=ids["app"])
    rec = message_record(msg, None, False, Decoder(live_families=False), 0, context=ctx)
    assert rec["cgroup_path"] == paths["app"]
    assert rec["container"]["name"] == "nginx" and rec["container"]["id"] == CID
    assert "netns_name" in rec
    assert rec["summary"].startswith("ip 4242 [web-7d9f/nginx] route")
    # existing keys stay
    for key in ("ts", "pid", "tid", "comm", "netns", "cgroup", "protocol", "type", "summary"):
        assert key in rec


# --------------------------------------------------------------------- top

def top_row(comm, requests, lat_ns):
    hist = [0] * 128
    hist[40] = requests
    row = {k: 0 for k in ("requests", "errors", "dumps", "dump_intr", "msgs_in", "msgs_out",
                          "bytes_in", "bytes_out", "lat_count", "lat_sum_ns", "lock_wait_ns")}
    row.update(comm=comm, requests=requests, msgs_out=requests, msgs_in=requests,
               lat_count=requests, lat_max_ns=lat_ns, hist=hist)
    return row


def test_top_groups_processes_by_container_and_netns(node):
    ctx, paths, ids = node
    rows = {10: top_row("nginx", 5, 1000), 11: top_row("sh", 2, 9000),
            20: top_row("kubelet", 7, 500)}
    types = {(10, 0, 18): 5, (11, 0, 18): 2, (20, 0, 26): 7}
    where = {10: (ids["app"], 4026532001), 11: (ids["app"], 4026532001),
             20: (ids["svc"], 4026532002)}
    by_proc = TopState(ctx).interval(rows, types, where)
    assert [r["pid"] for r in by_proc] == [20, 10, 11]
    assert by_proc[1]["container"]["name"] == "nginx"
    by_c = TopState(ctx, by="container").interval(rows, types, where)
    assert [(r["group"], r["pids"], r["requests"]) for r in by_c] == \
        [("web-7d9f/nginx", [10, 11], 7), ("/system.slice/kubelet.service", [20], 7)]
    assert by_c[0]["max_us"] == 9.0 and by_c[0]["comms"] == ["nginx", "sh"]
    assert by_c[0]["top_types"][0]["count"] == 7
    text = render_table(by_c, 20, 1.0, 0, 0, by="container")
    assert "CONTAINER" in text and "web-7d9f/nginx" in text
    by_ns = TopState(ctx, by="netns").interval(rows, types, where)
    assert sorted(r["netns"] for r in by_ns) == [4026532001, 4026532002]


def test_top_by_comm_puts_short_lived_processes_in_one_row(node):
    """Twenty `ip` runs are one row, with where they ran; MAX stays the interval's
    (the kernel's lat_max_ns is per interval: read_top), not a lifetime value."""
    ctx, paths, ids = node
    rows = {100 + i: top_row("ip", 1, 1000 + 100 * i) for i in range(20)}
    rows[20] = top_row("kubelet", 7, 500)
    where = {pid: (ids["app"], 4026532001) for pid in rows}
    where[20] = (ids["svc"], 4026532002)
    state = TopState(ctx, by="comm")
    by_comm = state.interval(rows, {}, where)
    assert [(r["group"], len(r["pids"]), r["requests"]) for r in by_comm] == \
        [("ip", 20, 20), ("kubelet", 1, 7)]
    assert by_comm[0]["max_us"] == 2.9 and by_comm[0]["places"] == ["web-7d9f/nginx"]
    text = render_table(by_comm, 20, 1.0, 0, 0, by="comm")
    assert text.splitlines()[1].split()[:3] == ["COMM", "PIDS", "WHERE"]
    assert "process names" in text.splitlines()[0]
    # the next interval: one more ip request, with a smaller maximum of its own
    later = {pid: dict(r) for pid, r in rows.items()}
    later[100].update(requests=2, msgs_out=2, msgs_in=2, lat_count=2, lat_max_ns=300,
                      hist=[h + (i == 20) for i, h in enumerate(later[100]["hist"])])
    again = state.interval(later, {}, where)
    assert [(r["group"], r["requests"], r["max_us"]) for r in again] == [("ip", 1, 0.3)]


# -------------------------------------------------------------- bad input

NLBPF = [sys.executable, "-m", "nlbpf.cli"]


@pytest.mark.parametrize("args,msg", [
    (["--cgroup", "/no/such/cgroup"], "no cgroup"),
    (["--container", "no-such-container-xyz"], "no container"),
    (["--cgroup", "/", "--container", "x"], "not both"),
])
def test_bad_cgroup_options_are_one_line(args, msg):
    proc = subprocess.run(NLBPF + ["trace"] + args + ["--duration", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nlbpf: ") and msg in lines[0], proc.stderr


def test_cgroup_filter_becomes_a_define():
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 here")
    f = Filters.from_options(cgroup="/")
    assert f.cflags() == ["-DFILTER_CGROUP_TREE"]
    assert f.cgroup == mount and "cgroup /" in f.describe()
