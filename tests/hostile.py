"""A hostile netlink process: garbage of every kind, interleaved with valid requests.

    python hostile.py [ROUNDS] [SEED]
    python hostile.py flood COUNT       COUNT RTM_GETLINK(lo)+ACK back to back, every
                                        message sent and received counted exactly

Each round sends, on NETLINK_ROUTE, NETLINK_GENERIC, NETLINK_XFRM,
NETLINK_SOCK_DIAG and NETLINK_USERSOCK sockets, through sendto, sendmsg with
several iovecs and sendmmsg:

  valid requests (seq 100000 + n, all with NLM_F_ACK): RTM_GETLINK lo, a route
  delete that fails with ESRCH, a generic netlink family lookup, an xfrm SA
  lookup (ESRCH), a sock_diag dump of netlink sockets; one of them split across
  two iovecs mid-message, one sent in the same buffer just before garbage;

  garbage (seq 900000 + n): nlmsg_len 0, shorter than the header, longer than
  the buffer, a buffer shorter than a header, an attribute whose length
  overruns the message, an attribute of length 0 and 2, 200 levels of nested
  attributes, a chain of zero-length nests, unknown message types and
  generic netlink families, random bytes behind a valid header, random bytes
  alone, and anything at all on NETLINK_USERSOCK (no kernel handler: the
  send fails).

Replies are read after every send (non-blocking). Prints one JSON line:
{"pid", "valid": [[proto, seq, type], ...], "garbage": [[kind, proto, seq], ...],
 "answered": [seq, ...] (valid requests whose final reply was read),
 "errors": {seq: errno}, "sends": n, "send_errors": {ERRNO: n}}
"""
import ctypes
import errno as E
import json
import os
import random
import socket
import struct
import sys

ROUTE, USERSOCK, SOCK_DIAG, XFRM, GENERIC = 0, 2, 4, 6, 16
REQ, ACK, DUMP = 1, 4, 0x300
VALID0, GARBAGE0 = 100000, 900000


def hdr(length, type_, flags, seq):
    return struct.pack("=IHHII", length, type_, flags, seq, 0)


def msg(type_, flags, seq, payload=b""):
    return hdr(16 + len(payload), type_, flags, seq) + payload


def nla(t, payload):
    raw = struct.pack("=HH", 4 + len(payload), t) + payload
    return raw + bytes((4 - len(raw) % 4) % 4)


def ifinfomsg(index=0):
    return struct.pack("=BxHiII", 0, 0, index, 0, 0)


def rtmsg(dst_len=0):
    return struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, 254, 0, 0, 0, 0)


class mmsghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int), ("_pad", ctypes.c_int),     # struct msghdr: 56 bytes
                ("msg_len", ctypes.c_uint32)]


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)


def sendmmsg(sock, datagrams):
    """One sendmmsg(2) call, one datagram per buffer. Returns how many were sent."""
    n = len(datagrams)
    bufs = [ctypes.create_string_buffer(d, len(d)) for d in datagrams]
    iovs = (iovec * n)(*[iovec(ctypes.cast(b, ctypes.c_void_p), len(d))
                         for b, d in zip(bufs, datagrams)])
    msgs = (mmsghdr * n)()
    for i in range(n):
        msgs[i].msg_iov = ctypes.addressof(iovs) + i * ctypes.sizeof(iovec)
        msgs[i].msg_iovlen = 1
    ret = _libc.sendmmsg(sock.fileno(), msgs, n, 0)
    if ret < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return ret


