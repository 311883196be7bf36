"""The records that flow through nlbpf: kernel -> Message -> Transaction.

A Message is one netlink message as one process sent or received it. It holds
the raw bytes (header included, cut at the snap length) and who/where/when;
decoding happens later and only when something wants it.
"""
from dataclasses import dataclass, field
from typing import Optional

from .netlink import NETLINK_KOBJECT_UEVENT, headerless

# Netlink protocol numbers (include/uapi/linux/netlink.h) -> short names.
PROTOCOLS = {
    0: "route", 1: "unused", 2: "usersock", 3: "firewall", 4: "sock_diag",
    5: "nflog", 6: "xfrm", 7: "selinux", 8: "iscsi", 9: "audit",
    10: "fib_lookup", 11: "connector", 12: "netfilter", 13: "ip6_fw",
    14: "dnrtmsg", 15: "kobject_uevent", 16: "generic", 18: "scsitransport",
    19: "ecryptfs", 20: "rdma", 21: "crypto", 22: "smc",
}
PROTOCOL_NUMBERS = {name: num for num, name in PROTOCOLS.items()}

# request: sent to the kernel; reply, notify: from the kernel, to one socket or a
# multicast group. A process may send to another process's port too (NETLINK_USERSOCK,
# or anything at all to any socket): from_user and to_user, never a request or its reply.
REQUEST, REPLY, NOTIFY = "request", "reply", "notify"
FROM_USER, TO_USER = "from_user", "to_user"


def protocol_name(proto):
    return PROTOCOLS.get(proto, str(proto))


@dataclass
class Message:
    """One netlink message seen in one send/recv syscall."""
    ts_ns: int                 # CLOCK_MONOTONIC when it crossed: send call entry, recv call exit
                               # (socket layer: when the kernel queued it)
    pid: int                   # tgid of the sender/receiver
    tid: int
    comm: str
    protocol: int              # NETLINK_ROUTE == 0, ...
    direction: str             # REQUEST (sent), REPLY (unicast in), NOTIFY (multicast in)
    data: bytes                # captured bytes, nlmsghdr included, at most snaplen
    length: int                # nlmsg_len the header claims (may exceed len(data))
    netns: int = 0             # inode of the socket's network namespace
    cgroup: int = 0            # cgroup v2 id of the task
    sock: int = 0              # socket identity (kernel sk address; 0 when unknown)
    portid: int = 0            # the socket's own netlink port id
    groups: int = 0            # the multicast group it went to (0: unicast; 0xffffffff: a group the kernel layer did not learn)
    syscall: str = ""          # sendmsg, recvmsg, sendto, ...
    ret: int = 0               # syscall return value
    dur_ns: int = 0            # syscall duration
    lock_wait_ns: int = 0      # time the thread waited on kernel locks in this syscall
    lock_holder_pid: int = 0   # owner of the longest-waited mutex, if known
    lock_holder_comm: str = ""
    extack: Optional[str] = None   # netlink:netlink_extack text seen during the syscall
    skipped_parts: int = 0     # dump parts the kernel counted but did not hand over
    skipped_bytes: int = 0
    skipped_intr: bool = False  # some skipped part carried NLM_F_DUMP_INTR
    split: bool = False        # the message straddled iovecs; data may be partial
    handler_ns: int = 0        # kernel layer, final replies: time in the request's handler
    dump_ns: int = 0           # kernel layer, final replies: time filling dump chunks
    in_handler: Optional[bool] = None  # kernel layer, notifications: sent by a request's handler
    start_slack_ns: int = 0    # requests: the call began between ts_ns and ts_ns + this
    start_known: bool = True   # False: a request rebuilt from its reply (socket layer), no start
    peer_portid: int = 0       # the other end's port: 0 is the kernel (FROM_USER/TO_USER: not 0)
    peer_pid: int = 0          # FROM_USER: the sending process's pid, when known
    overlong: bool = False     # it claims more bytes than its buffer held (a send the kernel
                               # ignored; a reply the reader's buffer cut)
    lock_holder_work: str = ""  # the lock's owner is a kworker: the function it was running

    @property
    def nl_type(self):
        return int.from_bytes(self.data[4:6], "little") if len(self.data) >= 6 else None

    @property
    def nl_flags(self):
        return int.from_bytes(self.data[6:8], "little") if len(self.data) >= 8 else 0

    @property
    def seq(self):
        # (per message: the protocol test first, the rest only for uevents)
        if len(self.data) < 12 or self.protocol == NETLINK_KOBJECT_UEVENT and self.unframed:
            return 0
        return int.from_bytes(self.data[8:12], "little")

    @property
    def nl_pid(self):
        # (per message: the protocol test first, the rest only for uevents)
        if len(self.data) < 16 or self.protocol == NETLINK_KOBJECT_UEVENT and self.unframed:
            return 0
        return int.from_bytes(self.data[12:16], "little")

    @property
    def unframed(self):
        """A uevent: no netlink header, so no seq nor sender port in it (netlink.headerless)."""
        return headerless(self.protocol, self.data)

    @property
    def truncated(self):
        return len(self.data) < self.length


@dataclass
class SyscallError:
    """A netlink socket call that failed as a whole (ENOBUFS overrun, EPERM, ...). On
    the socket layer an overrun is seen in the socket's drop counter instead (syscall
    "kernel"): dropped says how many messages it lost since the last look."""
    ts_ns: int
    pid: int
    tid: int
    comm: str
    protocol: int
    syscall: str
    errno: int
    netns: int = 0
    cgroup: int = 0
    sock: int = 0
    portid: int = 0
    dropped: int = 0


@dataclass
class CallEnd:
    """The send that carried a request ended with no final reply queued for it (a
    dump's parts come later; a request without NLM_F_ACK may get none): slow on the
    socket layer, which reports calls. Holds what the call's lock waits were."""
    ts_ns: int
    pid: int
    tid: int
    sock: int
    seq: int
    lock_wait_ns: int = 0
    lock_holder_pid: int = 0
    lock_holder_comm: str = ""
    lock_holder_work: str = ""


@dataclass
class Transaction:
    """A request paired with its final reply (ACK, ERROR or the DONE of a dump)."""
    request: Message
    final: Optional[Message] = None      # None: the reply never came (expired), or see end
    end: Optional[CallEnd] = None        # the call ended with no final reply queued
    parts: int = 0                       # dump parts / data replies before the final one
    part_bytes: int = 0
    dump_intr: bool = False              # some part carried NLM_F_DUMP_INTR
    errno: Optional[int] = None          # positive errno, 0 for success
    extack: Optional[str] = None
    replies: list = field(default_factory=list)  # kept only when the consumer asks

    @property
    def done(self):
        """What completed it: the final reply, or the end of its call."""
        return self.final if self.final is not None else self.end

    @property
    def latency_ns(self):
        """Request start -> final reply (or the call's end); None when either is unknown.
        A start known only within a window (start_slack_ns) gives the longest value."""
        done = self.done
        if done is None or not self.request.start_known:
            return None
        return max(0, done.ts_ns - self.request.ts_ns)

    @property
    def latency_min_ns(self):
        """The shortest latency the start's window allows (== latency_ns when exact)."""
        lat = self.latency_ns
        return None if lat is None else max(0, lat - self.request.start_slack_ns)
