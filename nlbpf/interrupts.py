"""Who changed a table while a dump of it ran: the changes named beside a dump the
kernel marked NLM_F_DUMP_INTR.

A dump walks a table over several recv calls. A change to that table in between (a
link added or deleted in the dump's netns, an nftables commit) moves the table's
generation on, and the kernel marks the dump's next part NLM_F_DUMP_INTR: the Go
netlink library then fails the whole dump with EINTR. The changes that can have done
it are those of the same protocol and netns, to a table the dump reads, made while it
ran (from its request to its final reply) and that did not fail.

trace sees every change request; errors gets the ones that succeeded while dumps ran
in their netns (bpf/maps.bpf.h, dump_recent). The kernel layer also hands over what
the kernel changed on its own (a notification sent outside any request's handler: a
netns torn down deletes its veth peers from a kworker), named as the kernel's.
"""
from collections import deque

from .model import NOTIFY
from .netlink import NETLINK_ROUTE, is_change, rtm_table

# Changes are kept this long for dumps still running (a dump read slowly lasts long).
KEEP_NS = 30 * 1_000_000_000
KEEP_MAX = 4096
# A change seen only at its ACK (socket layer: no start) began at most this long
# before it: the time a handler takes, with room.
UNKNOWN_START_NS = 50 * 1_000_000
# An interrupted dump's final reply waits this long for the ACK of a change that raced
# its last part (the part can be made on another CPU between the change and its ACK).
HOLD_NS = 200 * 1_000_000
# ... by the records' clock: a live reader may lag the kernel (trace's spool), so that
# the clock on the wall has passed while the change is still to be read. When no record
# comes at all, the wall clock lets it go after this much more.
QUIET_NS = 2 * 1_000_000_000
# How many changes text names for one dump (JSON has them all).
TEXT_MAX = 3


def reads(dump, change):
    """Can this change move the generation of the table this dump request walks?
    rtnetlink: a change to the same table, or to a link (addresses, routes and
    neighbours go with their link, and address dumps check the links' generation
    too). nftables: every change (one generation for the whole ruleset)."""
    if dump.protocol != change.protocol:
        return False
    if dump.netns and change.netns and dump.netns != change.netns:
        return False
    if dump.protocol == NETLINK_ROUTE:
        table = rtm_table(change.nl_type)
        return table == rtm_table(dump.nl_type) or table == 0
    return True


class Change:
    """A change made while dumps may run: a request (with its transaction, to know
    whether it failed and when it ended) or a notification of the kernel's own."""
    __slots__ = ("msg", "txn", "kernel")

    def __init__(self, msg, txn=None, kernel=False):
        self.msg, self.txn, self.kernel = msg, txn, kernel

    @property
    def failed(self):
        return self.txn is not None and bool(self.txn.errno)

    def window(self, now_ns):
        """(began by, ended by) in the probes' clock."""
        msg = self.msg
        done = self.txn.done if self.txn is not None else None
        end = done.ts_ns if done is not None else (msg.ts_ns if self.kernel else now_ns)
        if self.kernel:
            return end, end
        if not msg.start_known:
            return msg.ts_ns - UNKNOWN_START_NS, max(end, msg.ts_ns)
        return msg.ts_ns, max(end, msg.ts_ns + msg.start_slack_ns)


class ChangeLog:
    """The recent changes, oldest first; named(txn) picks those that may have
    interrupted a dump."""

    def __init__(self, keep_ns=KEEP_NS, keep_max=KEEP_MAX):
        self.keep_ns = keep_ns
        self.keep_max = keep_max
        self.changes = deque()
        self.now = 0

    def add(self, txn):
        """A change request (trace: as it is sent; errors: once acknowledged). Others are
        not kept: True if it was."""
        msg = txn.request
        if not is_change(msg.protocol, msg.nl_type):
            return False
        self._keep(Change(msg, txn))
        return True

    def add_kernel(self, msg):
        """A notification the kernel sent outside any request's handler (kernel layer)."""
        if msg.direction != NOTIFY or msg.in_handler is not False \
                or not is_change(msg.protocol, msg.nl_type):
            return False
        self._keep(Change(msg, kernel=True))
        return True

    def _keep(self, change):
        self.now = max(self.now, change.msg.ts_ns)
        self.changes.append(change)
        while self.changes and (len(self.changes) > self.keep_max
                                or self.now - self.changes[0].msg.ts_ns > self.keep_ns):
            self.changes.popleft()

    def named(self, txn):
        """The changes that may have interrupted this dump, oldest first."""
        req = txn.request
        done = txn.done
        if done is None:
            return []
        # (on the socket layer a dump's request is dated by its first part, queued in its
        # send: a change before that is not one the dump could meet)
        start, end = req.ts_ns, done.ts_ns
        out = []
        for change in self.changes:
            if change.failed or change.msg is req or not reads(req, change.msg):
                continue
            began, ended = change.window(max(self.now, end))
            if began <= end and ended >= start:
                out.append(change)
        return out


class InterruptHold:
    """Interrupted dumps held back for HOLD_NS of the records' clock, so that a change
    whose ACK comes just after the dump's last part is named with it. hold() keeps an
    item; due() gives back, in order, those whose time is up: records_ns is the newest
    record's time, wall_ns the probes' clock now (QUIET_NS more), everything at the end."""

    def __init__(self, hold_ns=HOLD_NS, quiet_ns=QUIET_NS):
        self.hold_ns = hold_ns
        self.quiet_ns = quiet_ns
        self.held = deque()          # (ts_ns, item)

    def hold(self, ts_ns, item):
        self.held.append((ts_ns, item))

    def due(self, records_ns=None, wall_ns=None, everything=False):
        out = []
        while self.held:
            ts = self.held[0][0]
            if not (everything
                    or (records_ns is not None and records_ns - ts >= self.hold_ns)
                    or (wall_ns is not None and wall_ns - ts >= self.hold_ns + self.quiet_ns)):
                break
            out.append(self.held.popleft()[1])
        return out
