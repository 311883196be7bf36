"""Where a netlink call came from: network namespace, cgroup, container, pod.

The probes hand over two numbers per call: the inode of the socket's network
namespace and the cgroup v2 id of the task. This module turns them into what an
operator thinks in:

  netns inode -> "host" (init_net), an `ip netns` name (bind mounts under
                 /run/netns, /var/run/docker/netns), or "pid 1234 (pause)":
                 the lowest pid living in it
  cgroup id   -> the cgroup's path (the id is the inode of its directory in
                 the cgroup2 file system; open_by_handle_at() finds it
                 directly, a walk of the tree is the fallback)
  cgroup path -> a container id and runtime (docker, containerd/CRI, cri-o,
                 podman, nerdctl, systemd-nspawn/machined, lxc) and the Kubernetes pod
                 uid, from the path alone
  container   -> name, pod, namespace: read-only and best effort from what the
                 node already has on disk (kubelet's /var/log/containers and
                 /var/log/pods links, containerd/cri-o/podman OCI bundles with
                 their annotations, docker's config.v2.json,
                 /var/lib/kubelet/pods), no runtime API needed

Everything is cached; a miss triggers at most one rescan per interval, so a
busy trace never turns into a /proc or cgroupfs crawl.

NLBPF_HOST_ROOT=/host points the runtime state look-ups (/run, /var/lib,
/var/log) at the host's file system when nlbpf runs in a container.
"""
import ctypes
import functools
import glob
import json
import os
import re
import struct
import time

from .errors import NlbpfError

PROC_NET_INIT_INO = 0xEFFFFFF9      # init_net's fixed inode on newer kernels
FILEID_KERNFS = 0xFE

MOUNT_RESCAN_S = 0.2                # /run/netns is cheap to list
PROC_RESCAN_S = 2.0                 # /proc and cgroupfs walks are not
STATE_RETRY_S = 5.0                 # runtime state files appear after the cgroup
NAME_TTL_S = 10.0                   # netns names are re-checked this often
CACHE_MAX = 65536

HEX64 = r"[0-9a-f]{64}"
UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"

# One cgroup path component that names a container, innermost first wins.
# (pattern, runtime); group 1 is the id.
CONTAINER_COMPONENTS = [
    (re.compile(rf"^cri-containerd-({HEX64})\.scope$"), "containerd"),
    (re.compile(rf"^crio-({HEX64})(?:\.scope)?$"), "cri-o"),
    (re.compile(rf"^docker-({HEX64})\.scope$"), "docker"),
    (re.compile(rf"^libpod-({HEX64})(?:\.scope)?$"), "podman"),
    (re.compile(rf"^nerdctl-({HEX64})\.scope$"), "containerd"),
]
BARE_ID = re.compile(rf"^({HEX64})$")
POD_COMPONENT = [
    # systemd driver: kubepods-burstable-pod0b3c..._..._....slice (dashes as _)
    # (kind nests it under a prefix: kubelet-kubepods-besteffort-pod….slice)
    re.compile(rf"^(?:[a-z0-9]+-)*kubepods(?:-[a-z]+)*-pod({UID})\.slice$"),
    # cgroupfs driver: /kubepods/burstable/pod0b3c...-...
    re.compile(rf"^pod({UID})$"),
]
MACHINE_SCOPE = re.compile(r"^machine-(.+)\.scope$")
NSPAWN_SERVICE = re.compile(r"^systemd-nspawn@(.+)\.service$")


def _unescape_systemd(name):
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


