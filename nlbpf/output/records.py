"""Decoded, correlated records -> the dicts nlbpf prints (JSON keys) and their text lines.

One function builds each record; the JSON and the text views both start from
it, so the two never disagree.
"""
import os
import struct
import time

from ..places import place_tag
from ..netlink import NLMSG_ERROR
from ..decode import Decoded, GenlFamilies, decode, errno_name
from ..decode.secret import reveal
from ..capture.abi import DEFINES
from ..capture.settings import MAX_SNAPLEN
from ..interrupts import TEXT_MAX
from ..model import REQUEST, REPLY, NOTIFY, FROM_USER, TO_USER, protocol_name

ARROWS = {REQUEST: "→", REPLY: "←", NOTIFY: "⇐", FROM_USER: "←", TO_USER: "→"}
PEER_UNKNOWN = DEFINES["PEER_UNKNOWN"]


MEMO_MAX = 4096         # distinct payloads whose decoding is kept for reuse


def _clone(d):
    c = Decoded.__new__(Decoded)
    for name in Decoded.__slots__:
        setattr(c, name, getattr(d, name, None))
    return c


def _memo_key(protocol, data):
    """The bytes that decide a message's decoding, less the header's seq and portid (and
    those of the request an NLMSG_ERROR echoes). None: not reused (generic netlink and
    uevents depend on more than the bytes; short messages are rare)."""
    if protocol in (15, 16) or not isinstance(data, bytes) or len(data) < 16:
        return None
    if data[4] == NLMSG_ERROR and data[5] == 0:
        if len(data) < 36:
            return None
        return protocol, data[:8] + data[16:28] + data[36:]
    return protocol, data[:8] + data[16:]


class Decoder:
    """Decodes each message once, resolving generic netlink families live.

    Traffic repeats itself (an agent polling the same link, the same ACK for
    every request): a payload seen before is not decoded again. Only seq and
    portid can differ, so the earlier result is copied with those set (and its
    JSON reused the same way).
    """

    def __init__(self, families=None, live_families=True, show_secrets=False):
        self._families = families
        self._live = live_families
        self.show_secrets = show_secrets     # key material as text, not only its length
        self._memo = {}

    @property
    def families(self):
        if self._families is None:
            self._families = GenlFamilies.live() if self._live else GenlFamilies()
        return self._families

    def __call__(self, msg):
        d = getattr(msg, "_decoded", None)
        if d is None:
            data = msg.data
            key = _memo_key(msg.protocol, data)
            seen = self._memo.get(key) if key is not None else None
            if seen is not None:
                d = _clone(seen[0])
                d.seq, d.portid = struct.unpack_from("=II", data, 8)
                if d.echoed is not None:
                    d.echoed = _clone(d.echoed)
                    d.echoed.seq, d.echoed.portid = struct.unpack_from("=II", data, 28)
                msg._memo = seen
            else:
                d = decode(msg.protocol, data, self.families)
                reveal(d, self.show_secrets)
                if msg.protocol == 16:
                    self.families.feed(d)
                if key is not None:
                    if len(self._memo) >= MEMO_MAX:
                        self._memo.clear()
                    self._memo[key] = [_clone(d), None]     # decoded, its JSON once built
            msg._decoded = d
        return d

    def json(self, msg):
        """msg's decoded message as JSON: built once per message (a dump's request is in
        every part's record) and once per repeated payload (seq and portid set)."""
        j = getattr(msg, "_json", None)
        if j is not None:
            return j
        d = self(msg)
        seen = getattr(msg, "_memo", None)
        if seen is None:
            j = d.to_json()
        else:
            if seen[1] is None:
                seen[1] = seen[0].to_json()
            j = dict(seen[1], seq=d.seq, portid=d.portid)
            if j.get("echoed") is not None:
                j["echoed"] = dict(j["echoed"], seq=d.echoed.seq, portid=d.echoed.portid)
        msg._json = j
        return j


def short_flags(names):
    """NLM_F_REQUEST -> req, ...; NLM_F_DUMP_INTR stays loud."""
    out = []
    for n in names:
        if n == "NLM_F_DUMP_INTR":
            out.append("DUMP_INTR")
        elif n.startswith("NLM_F_"):
            out.append({"REQUEST": "req"}.get(n[6:], n[6:].lower()))
        else:
            out.append(n)
    return ",".join(out)


