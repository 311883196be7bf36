"""The filters every command takes, resolved once, applied in the kernel where possible.

`Filters.cflags()` turns them into -D defines for the probes; `Filters.match()`
applies the same test to records in userspace (offline reads, and the parts of a
filter the kernel cannot check).
"""
import errno as errnos
import os
from dataclasses import dataclass
from typing import Optional

from .errors import NlbpfError
from .model import PROTOCOL_NUMBERS, protocol_name
from .places import live_context
from .capture.abi import DEFINES


def _type_constants():
    """{name: number} of well-known netlink message types, from pyroute2's tables."""
    names = {"NLMSG_NOOP": 1, "NLMSG_ERROR": 2, "NLMSG_DONE": 3, "NLMSG_OVERRUN": 4}
    try:
        from pyroute2.netlink import rtnl
        names.update({k: v for k, v in vars(rtnl).items()
                      if k.startswith("RTM_") and isinstance(v, int)})
    except ImportError:
        pass
    return names


MAX_LINKS = 32          # netlink protocols are 0-31 (include/uapi/linux/netlink.h)


def parse_protocol(text):
    if text is None:
        return None
    if text.isdigit():
        if int(text) >= MAX_LINKS:
            raise NlbpfError(f"--proto {text}: netlink protocols are 0 to {MAX_LINKS - 1}",
                             exit_code=2)
        return int(text)
    key = text.lower().removeprefix("netlink_")
    aliases = {"rtnetlink": "route", "rtnl": "route", "genl": "generic", "nfnetlink": "netfilter",
               "inet_diag": "sock_diag", "diag": "sock_diag"}
    key = aliases.get(key, key)
    if key not in PROTOCOL_NUMBERS:
        raise NlbpfError(f"unknown netlink protocol {text!r} (try route, generic, netfilter, "
                         f"sock_diag, xfrm, audit or a number)", exit_code=2)
    return PROTOCOL_NUMBERS[key]


def parse_type(text):
    if text is None:
        return None
    try:
        number = int(text, 0)
    except ValueError:
        pass
    else:
        if not 0 <= number <= 0xFFFF:
            raise NlbpfError(f"--type {text}: a netlink message type is 0 to 65535",
                             exit_code=2)
        return number
    number = _type_constants().get(text.upper())
    if number is None:
        raise NlbpfError(f"unknown message type {text!r} (use a name like RTM_DELROUTE or a number)",
                         exit_code=2)
    return number


@dataclass(frozen=True)
class IgnoreRule:
    """errors --ignore [PROTO/]TYPE[:ERRNO] or :ERRNO: a failure the user expects.
    protocol None: any (a type number given without one); type or errno None: any."""
    text: str
    protocol: Optional[int]
    type: Optional[int]
    errno: Optional[int]

    def matches(self, protocol, type_, errno):
        return ((self.protocol is None or self.protocol == protocol)
                and (self.type is None or self.type == type_)
                and (self.errno is None or self.errno == errno))


def parse_errno(text, whole):
    if text.isdigit() and 0 < int(text) < 4096:
        return int(text)
    number = getattr(errnos, text.upper(), None)
    if not text.upper().startswith("E") or not isinstance(number, int):
        raise NlbpfError(f"--ignore {whole}: unknown errno {text!r} (a name like ENODEV, or "
                         f"a number)", exit_code=2)
    return number


def parse_ignore(text):
    """--ignore RTM_NEWLINK:ENODEV | RTM_NEWLINK | :EEXIST | generic/16:ENOENT."""
    what, _, err = text.partition(":")
    if not what and not err:
        raise NlbpfError(f"--ignore {text!r}: give a type, an errno or both (RTM_NEWLINK:ENODEV)",
                         exit_code=2)
    protocol = type_ = None
    if what:
        proto, _, name = what.rpartition("/")
        protocol = parse_protocol(proto) if proto else None
        try:
            type_ = parse_type(name)
        except NlbpfError:
            raise NlbpfError(f"--ignore {text}: unknown message type {name!r} (a name like "
                             f"RTM_NEWLINK, or PROTO/NUMBER)", exit_code=2) from None
        if protocol is None and name.upper().startswith("RTM_"):
            protocol = PROTOCOL_NUMBERS["route"]
    return IgnoreRule(text, protocol, type_, parse_errno(err, text) if err else None)


def parse_netns(text):
    """--netns NAME|INODE|PID -> namespace inode."""
    if text is None:
        return None
    candidates = [f"/run/netns/{text}", f"/var/run/netns/{text}"]
    if text.isdigit():
        if int(text) > 0xFFFFFFFF:
            raise NlbpfError(f"--netns {text}: not an inode, nor a pid", exit_code=2)
        if int(text) > 4026531000:          # namespace inodes live up here
            return int(text)
        candidates.insert(0, f"/proc/{text}/ns/net")
    for path in candidates:
        try:
            return os.stat(path).st_ino
        except OSError:
            continue
    raise NlbpfError(f"no network namespace {text!r} (give an `ip netns` name, an inode or a pid)",
                     exit_code=2)


def parse_cgroup(cgroup=None, container=None):
    """--cgroup PATH / --container ID|NAME -> (cgroup directory, label) or (None, None)."""
    if cgroup is None and container is None:
        return None, None
    if cgroup is not None and container is not None:
        raise NlbpfError("give --cgroup or --container, not both", exit_code=2)
    ctx = live_context()
    if container is not None:
        directory, label = ctx.resolve_container(container)
        return directory, f"{label} ({ctx.cgroups.rel(directory)})"
    directory, rel, _ = ctx.cgroups.resolve(cgroup)
    return directory, rel