def parse_cgroup_path(path):
    """A cgroup path -> {"id", "runtime", "pod_uid", "cgroup"} of the innermost
    container it belongs to, or None. "cgroup" is the container's own cgroup
    (the path may go deeper, e.g. podman's .../libpod-<id>.scope/container).
    Runtime None: a container id under Kubernetes whose runtime the path does
    not say (cgroupfs driver); state files may tell later.

    Pure function of the string: no file system access.
    """
    if not path:
        return None
    parts = [p for p in path.split("/") if p]
    pod_uid = None
    for p in parts:
        for rx in POD_COMPONENT:
            m = rx.match(p)
            if m:
                pod_uid = m.group(1).replace("_", "-")
    for i in range(len(parts) - 1, -1, -1):
        comp = parts[i]
        own = "/" + "/".join(parts[:i + 1])
        parent = parts[i - 1] if i else ""
        for rx, runtime in CONTAINER_COMPONENTS:
            m = rx.match(comp)
            if m:
                return _ref(m.group(1), runtime, pod_uid, own)
        m = BARE_ID.match(comp)
        if m:
            if parent == "docker":
                return _ref(m.group(1), "docker", pod_uid, own)
            if parent == "libpod_parent":
                return _ref(m.group(1), "podman", pod_uid, own)
            # cgroupfs-driver Kubernetes (…/pod<uid>/<id>) and anything else
            # that names a cgroup by a bare 64-hex container id
            return _ref(m.group(1), None, pod_uid, own)
        if parent in ("lxc", "lxc.payload") or comp.startswith("lxc.payload."):
            name = comp[len("lxc.payload."):] if comp.startswith("lxc.payload.") else comp
            if name:
                return _ref(None, "lxc", None, own, name=name)
        m = MACHINE_SCOPE.match(comp) if parent == "machine.slice" else None
        if m:   # systemd-machined: nspawn containers (and VMs) registered as machines
            return _ref(None, "machined", None, own, name=_unescape_systemd(m.group(1)))
        m = NSPAWN_SERVICE.match(comp) if parent == "machine.slice" else None
        if m:
            return _ref(None, "systemd-nspawn", None, own, name=_unescape_systemd(m.group(1)))
    if pod_uid:
        # a process in the pod's own cgroup, outside any container's
        own = None
        for i, p in enumerate(parts):
            if any(rx.match(p) for rx in POD_COMPONENT):
                own = "/" + "/".join(parts[:i + 1])
        return _ref(None, None, pod_uid, own)
    return None


def _ref(cid, runtime, pod_uid, cgroup, name=None):
    return {"id": cid, "runtime": runtime, "name": name, "pod": None, "namespace": None,
            "pod_uid": pod_uid, "cgroup": cgroup}


def container_label(c):
    """Short text for a container dict: pod/name, name, or runtime:id12."""
    if not c:
        return None
    if c.get("pod") and c.get("name"):
        return f"{c['pod']}/{c['name']}"
    if c.get("pod"):
        return c["pod"] if not c.get("id") else f"{c['pod']}/{c['id'][:12]}"
    if c.get("name"):
        return c["name"]
    if c.get("id"):
        return f"{c.get('runtime') or 'container'}:{c['id'][:12]}"
    if c.get("pod_uid"):
        return f"pod {c['pod_uid']}"
    return None


# ------------------------------------------------------------------ cgroups

def cgroup2_mount(mountinfo="/proc/self/mountinfo"):
    """Mount point of the cgroup v2 file system (unified hierarchy), or None.

    /sys/fs/cgroup on pure v2 systems, /sys/fs/cgroup/unified on hybrid ones.
    """
    found = []
    try:
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
                    found.append(fields[4].replace("\\040", " "))
    except OSError:
        return None
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in found:
            return preferred
    return found[0] if found else None