def wall_ts(ts_ns, offset_ns):
    return round((ts_ns + offset_ns) / 1e9, 6)


def clock(ts):
    try:
        t = time.localtime(ts)
    except (OverflowError, OSError, ValueError):
        # a time the platform cannot turn into a date (a capture file's, some
        # billion years away): the seconds since the epoch as they are
        return f"{ts:.6f}"
    return time.strftime("%H:%M:%S", t) + f".{int((ts % 1) * 1e6):06d}"


def fmt_us(us):
    if us is None:
        return "-"
    if us >= 1_000_000:
        return f"{us / 1e6:.2f}s"
    if us >= 1000:
        return f"{us / 1000:.2f}ms"
    return f"{us:.0f}us"


def strerror(n):
    return os.strerror(n) if n else None


def _latency_us(txn):
    ns = txn.latency_ns if txn else None
    return round(ns / 1000, 1) if ns is not None else None


def latency_text(rec):
    """`455us`, or `1.95s–2.00s` when the start is known only within a window (slow on
    the socket layer); "" when it is not known at all (errors on the socket layer)."""
    hi, lo = rec.get("latency_us"), rec.get("latency_min_us")
    if hi is None:
        return ""
    if lo is not None and fmt_us(lo) != fmt_us(hi):
        return f"{fmt_us(lo)}–{fmt_us(hi)}"
    return fmt_us(hi)


def _extack(txn, decoder):
    if txn is None or txn.final is None:
        return None
    final = decoder(txn.final)
    return getattr(final, "extack", None) or txn.extack


def where(netns, cgroup, pid, context):
    """netns_name, cgroup_path and container of a record, as `context` (the live
    machine's, or a capture file's: nlbpf/places.py) knows them."""
    return context.describe(netns, cgroup, pid)


def where_tag(rec):
    """` [pod/container]` or ` [netns NAME]` for text lines; "" on the host."""
    tag = place_tag(rec, rec.get("netns")) if "netns_name" in rec else ""
    return f" {tag}" if tag else ""


def kernel_times(final, rec):
    """Kernel-layer facts about a finished request: handler and dump-filling time."""
    if final is not None and final.handler_ns:
        rec["handler_us"] = round(final.handler_ns / 1000, 1)
    if final is not None and final.dump_ns:
        rec["dump_us"] = round(final.dump_ns / 1000, 1)


def origin_text(origin):
    if origin == "kernel":
        return "from the kernel"
    if origin and origin.get("pid"):
        seq = f" seq={origin['seq']}" if origin.get("seq") is not None else ""
        return f"from {origin['comm']} {origin['pid']}{seq}"
    if origin:
        return f"from port {origin.get('portid')} seq={origin['seq']}"
    return ""


def peer(msg):
    """The process at the other end of a message between processes: {"portid", "pid"}
    (either None when not known), or None when the other end is the kernel."""
    if msg.direction not in (FROM_USER, TO_USER):
        return None
    return {"portid": None if msg.peer_portid in (0, PEER_UNKNOWN) else msg.peer_portid,
            "pid": msg.peer_pid or None}


def peer_text(msg, p):
    """`from port 4242 (pid 4242), not the kernel` / `to port 4242, not the kernel`."""
    where = f"port {p['portid']}" if p["portid"] is not None else "a port not known"
    if p["pid"]:
        where += f" (pid {p['pid']})"
    return f"{'from' if msg.direction == FROM_USER else 'to'} {where}, not the kernel"


def change_record(change, decoder, offset_ns):
    """One change named beside an interrupted dump (interrupts.Change), as JSON."""
    msg = change.msg
    d = decoder(msg)
    return {"ts": wall_ts(msg.ts_ns, offset_ns), "by": "kernel" if change.kernel else "process",
            "pid": msg.pid, "comm": msg.comm, "netns": msg.netns, "type": d.type_name,
            "seq": None if change.kernel else msg.seq, "what": change_object(d)}


