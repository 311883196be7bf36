"""Pair each netlink request with its final reply.

Requests are keyed by (socket, seq). The socket is the kernel's sk address when
the probes give it; offline captures have no sk, so the key falls back to
(pid or portid, protocol). pid + seq alone is not enough: `ip` reuses a seq on a
second socket, and pyroute2 starts every socket at seq 255.

The final reply is the NLMSG_ERROR (ack or error), the NLMSG_DONE of a dump, or
a lone data reply to a request that did not ask for an ack. Dump parts before it
are counted (including parts the kernel counted but did not hand over).
"""
from collections import OrderedDict, defaultdict, deque

from .model import REQUEST, REPLY, NOTIFY, Message, Transaction
from .netlink import (NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
                      final_status as _final_status, is_final_reply)
# Requests whose answer never comes (fire-and-forget, or the reader died) are
# dropped this long after they were sent, so memory stays flat on long runs.
EXPIRE_NS = 30 * 1_000_000_000
EXTACK_KEEP_NS = 10 * 1_000_000_000
# ... and past this many waiting, the oldest goes: a capture file's clock may jump about
# (expiry takes them oldest first, and stops at the first one young enough), and a flood
# of requests nothing answers must not grow memory either. The kernel's own table holds
# 16,384 (PENDING_MAX in bpf/base.bpf.h).
PENDING_MAX = 65536
# How long a notification waits for its request (NotificationHold): the gap
# between the kernel queueing it and the requester's sendmsg returning.
HOLD_NS = 200 * 1_000_000


def final_status(msg):
    """Positive errno carried by an NLMSG_ERROR/NLMSG_DONE (0 for success), else None."""
    return _final_status(msg.nl_type, msg.data)


def socket_key(msg):
    if msg.sock:
        return ("sk", msg.sock)
    # offline: the request's sender and the reply's receiver are the same socket
    return ("port", msg.protocol, msg.portid or msg.pid)


class Correlator:
    """Feed records in order; get back, for each message, the transaction it
    opened, advanced or completed.

    feed(msg) -> (txn, completed): txn is the Transaction the message belongs to
    (None for notifications and orphan replies); completed is True when msg was
    its final reply.
    """

    def __init__(self, expire_ns=EXPIRE_NS, keep_replies=False, pending_max=PENDING_MAX):
        self.expire_ns = expire_ns
        self.pending_max = pending_max
        self.keep_replies = keep_replies
        self.pending = OrderedDict()          # (socket key, seq) -> Transaction, oldest first
        self.extacks = defaultdict(deque)     # tid -> recent Extack records
        self.extacks_by_seq = OrderedDict()   # (sk, seq) -> Extack (kernel layer)
        self.requesters = OrderedDict()       # (protocol, netns, portid, seq) -> request, for notifications
        self.latest = OrderedDict()           # tid -> its latest request (a handler's, kernel layer)
        self.expired = 0
        self._now = 0

    @property
    def now(self):
        """The newest timestamp fed so far (a capture file's clock)."""
        return self._now

    def requester(self, msg):
        """The request a notification names by its header (portid, seq), if seen."""
        return self.requesters.get((msg.protocol, msg.netns, msg.nl_pid, msg.seq))

    def handled(self, msg):
        """The request whose handler sent notification msg (kernel layer: sent in the
        requesting thread, inside its handler): that thread's latest request of the
        same protocol, if seen."""
        req = self.latest.get(msg.tid)
        if req is not None and req.protocol == msg.protocol and req.ts_ns <= msg.ts_ns:
            return req
        return None

    def add_extack(self, ext):
        if ext.seq is not None and ext.sock:
            self.extacks_by_seq[(ext.sock, ext.seq)] = ext
            while len(self.extacks_by_seq) > 4096:
                self.extacks_by_seq.pop(next(iter(self.extacks_by_seq)))
            return
        q = self.extacks[ext.tid]
        q.append(ext)
        while q and ext.ts_ns - q[0].ts_ns > EXTACK_KEEP_NS:
            q.popleft()
        while len(q) > 16:
            q.popleft()

    def _extack_for(self, request):
        """Text the kernel raised for this request: by socket and seq when the
        kernel layer says which request it was, else while its send call ran."""
        exact = self.extacks_by_seq.pop((request.sock, request.seq), None)
        if exact is not None:
            return exact.text
        q = self.extacks.get(request.tid)
        if not q:
            return None
        end = request.ts_ns + max(request.dur_ns, 1)
        for ext in reversed(q):
            if request.ts_ns <= ext.ts_ns <= end and (not ext.sock or not request.sock
                                                       or ext.sock == request.sock):
                return ext.text
        return None

    def feed(self, msg):
        self._now = max(self._now, msg.ts_ns)
        if msg.direction == REQUEST:
            # only a request the kernel took gets an answer: not one it ignored (a length
            # past the end of its buffer)
            if not msg.nl_flags & NLM_F_REQUEST or msg.overlong:
                return None, False
            txn = Transaction(request=msg)
            self.requesters[(msg.protocol, msg.netns, msg.portid, msg.seq)] = msg
            while len(self.requesters) > 4096:
                self.requesters.popitem(last=False)
            self.latest.pop(msg.tid, None)
            self.latest[msg.tid] = msg
            while len(self.latest) > 4096:
                self.latest.popitem(last=False)
            key = (socket_key(msg), msg.seq)
            self.pending.pop(key, None)
            self.pending[key] = txn
            if len(self.pending) > self.pending_max:
                self.pending.popitem(last=False)
                self.expired += 1
            return txn, False
        if msg.direction != REPLY:
            # notifications, and messages between processes: whatever their seq and type,
            # no request is answered by a message the kernel did not send
            return None, False
        key = (socket_key(msg), msg.seq)
        txn = self.pending.get(key)
        if txn is None:
            return None, False
        if self.keep_replies:
            txn.replies.append(msg)
        if not is_final_reply(msg.nl_type, msg.nl_flags, txn.request.nl_flags):
            txn.parts += 1
            txn.part_bytes += msg.length
            txn.dump_intr |= bool(msg.nl_flags & NLM_F_DUMP_INTR)
            return txn, False
        del self.pending[key]
        txn.final = msg
        txn.parts += msg.skipped_parts
        txn.part_bytes += msg.skipped_bytes
        txn.dump_intr |= msg.skipped_intr or bool(msg.nl_flags & NLM_F_DUMP_INTR)
        status = final_status(msg)
        txn.errno = status if status is not None else 0
        txn.extack = self._extack_for(txn.request)
        return txn, True

    def end_call(self, end):
        """The call that sent a request ended with no final reply queued (CallEnd, slow
        on the socket layer): its transaction is complete, without one."""
        self._now = max(self._now, end.ts_ns)
        txn = self.pending.pop((("sk", end.sock), end.seq), None)
        if txn is None:
            return None
        txn.end = end
        txn.errno = 0
        txn.extack = self._extack_for(txn.request)
        return txn

    def expire(self, now_ns=None):
        """Drop and return requests older than expire_ns with no final reply."""
        now = now_ns if now_ns is not None else self._now
        out = []
        while self.pending:
            key, txn = next(iter(self.pending.items()))
            if now - txn.request.ts_ns < self.expire_ns:
                break
            del self.pending[key]
            out.append(txn)
        self.expired += len(out)
        for tid in [t for t, q in self.extacks.items() if not q or now - q[-1].ts_ns > EXTACK_KEEP_NS]:
            del self.extacks[tid]
        return out


