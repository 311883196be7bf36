"""Hostile but valid netlink clients: traffic that is easy to miss or to misread.

    python trickster.py forge           process B sends process A an NLMSG_ERROR (ENOENT) with
                                        A's next seq, just before A sends RTM_GETLINK(lo) with
                                        that seq: only the kernel's answer is A's reply
    python trickster.py iovecs N        one sendmsg of N iovecs, a failing RTM_DELROUTE in each
    python trickster.py empties N       one sendmsg: N empty iovecs, then a failing RTM_DELROUTE
    python trickster.py mmsg N          one sendmmsg of N datagrams, a failing RTM_DELROUTE each
    python trickster.py rw              failing RTM_DELROUTEs sent with write(), writev() (cut
                                        mid-message across its two iovecs) and pwritev2();
                                        replies read with read(), readv() and preadv2()
    python trickster.py split           failing RTM_DELROUTEs whose header comes in 16 one-byte
                                        iovecs (then with empty iovecs between them), and one
                                        sent a byte per iovec
    python trickster.py sendfile        a failing RTM_DELROUTE sent with sendfile(2) from a
                                        file: no send syscall carries it

A failing RTM_DELROUTE (a route that is not there: ESRCH) is a request that both
`trace` and `errors` must show. Every reply is read. Prints one JSON line:
{"pid", "requests": [[seq, type], ...], "errors": {seq: errno}, "replies": n, ...}
"""
import ctypes
import errno as E
import json
import os
import socket
import struct
import sys
import tempfile

ROUTE = 0
RTM_GETLINK, RTM_DELROUTE = 18, 25
NLMSG_ERROR, NLMSG_DONE = 2, 3
REQ, ACK = 1, 4
SOL_SOCKET, SO_RCVBUFFORCE = 1, 33
SEQ0 = 7_000_000


def message(type_, flags, seq, payload=b"", pid=0):
    return struct.pack("=IHHII", 16 + len(payload), type_, flags, seq, pid) + payload


def delroute(seq, n):
    """RTM_DELROUTE 198.18.<n>.0/24: never there, so the kernel answers ESRCH."""
    rtm = struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 0, 0, 0, 0)
    dst = struct.pack("=HH", 8, 1) + bytes((198, 18 + (n >> 8) % 2, n & 0xFF, 0))
    return message(RTM_DELROUTE, REQ | ACK, seq, rtm + dst)


def getlink(seq):
    return message(RTM_GETLINK, REQ | ACK, seq, struct.pack("=BxHiII", 0, 0, 1, 0, 0))


def open_socket():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ROUTE)
    try:
        s.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)     # every reply of a batch fits
    except OSError:
        s.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 0))
    return s


def messages(buf):
    off = 0
    while off + 16 <= len(buf):
        length, type_, flags, seq, _ = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        yield type_, flags, seq, buf[off + 16:off + length]
        off += (length + 3) & ~3


class Client:
    def __init__(self):
        self.s = open_socket()
        self.requests, self.errors = [], {}
        self.replies = 0
        self.seq = SEQ0

    def next(self):
        self.seq += 1
        return self.seq

    def delroutes(self, n):
        out = []
        for i in range(n):
            seq = self.next()
            self.requests.append([seq, RTM_DELROUTE])
            out.append(delroute(seq, i))
        return out

    def take(self, buf):
        for type_, _, seq, body in messages(buf):
            self.replies += 1
            if type_ == NLMSG_ERROR:
                err = -struct.unpack_from("=i", body)[0]
                if err:
                    self.errors[str(seq)] = E.errorcode.get(err, str(err))

    def read_acks(self, count, reader=None):
        """Read until count NLMSG_ERRORs have come (reader(): one buffer)."""
        reader = reader or (lambda: self.s.recv(1 << 16))
        want = self.replies + count
        while self.replies < want:
            self.take(reader())

    def result(self, **extra):
        return {"pid": os.getpid(), "portid": self.s.getsockname()[0],
                "requests": self.requests, "errors": self.errors, "replies": self.replies,
                **extra}