def change_object(d, most=60):
    """What a change was made to, in few words: a link by its name and kind (`dev sqa5
    kind veth`; a notification's flags, mtu and address left out) or its index; other
    objects by their summary, cut."""
    text = d.summary().replace("[truncated]", "").strip()
    if d.protocol == 0 and (d.type_name or "").endswith("LINK"):
        words = text.split()
        keep = []
        for key in ("dev", "kind"):
            if key in words[:-1]:
                i = words.index(key)
                keep += words[i:i + 2]
        if not keep and "index" in words[:-1]:
            i = words.index("index")
            keep = words[i:i + 2]
        return " ".join(keep) or text
    return text if len(text) <= most else text[:most - 1] + "…"


def interrupted_line(changes, most=TEXT_MAX):
    """The line under an interrupted dump: `interrupted by: RTM_NEWLINK dev sqa5 kind veth
    by ip 1234, ...`, the kernel's own changes as `by the kernel (kworker/u8:2 37)`."""
    if not changes:
        return ("interrupted by: no change this run saw (a process it filters out, or the "
                "kernel's own: those show with --hooks kernel)")
    parts = []
    for c in changes[:most]:
        who = (f"the kernel ({c['comm']} {c['pid']})" if c["by"] == "kernel"
               else f"{c['comm']} {c['pid']}")
        parts.append(" ".join(x for x in (c["type"], c["what"], "by", who) if x))
    more = len(changes) - most
    return "interrupted by: " + ", ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def message_record(msg, txn, completed, decoder, offset_ns, context, origin=None,
                   interrupted_by=None):
    """The JSON record of one message (nlbpf trace). origin: who caused a notification."""
    d = decoder(msg)
    req = decoder(txn.request) if txn is not None else None
    rec = {
        "ts": wall_ts(msg.ts_ns, offset_ns),
        "pid": msg.pid, "tid": msg.tid, "comm": msg.comm,
        "netns": msg.netns, "cgroup": msg.cgroup,
        **where(msg.netns, msg.cgroup, msg.pid, context),
        "protocol": protocol_name(msg.protocol),
        "direction": msg.direction,
        "type": d.type_name,
        "flags": list(d.flag_names),
        "seq": msg.seq, "portid": msg.portid,
        "errno": None, "error": None, "extack": None, "latency_us": None,
        "request": decoder.json(txn.request) if req is not None else None,
        "message": decoder.json(msg),
        "truncated": msg.truncated or bool(getattr(d, "truncated", False)),
        "malformed": getattr(d, "malformed", None),
        "peer": peer(msg),
        "overlong": msg.overlong,
        # the call that carried it ("kernel" for the kernel-function layer)
        "syscall": {"name": msg.syscall, "ret": msg.ret, "dur_us": round(msg.dur_ns / 1000, 1)},
    }
    if msg.nl_type == NLMSG_ERROR and d.errno is not None:
        rec["errno"] = d.errno or None
        rec["error"] = errno_name(d.errno) if d.errno else None
        rec["extack"] = d.extack
    if completed:
        rec["latency_us"] = _latency_us(txn)
        rec["errno"] = txn.errno or None
        rec["error"] = errno_name(txn.errno) if txn.errno else None
        rec["extack"] = _extack(txn, decoder)
        if txn.parts or txn.dump_intr:
            rec["dump"] = {"parts": txn.parts, "bytes": txn.part_bytes, "intr": txn.dump_intr}
            if interrupted_by is not None:
                rec["dump"]["interrupted_by"] = interrupted_by
        if txn.final.lock_wait_ns:
            rec["lock_wait_us"] = round(txn.final.lock_wait_ns / 1000, 1)
        kernel_times(txn.final, rec)
    if msg.direction == NOTIFY:
        rec["origin"] = origin
    rec["summary"] = message_line(msg, d, txn, completed, rec)
    return rec