class Hostile:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.socks = {}
        for proto in (ROUTE, GENERIC, XFRM, SOCK_DIAG, USERSOCK):
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, 0))
            s.setblocking(False)
            self.socks[proto] = s
        self.valid, self.garbage = [], []
        self.answered, self.errors = set(), {}
        self.nvalid = self.ngarbage = self.sends = 0
        self.send_errors = {}

    # ------------------------------------------------------------ numbering
    def vseq(self, proto, type_):
        self.nvalid += 1
        seq = VALID0 + self.nvalid
        self.valid.append([proto, seq, type_])
        return seq

    def gseq(self, kind, proto):
        self.ngarbage += 1
        seq = GARBAGE0 + self.ngarbage
        self.garbage.append([kind, proto, seq])
        return seq

    # ------------------------------------------------------------ sending
    def drain(self):
        for s in self.socks.values():
            while True:
                try:
                    data = s.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                off = 0
                while off + 16 <= len(data):
                    ln, t, fl, seq, _ = struct.unpack_from("=IHHII", data, off)
                    if ln < 16:
                        break
                    if VALID0 < seq < GARBAGE0 and (t in (2, 3) or not fl & 2):
                        self.answered.add(seq)
                        if t == 2:
                            err = -struct.unpack_from("=i", data, off + 16)[0]
                            if err:
                                self.errors[seq] = err
                    off += (ln + 3) & ~3

    def send(self, proto, how, parts):
        """parts: list of byte strings (iovecs for sendmsg, datagrams for sendmmsg)."""
        s = self.socks[proto]
        self.sends += 1
        try:
            if how == "sendto":
                s.sendto(b"".join(parts), (0, 0))
            elif how == "sendmsg":
                s.sendmsg(parts, [], 0, (0, 0))
            else:
                sendmmsg(s, parts)
        except OSError as e:
            # the kernel may refuse garbage in the send itself (ECONNREFUSED where no
            # handler listens, ENODATA, EINVAL...); a valid request that fails here
            # goes unanswered, which the caller sees
            self.send_errors[E.errorcode.get(e.errno, str(e.errno))] = \
                self.send_errors.get(E.errorcode.get(e.errno, str(e.errno)), 0) + 1
        self.drain()

    # ------------------------------------------------------------ valid requests
    def getlink(self):
        return msg(18, REQ | ACK, self.vseq(ROUTE, 18), ifinfomsg(1))

    def delroute(self):
        return msg(25, REQ | ACK, self.vseq(ROUTE, 25), rtmsg(32) + nla(1, bytes((192, 0, 2, 77))))

    def getfamily(self):
        return msg(16, REQ | ACK, self.vseq(GENERIC, 16),
                   bytes((3, 1, 0, 0)) + nla(2, b"nlctrl\0"))

    def getsa(self):
        sa_id = bytes(16) + struct.pack(">I", 0x4242) + struct.pack("=HBx", 2, 50)
        return msg(0x12, REQ | ACK, self.vseq(XFRM, 0x12), sa_id)

    def diag(self):
        # struct netlink_diag_req: family AF_NETLINK, protocol, pad, ino, show, cookie
        req = struct.pack("=BBHIIII", 16, 255, 0, 0, 0, 0, 0)
        return msg(20, REQ | DUMP | ACK, self.vseq(SOCK_DIAG, 20), req)

    # ------------------------------------------------------------ garbage
    def garbage_messages(self, proto):
        """(kind, bytes) of every garbage kind for this protocol."""
        r = self.rng
        out = []

        def g(kind):
            return self.gseq(kind, proto)
        out.append(("len0", hdr(0, 18, REQ | ACK, g("len0")) + bytes(8)))
        out.append(("len_lt_header", hdr(8, 18, REQ | ACK, g("len_lt_header")) + bytes(8)))
        out.append(("len_gt_buffer", hdr(4096, 18, REQ | ACK, g("len_gt_buffer")) + bytes(24)))
        out.append(("short_buffer", hdr(16, 18, REQ, g("short_buffer"))[:11]))
        body = ifinfomsg() if proto == ROUTE else bytes((3, 1, 0, 0))
        t = 16 if proto == ROUTE else (0x10 if proto == GENERIC else 0x10)
        out.append(("attr_overrun", msg(t, REQ | ACK, g("attr_overrun"),
                                        body + struct.pack("=HH", 200, 3) + bytes(8))))
        out.append(("attr_len0", msg(t, REQ | ACK, g("attr_len0"),
                                     body + struct.pack("=HH", 0, 3) + bytes(12))))
        out.append(("attr_len2", msg(t, REQ | ACK, g("attr_len2"),
                                     body + struct.pack("=HH", 2, 3) + bytes(12))))
        deep = b""
        for _ in range(200):            # 800 bytes: within the default snap length
            deep = struct.pack("=HH", 4 + len(deep), 0x8000 | 18) + deep
            if len(deep) > 60000:
                break
        out.append(("deep_nesting", msg(t, REQ | ACK, g("deep_nesting"), body + deep)))
        zero_nests = struct.pack("=HH", 4, 0x8000 | 18) * 64
        out.append(("zero_nests", msg(t, REQ | ACK, g("zero_nests"), body + zero_nests)))
        out.append(("unknown_type", msg(0x7777, REQ | ACK, g("unknown_type"), bytes(20))))
        if proto == GENERIC:
            out.append(("unknown_family", msg(0xFFF0, REQ | ACK, g("unknown_family"),
                                              bytes((1, 1, 0, 0)) + nla(1, bytes(8)))))
        out.append(("random_payload", msg(t, REQ | ACK, g("random_payload"),
                                          r.randbytes(r.randrange(1, 400)))))
        out.append(("random_bytes", struct.pack("=I", r.randrange(16, 600)) +
                    struct.pack("=HHI", r.randrange(0, 65536), r.randrange(0, 65536),
                                g("random_bytes")) + r.randbytes(r.randrange(0, 300))))
        return out

    # ------------------------------------------------------------ a round
    def round(self):
        valid = [(ROUTE, self.getlink), (ROUTE, self.delroute), (GENERIC, self.getfamily),
                 (XFRM, self.getsa), (SOCK_DIAG, self.diag)]
        hows = ["sendto", "sendmsg", "sendmmsg"]
        for proto in (ROUTE, GENERIC, XFRM):
            for i, (kind, bad) in enumerate(self.garbage_messages(proto)):
                how = hows[i % 3]
                vproto, make = valid[(i + proto) % len(valid)]
                good = make()
                if how == "sendmmsg" and vproto == proto:
                    # valid, garbage, valid: three datagrams in one call
                    self.send(proto, how, [good, bad, make()])
                elif how == "sendmsg" and vproto == proto and kind != "short_buffer":
                    # a valid request and the garbage behind it in one buffer, 3 iovecs
                    cut = len(bad) // 2
                    self.send(proto, how, [good, bad[:cut], bad[cut:]])
                else:
                    self.send(vproto, "sendto", [good])
                    self.send(proto, how, [bad])
        # a valid request split across two iovecs, mid-header and mid-payload
        for make, proto in ((self.getlink, ROUTE), (self.getfamily, GENERIC)):
            good = make()
            self.send(proto, "sendmsg", [good[:10], good[10:22], good[22:]])
        # anything at all where no kernel handler listens
        self.send(USERSOCK, "sendto", [self.rng.randbytes(40)])
        self.send(USERSOCK, "sendmsg", [msg(0x10, REQ | ACK, self.gseq("usersock", USERSOCK))])
        # random buffers, alone
        for _ in range(10):
            n = self.rng.randrange(0, 200)
            buf = bytearray(self.rng.randbytes(n))
            if n >= 12:
                struct.pack_into("=I", buf, 8, self.gseq("random_buffer", ROUTE))
            self.send(ROUTE, "sendto", [bytes(buf)])


def flood(count):
    """Requests as fast as the kernel answers them; counts messages both ways."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((0, 0))
    sent = received = 0
    for seq in range(1, count + 1):
        s.send(msg(18, REQ | ACK, seq, ifinfomsg(1)))
        sent += 1
        done = False
        while not done:
            data = s.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                ln, t, fl, rseq, _ = struct.unpack_from("=IHHII", data, off)
                if ln < 16:
                    break
                received += 1
                done |= rseq == seq and t == 2
                off += (ln + 3) & ~3
    return {"pid": os.getpid(), "sent": sent, "received": received}


def main(argv):
    if len(argv) > 1 and argv[1] == "flood":
        print(json.dumps(flood(int(argv[2]))), flush=True)
        return 0
    rounds = int(argv[1]) if len(argv) > 1 else 3
    seed = int(argv[2]) if len(argv) > 2 else 1
    h = Hostile(seed)
    for _ in range(rounds):
        h.round()
    h.drain()
    print(json.dumps({"pid": os.getpid(), "valid": h.valid, "garbage": h.garbage,
                      "answered": sorted(h.answered), "errors": h.errors, "sends": h.sends,
                      "send_errors": h.send_errors}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