class _Handle:
    """open_by_handle_at(2) on cgroupfs: cgroup id -> its directory, no walk."""

    def __init__(self, mount):
        self.fd = None
        try:
            self.libc = ctypes.CDLL(None, use_errno=True)
            self.libc.open_by_handle_at
            self.fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, AttributeError):
            self.fd = None

    def path(self, cgid):
        if self.fd is None:
            return None
        raw = struct.pack("=Ii", 8, FILEID_KERNFS) + struct.pack("=Q", cgid)
        buf = ctypes.create_string_buffer(raw, len(raw))
        fd = self.libc.open_by_handle_at(self.fd, buf, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd < 0:
            if ctypes.get_errno() in (1, 38, 95):   # EPERM, ENOSYS, EOPNOTSUPP: stop trying
                self.close()
            return None
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        finally:
            os.close(fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Cgroups:
    """cgroup v2 ids <-> paths (relative to the cgroup2 root, "/" first)."""

    def __init__(self, mount=None, use_handles=True):
        self.mount = mount if mount is not None else cgroup2_mount()
        self._paths = {}
        self._misses = {}
        self._last_walk = -PROC_RESCAN_S
        self._handle = _Handle(self.mount) if (self.mount and use_handles) else None
        self._root_id = None
        if self.mount:
            try:
                self._root_id = os.stat(self.mount).st_ino
            except OSError:
                self.mount = None

    def rel(self, abspath):
        """/sys/fs/cgroup/a/b -> /a/b (None if not under the mount)."""
        if not self.mount:
            return None
        root = self.mount.rstrip("/")
        if abspath == root:
            return "/"
        if abspath.startswith(root + "/"):
            return abspath[len(root):]
        return None

    def abs(self, rel):
        return os.path.join(self.mount, rel.lstrip("/")).rstrip("/") if rel != "/" else self.mount

    def path(self, cgid, pid=None):
        """The path of cgroup `cgid`, or None (unknown, or gone before we looked)."""
        if not cgid or not self.mount:
            return None
        got = self._paths.get(cgid)
        if got is not None:
            return got
        if cgid == self._root_id:
            return self._remember(cgid, "/")
        now = time.monotonic()
        if now - self._misses.get(cgid, -PROC_RESCAN_S) < PROC_RESCAN_S:
            return None
        if self._handle is not None:
            found = self._handle.path(cgid)
            rel = self.rel(found) if found else None
            if rel:
                return self._remember(cgid, rel)
        if pid:
            rel = self._from_pid(pid, cgid)
            if rel:
                return self._remember(cgid, rel)
        if now - self._last_walk >= PROC_RESCAN_S:
            self.walk()
            got = self._paths.get(cgid)
            if got is not None:
                return got
        self._misses[cgid] = now
        if len(self._misses) > CACHE_MAX:
            self._misses.clear()
        return None

    def _remember(self, cgid, rel):
        if len(self._paths) > CACHE_MAX:
            self._paths.clear()
        self._paths[cgid] = rel
        self._misses.pop(cgid, None)
        return rel

    def _from_pid(self, pid, cgid):
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                for line in f:
                    if line.startswith("0::"):
                        rel = line[3:].strip()
                        if os.stat(self.abs(rel)).st_ino == cgid:
                            return rel
        except OSError:
            pass
        return None

    def walk(self):
        """Every cgroup under the mount: {id: path}; refreshes the cache."""
        self._last_walk = time.monotonic()
        out = {}
        if not self.mount:
            return out
        stack = [self.mount]
        while stack:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                st = os.stat(d)
            except OSError:
                continue
            rel = self.rel(d)
            if rel:
                out[st.st_ino] = rel
        for cgid, rel in out.items():
            self._remember(cgid, rel)
        return out

    def resolve(self, text):
        """--cgroup PATH (relative to the cgroup2 root, or under its mount, or an id)
        -> (absolute directory, path, id)."""
        if not self.mount:
            raise NlbpfError("--cgroup and --container need cgroup v2: no cgroup2 file system "
                             "is mounted (mount -t cgroup2 none /sys/fs/cgroup)", exit_code=2)
        text = text.strip()
        if not text:
            raise NlbpfError("--cgroup needs a path", exit_code=2)
        if text.isdigit():
            rel = self.path(int(text))
            if rel is None:
                raise NlbpfError(f"no cgroup with id {text}", exit_code=2)
            candidates = [self.abs(rel)]
        elif self.rel(os.path.normpath(text)) is not None:
            candidates = [os.path.normpath(text)]
        else:
            if ".." in text.split("/"):
                raise NlbpfError(f"--cgroup {text!r}: no '..' please", exit_code=2)
            candidates = [self.abs("/" + text.strip("/"))]
        for d in candidates:
            if os.path.isdir(d) and os.path.exists(os.path.join(d, "cgroup.procs")):
                return d, self.rel(d), os.stat(d).st_ino
        raise NlbpfError(f"no cgroup {text!r} under {self.mount} (give a path like "
                         f"/system.slice/foo.service as /proc/PID/cgroup shows it)", exit_code=2)

    def close(self):
        if self._handle is not None:
            self._handle.close()


# --------------------------------------------------------- network namespaces

NETNS_DIRS = (("/run/netns", ""), ("/var/run/netns", ""), ("/var/run/docker/netns", "docker/"))


def _nsfs_dev():
    try:
        return os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return None


def host_netns_inode():
    """init_net's inode: pid 1's netns, else kthreadd's, else the fixed constant."""
    for pid in (1, 2):
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
    return PROC_NET_INIT_INO


class Netns:
    """netns inode -> readable name."""

    def __init__(self, host_root="/"):
        self.host = host_netns_inode()
        self.root = host_root
        self._dev = _nsfs_dev()
        self._mounts = {}
        self._owners = {}
        self._last_mounts = -MOUNT_RESCAN_S
        self._last_proc = -PROC_RESCAN_S

    def name(self, inode):
        if not inode:
            return None
        if inode == self.host:
            return "host"
        now = time.monotonic()
        # namespace inodes are reused once a netns is gone: names get old
        if inode in self._mounts and now - self._last_mounts >= NAME_TTL_S:
            self.scan_mounts()
        elif inode in self._owners and now - self._last_proc >= NAME_TTL_S:
            self.scan_proc()
        got = self._mounts.get(inode) or self._owners.get(inode)
        if got:
            return got
        if now - self._last_mounts >= MOUNT_RESCAN_S:
            self.scan_mounts()
            if inode in self._mounts:
                return self._mounts[inode]
        if now - self._last_proc >= PROC_RESCAN_S:
            self.scan_proc()
            return self._owners.get(inode)
        return None

    def scan_mounts(self):
        self._last_mounts = time.monotonic()
        found = {}
        seen_dirs = set()
        for d, prefix in NETNS_DIRS:
            path = _host(self.root, d)
            try:
                real = os.path.realpath(path)
                if real in seen_dirs:
                    continue
                seen_dirs.add(real)
                names = sorted(os.listdir(path))
            except OSError:
                continue
            for n in names:
                try:
                    st = os.stat(os.path.join(path, n))
                except OSError:
                    continue
                # a name that is not (or no longer) a bind mount is a plain file
                if self._dev is not None and st.st_dev != self._dev:
                    continue
                found.setdefault(st.st_ino, prefix + n)
        self._mounts = found
        return found

    def scan_proc(self):
        """The lowest pid in each netns: "pid 1234 (comm)"."""
        self._last_proc = time.monotonic()
        owners = {}
        try:
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        except OSError:
            pids = []
        for pid in pids:
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue
            if ino in owners or ino == self.host:
                continue
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            owners[ino] = f"pid {pid} ({comm})"
        self._owners = owners
        return owners


# ------------------------------------------------------------ runtime state

def _host(root, path):
    return os.path.join(root, path.lstrip("/")) if root not in ("", "/") else path


def _read_json(path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(4 << 20))
    except (OSError, ValueError):
        return None


class RuntimeState:
    """Container id -> name / pod / namespace, from files the node already has."""

    KUBE_LOG_LINK = re.compile(rf"^([^_]+)_([^_]+)_(.+)-({HEX64})\.log$")
    POD_LOG_DIR = re.compile(rf"^([^_]+)_([^_]+)_({UID})$")

    def __init__(self, host_root="/"):
        self.root = host_root
        self._meta = {}
        self._misses = {}
        self._kube_links = {}
        self._pod_dirs = {}
        self._last_kube = -PROC_RESCAN_S

    def p(self, path):
        return _host(self.root, path)

    def lookup(self, ref):
        """Fill name/pod/namespace/runtime of a parse_cgroup_path() dict (a copy)."""
        out = dict(ref)
        cid = ref.get("id")
        meta = self._lookup_id(cid) if cid else None
        if meta:
            for k, v in meta.items():
                if v and not out.get(k):
                    out[k] = v
        if out.get("pod_uid") and not out.get("pod"):
            pod = self._pod_by_uid(out["pod_uid"])
            if pod:
                out["namespace"], out["pod"] = pod
        return out

    def _lookup_id(self, cid):
        if cid in self._meta:
            return self._meta[cid]
        now = time.monotonic()
        if now - self._misses.get(cid, -STATE_RETRY_S) < STATE_RETRY_S:
            return None
        meta = {}
        for source in (self._kubelet_logs, self._containerd, self._containers_storage,
                       self._docker):
            try:
                got = source(cid)
            except Exception:           # a state file in a shape we do not know
                got = None
            for k, v in (got or {}).items():
                if v and not meta.get(k):
                    meta[k] = v
            if meta.get("name") and (meta.get("pod") or not meta.get("kube")) and meta.get("runtime"):
                break
        meta.pop("kube", None)
        if meta:
            if len(self._meta) > CACHE_MAX:
                self._meta.clear()
            self._meta[cid] = meta
            return meta
        self._misses[cid] = now
        return None

    # kubelet: /var/log/containers/<pod>_<namespace>_<container>-<id>.log
    def _kubelet_logs(self, cid):
        if cid not in self._kube_links and time.monotonic() - self._last_kube >= PROC_RESCAN_S:
            self._scan_kubelet()
        got = self._kube_links.get(cid)
        if not got:
            return None
        pod, ns, name = got
        return {"pod": pod, "namespace": ns, "name": name, "kube": True}

    def _scan_kubelet(self):
        self._last_kube = time.monotonic()
        links = {}
        try:
            for n in os.listdir(self.p("/var/log/containers")):
                m = self.KUBE_LOG_LINK.match(n)
                if m:
                    links[m.group(4)] = (m.group(1), m.group(2), m.group(3))
        except OSError:
            pass
        self._kube_links = links
        pods = {}
        try:
            for n in os.listdir(self.p("/var/log/pods")):
                m = self.POD_LOG_DIR.match(n)
                if m:
                    pods[m.group(3)] = (m.group(1), m.group(2))
        except OSError:
            pass
        self._pod_dirs = pods

    def _pod_by_uid(self, uid):
        """pod uid -> (namespace, pod name): /var/log/pods, else /var/lib/kubelet/pods."""
        if uid not in self._pod_dirs and time.monotonic() - self._last_kube >= PROC_RESCAN_S:
            self._scan_kubelet()
        if uid in self._pod_dirs:
            return self._pod_dirs[uid]
        now = time.monotonic()
        if now - self._misses.get(uid, -STATE_RETRY_S) < STATE_RETRY_S:
            return None
        self._misses[uid] = now
        base = self.p(f"/var/lib/kubelet/pods/{uid}")
        ns = None
        for f in sorted(glob.glob(os.path.join(glob.escape(base), "volumes",
                                               "kubernetes.io~projected", "*", "namespace"))):
            try:
                with open(f) as fh:
                    ns = fh.read(256).strip() or None
                break
            except OSError:
                continue
        name = None
        try:
            with open(os.path.join(base, "etc-hosts")) as fh:
                lines = [ln.split() for ln in fh.read(65536).splitlines()
                         if ln.strip() and not ln.startswith("#")]
            if lines and len(lines[-1]) >= 2:
                name = lines[-1][1]     # the pod's hostname: its name unless spec.hostname
        except OSError:
            pass
        if ns or name:
            self._misses.pop(uid, None)
            self._pod_dirs[uid] = (ns, name)
            return ns, name
        return None

    # containerd: the OCI bundle's config.json carries the CRI annotations
    def _containerd(self, cid):
        for tmpl in ("/run/containerd/io.containerd.runtime.v2.task/*/{}/config.json",
                     "/run/containerd/io.containerd.runtime.v1.linux/*/{}/config.json"):
            for path in glob.glob(self.p(tmpl.format(cid))):
                spec = _read_json(path)
                if not isinstance(spec, dict):
                    continue
                ann = spec.get("annotations") or {}
                out = {"runtime": "containerd"}
                kind = ann.get("io.kubernetes.cri.container-type")
                out["pod"] = ann.get("io.kubernetes.cri.sandbox-name")
                out["namespace"] = ann.get("io.kubernetes.cri.sandbox-namespace")
                out["pod_uid"] = ann.get("io.kubernetes.cri.sandbox-uid")
                out["name"] = ("POD" if kind == "sandbox" else
                               ann.get("io.kubernetes.cri.container-name") or ann.get("nerdctl/name"))
                out["kube"] = bool(kind)
                return out
        return None

    # cri-o and podman: containers/storage keeps each container's OCI config
    def _containers_storage(self, cid):
        for base in ("/run/containers/storage", "/var/lib/containers/storage"):
            spec = _read_json(self.p(f"{base}/overlay-containers/{cid}/userdata/config.json"))
            if not isinstance(spec, dict):
                continue
            ann = spec.get("annotations") or {}
            if "io.kubernetes.pod.name" in ann or "io.kubernetes.cri-o.ContainerType" in ann:
                sandbox = ann.get("io.kubernetes.cri-o.ContainerType") == "sandbox"
                return {"runtime": "cri-o", "kube": True,
                        "name": "POD" if sandbox else ann.get("io.kubernetes.container.name"),
                        "pod": ann.get("io.kubernetes.pod.name"),
                        "namespace": ann.get("io.kubernetes.pod.namespace"),
                        "pod_uid": ann.get("io.kubernetes.pod.uid")}
            name = None
            listing = _read_json(self.p(f"{base}/overlay-containers/containers.json"))
            for c in listing if isinstance(listing, list) else []:
                if isinstance(c, dict) and c.get("id") == cid and c.get("names"):
                    name = c["names"][0]
            return {"runtime": "podman", "name": name}
        return None

    def _docker(self, cid):
        cfg = _read_json(self.p(f"/var/lib/docker/containers/{cid}/config.v2.json"))
        if not isinstance(cfg, dict):
            return None
        labels = (cfg.get("Config") or {}).get("Labels") or {}
        name = (cfg.get("Name") or "").lstrip("/") or None
        if "io.kubernetes.pod.name" in labels:
            kname = labels.get("io.kubernetes.container.name")
            return {"runtime": "docker", "kube": True, "name": kname or name,
                    "pod": labels.get("io.kubernetes.pod.name"),
                    "namespace": labels.get("io.kubernetes.pod.namespace"),
                    "pod_uid": labels.get("io.kubernetes.pod.uid")}
        return {"runtime": "docker", "name": name}


# -------------------------------------------------------------------- facade

class Context:
    """netns inode + cgroup id (+ pid) -> the keys nlbpf adds to each record."""

    def __init__(self, host_root=None, cgroups=None, netns=None, state=None):
        root = host_root if host_root is not None else os.environ.get("NLBPF_HOST_ROOT", "/")
        self.cgroups = cgroups or Cgroups()
        self.netns = netns or Netns(root)
        self.state = state or RuntimeState(root)
        self._containers = {}

    def container_of_path(self, path):
        if path is None:
            return None
        if path in self._containers:
            return self._containers[path]
        ref = parse_cgroup_path(path)
        got = self.state.lookup(ref) if ref else None
        if got is not None:
            got.pop("cgroup", None)
        # an unnamed container may get its name once the runtime writes state
        if got is None or got.get("name") or not got.get("id"):
            if len(self._containers) > CACHE_MAX:
                self._containers.clear()
            self._containers[path] = got
        return got

    def describe(self, netns, cgroup, pid=None):
        """{"netns_name", "cgroup_path", "container"}: None where unknown."""
        try:
            name = self.netns.name(netns)
        except Exception:
            name = None
        try:
            path = self.cgroups.path(cgroup, pid)
            container = self.container_of_path(path)
        except Exception:
            path, container = None, None
        return {"netns_name": name, "cgroup_path": path,
                "container": dict(container) if container else None}

    # ---------------------------------------------------- filters' resolution
    def containers(self):
        """Every container with a cgroup on this node: [(dict, cgroup abs dir)]."""
        out = {}
        for cgid, rel in self.cgroups.walk().items():
            ref = parse_cgroup_path(rel)
            if not ref or ref["cgroup"] != rel or not (ref["id"] or ref["name"]):
                continue
            meta = self.state.lookup(ref)
            meta.pop("cgroup", None)
            out[rel] = (meta, self.cgroups.abs(rel))
        return list(out.values())

    def pods(self):
        out = {}
        for cgid, rel in self.cgroups.walk().items():
            ref = parse_cgroup_path(rel)
            if ref and ref["pod_uid"] and not ref["id"] and ref["cgroup"] == rel:
                meta = self.state.lookup(ref)
                out[rel] = (meta, self.cgroups.abs(rel))
        return list(out.values())

    def resolve_container(self, text):
        """--container ID|NAME|POD/NAME|NAMESPACE/POD/NAME|POD -> (cgroup dir, label)."""
        text = text.strip()
        if not text:
            raise NlbpfError("--container needs an id or a name", exit_code=2)
        if self.cgroups.mount is None:
            self.cgroups.resolve("/")       # raises the cgroup v2 message
        found = self.containers()
        want = text.lower()
        hits = []
        if re.fullmatch(r"[0-9a-f]{4,64}", want):
            hits = [(c, d) for c, d in found if c.get("id") and c["id"].startswith(want)]
        if not hits:
            for c, d in found:
                names = {c.get("name"), f"{c.get('pod')}/{c.get('name')}",
                         f"{c.get('namespace')}/{c.get('pod')}/{c.get('name')}"}
                if text in names:
                    hits.append((c, d))
        if not hits:
            for c, d in self.pods():
                if text in (c.get("pod"), f"{c.get('namespace')}/{c.get('pod')}", c.get("pod_uid")):
                    hits.append((c, d))
        if not hits:
            raise NlbpfError(f"no container {text!r} on this node (give a container id or "
                             f"its first characters, a name, or pod/container)", exit_code=2)
        if len(hits) > 1:
            shown = ", ".join(sorted(f"{container_label(c)} ({(c.get('id') or '')[:12]})"
                                     for c, _ in hits[:6]))
            raise NlbpfError(f"--container {text!r} matches {len(hits)} containers: {shown}; "
                             f"give more of the id or pod/container", exit_code=2)
        c, d = hits[0]
        return d, container_label(c)


def place_tag(info, netns=None):
    """`[pod/container]`, `[netns NAME]`, or "" for the host: where a record (a
    describe() result with its netns) happened, for text lines."""
    label = container_label(info.get("container"))
    if label:
        return f"[{label}]"
    name = info.get("netns_name")
    if name == "host" or (name is None and not netns):
        return ""
    return f"[netns {name or netns}]"


@functools.lru_cache(maxsize=1)
def live_context():
    """This machine's Context, built once: its caches of netns names, cgroups and
    containers serve every record and filter of a live run."""
    return Context()