def origin(correlator, msg):
    """Who caused a notification: {"pid", "comm", "seq"} of the request whose
    handler sent it, "kernel" when no process asked (carrier loss, kworker), or
    None when that cannot be known. The kernel layer knows directly; otherwise
    only notifications that carry the requester's port id and seq can tell."""
    if msg.in_handler is False:
        return "kernel"
    if msg.in_handler:
        # the request's seq, not the notification's own (0 for most of them)
        req = correlator.handled(msg)
        return {"pid": msg.pid, "comm": msg.comm, "seq": req.seq if req is not None else None}
    if msg.nl_pid == 0:
        # many notifications (links, addresses on link events) carry no requester
        # even when a request caused them: only the kernel layer can tell
        return None
    req = correlator.requester(msg)
    if req is None:
        return {"pid": None, "comm": None, "portid": msg.nl_pid, "seq": msg.seq}
    return {"pid": req.pid, "comm": req.comm, "seq": msg.seq}


class NotificationHold:
    """Notifications waiting briefly for the request that caused them.

    On the syscall layer a request is recorded when its sendmsg returns, but a
    listener's recvmsg can return the notification that request raised before
    that (another CPU, another process). A notification that names a requester
    (portid, seq) not seen yet waits until the request comes or wait_ns passes,
    so that trace can still say who caused it.
    """

    def __init__(self, correlator, wait_ns=HOLD_NS):
        self.correlator = correlator
        self.wait_ns = wait_ns
        self.held = deque()          # notifications, in arrival order

    def hold(self, msg):
        """Keep msg back if it names a requester that may still come; True if kept.
        (Only the syscall layer leaves in_handler unknown; nl_pid 0 names no one.)"""
        if msg.in_handler is not None or msg.nl_pid == 0 or self.correlator.requester(msg):
            return False
        self.held.append(msg)
        return True

    def release(self, now_ns=None, everything=False):
        """Those whose requester has come, whose wait is over at now_ns, or all."""
        if not self.held:
            return []
        out, keep = [], deque()
        for msg in self.held:
            if (everything or (now_ns is not None and now_ns - msg.ts_ns >= self.wait_ns)
                    or self.correlator.requester(msg)):
                out.append(msg)
            else:
                keep.append(msg)
        self.held = keep
        return out


def classify_orphan(msg):
    """Direction for an unpaired received message when msg_name was not available:
    kernel notifications carry seq 0 or belong to another socket's request."""
    if msg.direction == REPLY and msg.seq == 0 and msg.nl_type not in (NLMSG_ERROR, NLMSG_DONE):
        return NOTIFY
    return msg.direction


__all__ = ["Correlator", "NotificationHold", "final_status", "classify_orphan", "origin",
           "Message", "Transaction"]