def forge():
    """B forges A's reply; A then asks the kernel. A reads with recv(): no msg_name."""
    a = Client()
    seq = a.next()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        b = open_socket()
        echo = getlink(seq)[:16]
        forged = message(NLMSG_ERROR, 0, seq, struct.pack("=i", -E.ENOENT) + echo,
                         pid=a.s.getsockname()[0])
        b.sendto(forged, (a.s.getsockname()[0], 0))
        os.write(ready_w, struct.pack("=II", os.getpid(), b.getsockname()[0]))
        os._exit(0)
    said = os.read(ready_r, 8)
    _, status = os.waitpid(pid, 0)
    if len(said) != 8:
        raise SystemExit(f"the forging process failed (status {status})")
    forger, forger_port = struct.unpack("=II", said)
    a.requests.append([seq, RTM_GETLINK])
    a.s.send(getlink(seq))
    seen = []           # [type, seq, errno of an NLMSG_ERROR], as read
    while not any(t == NLMSG_ERROR and err == 0 for t, _, err in seen):
        for type_, _, rseq, body in messages(a.s.recv(1 << 16)):
            err = -struct.unpack_from("=i", body)[0] if type_ == NLMSG_ERROR else None
            seen.append([type_, rseq, err])
            a.replies += 1
    return a.result(forger=forger, forger_port=forger_port, seq=seq, read=seen)


def iovecs(n):
    c = Client()
    c.s.sendmsg(c.delroutes(n))
    c.read_acks(n)
    return c.result()


def empties(n):
    c = Client()
    c.s.sendmsg([b""] * n + c.delroutes(1))
    c.read_acks(1)
    return c.result()


class mmsghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int), ("_pad", ctypes.c_int), ("msg_len", ctypes.c_uint32)]


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)


def _iovecs(parts):
    bufs = [ctypes.create_string_buffer(p, max(1, len(p))) for p in parts]
    iovs = (iovec * len(parts))(*[iovec(ctypes.cast(b, ctypes.c_void_p), len(p))
                                  for b, p in zip(bufs, parts)])
    return bufs, iovs


def mmsg(n):
    c = Client()
    datagrams = c.delroutes(n)
    bufs, iovs = _iovecs(datagrams)
    msgs = (mmsghdr * n)()
    for i in range(n):
        msgs[i].msg_iov = ctypes.addressof(iovs) + i * ctypes.sizeof(iovec)
        msgs[i].msg_iovlen = 1
    sent = _libc.sendmmsg(c.s.fileno(), msgs, n, 0)
    if sent != n:
        raise OSError(ctypes.get_errno(), f"sendmmsg sent {sent} of {n}")
    c.read_acks(n)
    return c.result()


def rw():
    c = Client()
    fd = c.s.fileno()
    (one,) = c.delroutes(1)
    os.write(fd, one)
    c.read_acks(1, lambda: os.read(fd, 1 << 16))
    (two,) = c.delroutes(1)
    os.writev(fd, [two[:30], two[30:]])
    c.read_acks(1, lambda: _readv(fd, [4096, 61440]))
    (three,) = c.delroutes(1)
    bufs, iovs = _iovecs([three])
    if _libc.pwritev2(fd, iovs, 1, ctypes.c_long(-1), 0) != len(three):
        raise OSError(ctypes.get_errno(), "pwritev2")
    c.read_acks(1, lambda: _preadv2(fd, 1 << 16))
    return c.result()


def _readv(fd, sizes):
    bufs = [bytearray(n) for n in sizes]
    n = os.readv(fd, bufs)
    return b"".join(bufs)[:n]


def _preadv2(fd, size):
    buf = ctypes.create_string_buffer(size)
    iov = iovec(ctypes.cast(buf, ctypes.c_void_p), size)
    n = _libc.preadv2(fd, ctypes.byref(iov), 1, ctypes.c_long(-1), 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "preadv2")
    return buf.raw[:n]


def split():
    c = Client()
    (one,) = c.delroutes(1)
    c.s.sendmsg([one[i:i + 1] for i in range(16)] + [one[16:]])
    c.read_acks(1)
    (two,) = c.delroutes(1)
    parts = []
    for i in range(16):
        parts += [two[i:i + 1], b"", b"", b""]
    c.s.sendmsg(parts + [two[16:]])
    c.read_acks(1)
    (three,) = c.delroutes(1)
    c.s.sendmsg([three[i:i + 1] for i in range(len(three))])
    c.read_acks(1)
    return c.result()


def sendfile():
    c = Client()
    (one,) = c.delroutes(1)
    with tempfile.TemporaryFile() as f:
        f.write(one)
        f.flush()
        if os.sendfile(c.s.fileno(), f.fileno(), 0, len(one)) != len(one):
            raise OSError("sendfile sent part of the request")
    c.read_acks(1)
    return c.result()


def main(argv):
    what = argv[1]
    counted = {"iovecs": iovecs, "empties": empties, "mmsg": mmsg}
    if what in counted:
        result = counted[what](int(argv[2]))
    else:
        result = {"forge": forge, "rw": rw, "split": split, "sendfile": sendfile}[what]()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