def cgroup_under(cgid, directory, pid=None):
    """Is cgroup id `cgid` the cgroup at `directory` or one below it (userspace check)?"""
    cgroups = live_context().cgroups
    path, top = cgroups.path(cgid, pid), cgroups.rel(directory)
    if path is None or top is None:
        return False
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def descends_from(pid, root):
    """Is process `pid` the process `root` or below it (its parent's parent...)? Userspace's
    check of the kernel's follow set, for what is read from an iterator rather than seen
    in a call (the socket layer's overruns and running calls); a process gone is not."""
    for _ in range(64):             # deeper than any real process tree
        if pid == root:
            return True
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


@dataclass
class Filters:
    pid: Optional[int] = None
    comm: Optional[str] = None
    protocol: Optional[int] = None
    type: Optional[int] = None
    netns: Optional[int] = None
    cgroup: Optional[str] = None        # cgroup directory: the task is in it or below
    cgroup_label: Optional[str] = None  # what the user asked for (path or container)
    follow: Optional[int] = None        # trace -- CMD: the command's pid, and its descendants
    ignore: tuple = ()                  # errors --ignore: IgnoreRules

    @classmethod
    def from_options(cls, pid=None, comm=None, proto=None, type_=None, netns=None,
                     cgroup=None, container=None):
        if comm is not None and not (0 < len(comm.encode()) <= 15):
            raise NlbpfError("--comm takes a process name of 1 to 15 bytes", exit_code=2)
        if comm is not None and '"' in comm or comm is not None and "\\" in comm:
            raise NlbpfError("--comm cannot contain quotes or backslashes", exit_code=2)
        cgroup_dir, cgroup_label = parse_cgroup(cgroup, container)
        return cls(pid=pid, comm=comm, protocol=parse_protocol(proto), type=parse_type(type_),
                   netns=parse_netns(netns), cgroup=cgroup_dir, cgroup_label=cgroup_label)

    def cflags(self):
        out = []
        if self.pid is not None:
            out.append(f"-DFILTER_PID={self.pid}")
        if self.comm is not None:
            out.append(f'-DFILTER_COMM="{self.comm}"')
        if self.protocol is not None:
            out.append(f"-DFILTER_PROTO={self.protocol}")
        if self.type is not None:
            out.append(f"-DFILTER_TYPE={self.type}")
        if self.netns is not None:
            out.append(f"-DFILTER_NETNS={self.netns}U")
        if self.cgroup is not None:
            # the loader puts the directory in the cgroup_filter map
            out.append("-DFILTER_CGROUP_TREE")
        if self.follow is not None:
            # the loader puts the command's pid in the follow map
            out.append("-DFILTER_FOLLOW")
        if self.ignore:
            # the loader puts the rules in the ignores map (ignore_keys)
            out.append("-DFILTER_IGNORE")
        return out

    def ignore_keys(self):
        """{rule: [(protocol, type, err as the kernel sees it)]}: the ignores map's keys
        (bpf/nlbpf.h struct ignore_key), a type number without a protocol once per one."""
        keys = {}
        for rule in self.ignore:
            err = -rule.errno if rule.errno is not None else 0
            if rule.type is None:
                keys[rule] = [(DEFINES["IGNORE_ANY_PROTO"], DEFINES["IGNORE_ANY_TYPE"], err)]
            elif rule.protocol is None:
                keys[rule] = [(p, rule.type, err) for p in range(MAX_LINKS)]
            else:
                keys[rule] = [(rule.protocol, rule.type, err)]
        return keys

    def ignored(self, protocol, type_, errno):
        """The rule of --ignore that drops this failure (errno > 0), or None."""
        for rule in self.ignore:
            if rule.matches(protocol, type_, errno):
                return rule
        return None

    def who(self, rec):
        """The kernel's test of who made a record (--pid, --comm, --proto, --netns,
        --cgroup), in userspace. A field the record lacks (a capture file's record may
        have no comm or netns) passes."""
        if self.pid is not None and rec.pid != self.pid:
            return False
        if self.comm is not None and getattr(rec, "comm", self.comm) != self.comm:
            return False
        protocol = getattr(rec, "protocol", None)
        if self.protocol is not None and protocol is not None and protocol != self.protocol:
            return False
        if self.netns is not None and getattr(rec, "netns", self.netns) != self.netns:
            return False
        if self.cgroup is not None and not cgroup_under(getattr(rec, "cgroup", 0), self.cgroup,
                                                        getattr(rec, "pid", None)):
            return False
        if self.follow is not None and not descends_from(getattr(rec, "pid", 0), self.follow):
            return False
        return True

    def match(self, rec, request_type=None):
        """who(), and --type: request_type is the type of the request a reply answers
        (replies pass a type filter through it)."""
        if not self.who(rec):
            return False
        if self.type is not None:
            own = getattr(rec, "nl_type", None)
            if own != self.type and request_type != self.type:
                return False
        return True

    def describe(self):
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.comm is not None:
            parts.append(f"comm {self.comm}")
        if self.protocol is not None:
            parts.append(f"protocol {protocol_name(self.protocol)}")
        if self.type is not None:
            parts.append(f"type {self.type}")
        if self.netns is not None:
            parts.append(f"netns {self.netns}")
        if self.cgroup is not None:
            parts.append(f"cgroup {self.cgroup_label or self.cgroup}")
        if self.follow is not None:
            parts.append(f"the command's processes (pid {self.follow} and its children)")
        if self.ignore:
            parts.append("ignoring " + ", ".join(r.text for r in self.ignore))
        return ", ".join(parts)