def message_line(msg, d, txn, completed, rec):
    """`ip 4242 route → RTM_DELROUTE req,ack seq=17 dst 10.0.0.0/24 ...`"""
    head = (f"{msg.comm} {msg.pid}{where_tag(rec)} {protocol_name(msg.protocol)} "
            f"{ARROWS[msg.direction]}")
    if rec.get("peer"):
        head += f" [{peer_text(msg, rec['peer'])}]"
    head += f" {d.type_name}"
    flags = short_flags(d.flag_names)
    if flags:
        head += f" {flags}"
    if not msg.unframed:        # a uevent has no header, nor seq
        head += f" seq={msg.seq}"
    if rec.get("origin"):
        head += f" ({origin_text(rec['origin'])})"
    body = d.summary()
    if msg.overlong:
        # its length runs past the end of the buffer it came in
        cut = (f"ignored by the kernel: nlmsg_len {msg.length} runs past the end of the buffer"
               if msg.direction in (REQUEST, TO_USER) else
               f"cut by the reader's buffer: {len(msg.data)} of {msg.length} bytes")
        body = body.replace("[truncated]", f"[{cut}]") if "[truncated]" in body else f"{body} [{cut}]"
    elif msg.truncated:
        cut = f"truncated: {len(msg.data)} of {msg.length} bytes"
        if msg.length <= MAX_SNAPLEN:
            cut += f"; --snaplen {msg.length} keeps it"
        body = body.replace("[truncated]", f"[{cut}]") if "[truncated]" in body else f"{body} [{cut}]"
    if body:
        head += f" {body}"
    if completed:
        # an NLMSG_ERROR's own summary names the errno; a DONE's may not
        if rec["errno"] and rec["error"] not in body:
            head += f" → {rec['error']} ({strerror(rec['errno'])})"
        extra = [fmt_us(rec["latency_us"])]
        if txn.parts:
            extra.append(f"{txn.parts} parts {txn.part_bytes}B")
        if txn.dump_intr:
            extra.append("DUMP_INTR")
        if rec.get("extack") and rec["extack"] not in head:
            extra.append(f'"{rec["extack"]}"')
        head += " [" + ", ".join(extra) + "]"
    return head


def transaction_record(txn, decoder, offset_ns, context, interrupted_by=None):
    """The JSON record of one completed request (nlbpf errors / slow); interrupted_by:
    an interrupted dump's change_records."""
    req = txn.request
    d = decoder(req)
    final = decoder(txn.final) if txn.final is not None else None
    errno = txn.errno or None
    rec = {
        "ts": wall_ts(req.ts_ns, offset_ns),
        "pid": req.pid, "tid": req.tid, "comm": req.comm,
        "netns": req.netns, "cgroup": req.cgroup,
        **where(req.netns, req.cgroup, req.pid, context),
        "protocol": protocol_name(req.protocol),
        "direction": REQUEST,
        "type": d.type_name,
        "flags": list(d.flag_names),
        "seq": req.seq, "portid": req.portid,
        "errno": errno,
        "error": errno_name(errno) if errno else None,
        "strerror": strerror(errno),
        "extack": _extack(txn, decoder),
        "latency_us": _latency_us(txn),
        "request": d.to_json(),
        "reply": final.to_json() if final is not None else None,
        "truncated": req.truncated,
    }
    if req.start_slack_ns and rec["latency_us"] is not None:
        # it began between ts and ts + start_slack_us
        rec["latency_min_us"] = round(txn.latency_min_ns / 1000, 1)
        rec["start_slack_us"] = round(req.start_slack_ns / 1000, 1)
    if txn.parts or txn.dump_intr or (final is not None and final.type_name == "NLMSG_DONE"):
        rec["dump"] = {"parts": txn.parts, "bytes": txn.part_bytes, "intr": txn.dump_intr}
        if interrupted_by is not None:
            rec["dump"]["interrupted_by"] = interrupted_by
    kernel_times(txn.final, rec)
    rec["summary"] = transaction_line(txn, d, rec)
    return rec


def transaction_line(txn, d, rec):
    req = txn.request
    line = f"{req.comm} {req.pid}{where_tag(rec)} {protocol_name(req.protocol)} {d.type_name}"
    flags = short_flags(d.flag_names)
    if flags:
        line += f" {flags}"
    line += f" seq={req.seq}"
    body = d.summary()
    if body:
        line += f" {body}"
    if rec["errno"]:
        line += f" → {rec['error']} ({rec['strerror']})"
    elif txn.final is not None:
        line += " → ok"
    elif txn.end is not None:
        line += " → sent, no reply queued yet"
    if rec.get("extack"):
        line += f' "{rec["extack"]}"'
    if rec.get("dump"):
        dump = rec["dump"]
        line += f" [{dump['parts']} parts, {dump['bytes']}B{', DUMP_INTR' if dump['intr'] else ''}]"
    latency = latency_text(rec)
    if latency:
        line += f" {latency}"
    return line

