"""A minimal raw netlink client for tests and benchmarks: exact, countable traffic.

    python nlclient.py getlink COUNT        COUNT RTM_GETLINK(lo) requests with ACK
    python nlclient.py dumplinks SECONDS    dump links in a loop; prints dumps and DUMP_INTR parts
    python nlclient.py dumproutes COUNT     COUNT route dumps
    python nlclient.py dumpthengetlink SECONDS COUNT
                                            one route dump, a pause of SECONDS, then COUNT
                                            RTM_GETLINK(lo) with ACK: a slow request, then fast ones
    python nlclient.py dumpiov SIZES        one route dump read with recvmsg into iovecs of
                                            these sizes (e.g. 1000,3001,60000): parts straddle them
    python nlclient.py batchdel COUNT       COUNT RTM_DELROUTE(10.99.<i>.0/24) with ACK in one
                                            sendmsg (pipelined), then every reply read
    python nlclient.py raw HEX              send these bytes as they are (hostile input)
    python nlclient.py getlinknoack COUNT   COUNT RTM_GETLINK(lo) requests without ACK
    python nlclient.py capdel               one RTM_DELROUTE(198.51.100.0/24) with ACK on a
                                            socket with NETLINK_CAP_ACK (errors echo the header only)
    python nlclient.py badprefix            one RTM_NEWROUTE(10.9.0.1/24 dev lo) with ACK on a
                                            socket that did not ask for extended acks
    python nlclient.py overrun SECONDS      listen to IPv4 route changes with a tiny receive
                                            buffer, read nothing for SECONDS, then read: ENOBUFS?

Prints one JSON line with what it did, so a test can compare with what nlbpf saw.
"""
import json
import os
import socket
import struct
import sys
import time

NETLINK_ROUTE = 0
SOL_NETLINK, NETLINK_CAP_ACK = 270, 10
RTM_GETLINK, RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 18, 24, 25, 26
RTA_DST, RTA_OIF = 1, 4
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR = 1, 2, 4, 0x300, 0x10
NLMSG_ERROR, NLMSG_DONE = 2, 3


def message(type_, flags, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, 0) + payload


def ifinfomsg(index=0):
    return struct.pack("=BxHiII", 0, 0, index, 0, 0)


def rtmsg(family=socket.AF_INET):
    return struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)


def messages(buf):
    off = 0
    while off + 16 <= len(buf):
        length, type_, flags, seq, pid = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        yield type_, flags, seq, buf[off + 16:off + length]
        off += (length + 3) & ~3


def open_socket():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 0))
    return s


def request(s, msg, seq, iov_sizes=None):
    """Send one request and read until its final reply; returns (parts, intr, errno).
    iov_sizes: read with recvmsg into buffers of these sizes (the kernel fills them
    in order, so messages straddle them), else with recv."""
    s.send(msg)
    parts, intr = 0, 0
    while True:
        if iov_sizes:
            bufs = [bytearray(n) for n in iov_sizes]
            got = s.recvmsg_into(bufs)[0]
            data = b"".join(bufs)[:got]
        else:
            data = s.recv(1 << 16)
        for type_, flags, rseq, payload in messages(data):
            if rseq != seq:
                continue
            if flags & NLM_F_DUMP_INTR:
                intr += 1
            if type_ == NLMSG_ERROR:
                return parts, intr, -struct.unpack_from("=i", payload)[0]
            if type_ == NLMSG_DONE:
                return parts, intr, 0
            parts += 1
            if not flags & NLM_F_MULTI and not struct.unpack_from("=H", msg, 6)[0] & NLM_F_ACK:
                return parts, intr, 0       # a lone reply to a request that asked no ACK


def main(argv):
    what = argv[1]
    out = {"pid": os.getpid(), "what": what}
    if what == "raw":
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        s.bind((0, 0))
        s.send(bytes.fromhex(argv[2]))
        out["sent"] = len(argv[2]) // 2
        print(json.dumps(out), flush=True)
        return 0
    if what == "overrun":
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)     # the kernel's least
        s.bind((0, 0x40))                                        # RTMGRP_IPV4_ROUTE
        print(json.dumps({"pid": os.getpid(), "listening": True}), flush=True)
        time.sleep(float(argv[2]))
        s.setblocking(False)
        enobufs = False
        while True:
            try:
                s.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as e:
                enobufs = enobufs or e.errno == 105
        out.update(enobufs=enobufs)
        print(json.dumps(out), flush=True)
        return 0
    s = open_socket()
    if what == "getlink":
        count = int(argv[2])
        errors = 0
        for seq in range(1, count + 1):
            _, _, err = request(s, message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfomsg(1)), seq)
            errors += bool(err)
        out.update(requests=count, errors=errors)
    elif what == "dumplinks":
        deadline = time.monotonic() + float(argv[2])
        seq = dumps = intr = 0
        while time.monotonic() < deadline:
            seq += 1
            _, i, _ = request(s, message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, ifinfomsg()), seq)
            dumps += 1
            intr += bool(i)
        out.update(dumps=dumps, interrupted_dumps=intr)
    elif what == "dumproutes":
        count = int(argv[2])
        parts = []
        for seq in range(1, count + 1):
            p, _, _ = request(s, message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, rtmsg()), seq)
            parts.append(p)
        out.update(dumps=count, parts=parts)
    elif what == "dumpthengetlink":
        p, _, _ = request(s, message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, rtmsg()), 1)
        time.sleep(float(argv[2]))
        count = int(argv[3])
        for seq in range(2, count + 2):
            request(s, message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfomsg(1)), seq)
        out.update(dumps=1, parts=[p], requests=count + 1)
    elif what == "batchdel":
        count = int(argv[2])
        batch = b"".join(
            message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq,
                    struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 0, 0, 0, 0)
                    + struct.pack("=HH4s", 8, RTA_DST, bytes([10, 99, seq % 256, 0])))
            for seq in range(1, count + 1))
        s.send(batch)
        errnos = {}
        while len(errnos) < count:
            for type_, _, rseq, payload in messages(s.recv(1 << 16)):
                if type_ == NLMSG_ERROR:
                    errnos[rseq] = -struct.unpack_from("=i", payload)[0]
        out.update(requests=count, errors=sum(1 for e in errnos.values() if e))
    elif what == "getlinknoack":
        count = int(argv[2])
        for seq in range(1, count + 1):
            request(s, message(RTM_GETLINK, NLM_F_REQUEST, seq, ifinfomsg(1)), seq)
        out.update(requests=count, errors=0)
    elif what in ("capdel", "badprefix"):
        if what == "capdel":
            s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            msg = message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, 1,
                          struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 0, 0, 0, 0)
                          + struct.pack("=HH4s", 8, RTA_DST, bytes([198, 51, 100, 0])))
        else:
            msg = message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, 1,
                          struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 3, 253, 1, 0)
                          + struct.pack("=HH4s", 8, RTA_DST, bytes([10, 9, 0, 1]))
                          + struct.pack("=HHI", 8, RTA_OIF, 1))
        _, _, err = request(s, msg, 1)
        out.update(requests=1, errno=err, length=len(msg))
    elif what == "dumpiov":
        sizes = [int(n) for n in argv[2].split(",")]
        p, _, _ = request(s, message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, rtmsg()), 1, sizes)
        out.update(dumps=1, parts=[p])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
