"""Netlink load for the benchmarks: exact, countable traffic, timed from the inside.

    python nlload.py getlink COUNT              COUNT RTM_GETLINK(lo) requests with ACK, back to back
    python nlload.py dump COUNT                 COUNT IPv4 route dumps, back to back
    python nlload.py routes COUNT               COUNT distinct blackhole /32 route adds, then their deletes
    python nlload.py paced RATE SECONDS [MIX]   MIX (route|getlink) requests paced so that
                                                requests + replies come to RATE messages/s

Every message sent and received is counted (replies are parsed, not guessed),
and the netlink phase is timed with a monotonic clock (interpreter start-up is
not netlink work), in wall time and in CPU time (user+sys of this process: what
probes running inside its syscalls add, without the time other processes took
the CPU). Prints one JSON line:

    {"pid", "what", "requests", "sent", "received", "messages", "errors", "seconds",
     "cpu_seconds", ...}

`paced route` adds and deletes distinct blackhole /32 routes (every message is
different, so nothing downstream can cache its decoding); `paced getlink`
repeats the same request (the cache-friendly case). Run it inside a throwaway
network namespace.
"""
import json
import os
import resource
import socket
import struct
import sys
import time

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 1, 2, 4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTA_DST = 1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_BLACKHOLE = 254, 3, 0, 6

HDR = struct.Struct("=IHHII")


def message(type_, flags, seq, payload):
    return HDR.pack(16 + len(payload), type_, flags, seq, 0) + payload


def ifinfomsg(index=0):
    return struct.pack("=BxHiII", 0, 0, index, 0, 0)


def rtmsg(dst_len=0, table=0, protocol=0, scope=0, type_=0):
    return struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, table, protocol, scope,
                       type_, 0)


def route_payload(i):
    """A blackhole /32 route to 10.x.y.z, distinct for each i < 2**24."""
    dst = struct.pack("!I", (10 << 24) | (i & 0xFFFFFF))
    return (rtmsg(32, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_BLACKHOLE)
            + struct.pack("=HH", 8, RTA_DST) + dst)


class Conn:
    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.s.bind((0, 0))
        self.seq = 0
        self.sent = self.received = self.errors = self.requests = 0
        self.parts = []

    def request(self, type_, flags, payload):
        """Send one request, read to its final reply; returns (data parts, errno)."""
        self.seq += 1
        seq = self.seq
        self.s.send(message(type_, flags, seq, payload))
        self.sent += 1
        self.requests += 1
        ack = flags & NLM_F_ACK
        parts = 0
        while True:
            data = self.s.recv(1 << 16)
            off, n = 0, len(data)
            final = None
            while off + 16 <= n:
                length, t, f, rseq, _ = HDR.unpack_from(data, off)
                if length < 16:
                    break
                self.received += 1
                if rseq == seq:
                    if t == NLMSG_ERROR:
                        final = -struct.unpack_from("=i", data, off + 16)[0]
                    elif t == NLMSG_DONE:
                        final = 0
                    else:
                        parts += 1
                        if not (f & NLM_F_MULTI) and not ack:
                            final = 0
                off += (length + 3) & ~3
            if final is not None:
                if final:
                    self.errors += 1
                return parts, final

    def close(self):
        self.s.close()


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    what = argv[1]
    out = {"pid": os.getpid(), "what": what}
    c = Conn()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    if what == "getlink":
        for _ in range(int(argv[2])):
            c.request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, ifinfomsg(1))
    elif what == "dump":
        for _ in range(int(argv[2])):
            parts, _ = c.request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, rtmsg())
            c.parts.append(parts)
        out["parts"] = c.parts
    elif what == "routes":
        n = int(argv[2])
        for i in range(n):
            c.request(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                      route_payload(i))
        for i in range(n):
            c.request(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, route_payload(i))
    elif what == "paced":
        rate, seconds = float(argv[2]), float(argv[3])
        mix = argv[4] if len(argv) > 4 else "route"
        per_request = 3 if mix == "getlink" else 2      # request, (NEWLINK,) ACK
        req_rate = rate / per_request
        deadline = t0 + seconds
        i = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            due = int((now - t0) * req_rate) - c.requests
            if due <= 0:
                time.sleep(min(0.0005, deadline - now))
                continue
            for _ in range(min(due, 200)):
                if mix == "getlink":
                    c.request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, ifinfomsg(1))
                elif i % 2 == 0:
                    c.request(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                              route_payload(i // 2))
                    i += 1
                else:
                    c.request(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, route_payload(i // 2))
                    i += 1
        out.update(target_rate=rate, mix=mix)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    seconds = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    c.close()
    out.update(requests=c.requests, sent=c.sent, received=c.received,
               messages=c.sent + c.received, errors=c.errors, seconds=round(seconds, 6),
               cpu_seconds=round(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime, 6),
               rate=round((c.sent + c.received) / seconds, 1) if seconds else None)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
