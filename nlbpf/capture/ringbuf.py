"""Read a BPF ring buffer straight from its memory into a bounded backlog.

bcc hands each ring-buffer record to Python through a ctypes callback, and its
consume loop runs until the ring is empty. Under a sustained overload it does
not return: what it converted piles up in memory (1.7 GB after 12 s at 200k
msgs/s), and --duration and Ctrl-C wait for it. This reader copies whatever is
committed out of the ring in one piece per poll, hands the space back at once,
and keeps at most backlog_cap bytes of raw records; the caller takes them in
batches. The kernel lets a reader map the ring (kernel/bpf/ringbuf.c); the
layout is the one libbpf reads:

    offset 0          one page, read-write: consumer_pos (u64)
    offset PAGE       one page, read-only: producer_pos (u64)
    offset 2 * PAGE   the data pages, mapped twice in a row, so a record that
                      wraps around the end is still contiguous

Each record: a u32 length with BUSY (bit 31: reserved, not yet committed) and
DISCARD (bit 30) flags, a u32 page offset, then the sample, padded to 8 bytes.
Records are taken in order; the reader stops at the first BUSY one.

Only on x86-64: there every load is an acquire and every store a release
(TSO), which is what the consumer needs from producer_pos, the length word
and consumer_pos; Python has no barriers to give weaker CPUs. Elsewhere the
loader keeps bcc's callback.
"""
import collections
import ctypes as ct
import mmap
import os
import platform
import select
import struct

BUSY, DISCARD = 1 << 31, 1 << 30
HEADER = 8
U32 = struct.Struct("<I")
# bytes of records kept in user memory, copied out of the ring but not yet
# handed on: what absorbs a burst (`ip -batch` of 20k routes, traced, is ~40 MB)
BACKLOG_CAP = 80 << 20


def supported():
    """Why this reader cannot be used here, or None."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"{platform.machine()}: reading the ring without barriers needs x86-64's ordering"
    return None


class _Mapping:
    """mmap(2) through libc: it gives the address ctypes reads the positions and
    copies records from (Python's mmap gives none for a read-only mapping)."""
    _libc = None

    @classmethod
    def libc(cls):
        if cls._libc is None:
            libc = ct.CDLL(None, use_errno=True)
            libc.mmap.restype = ct.c_void_p
            libc.mmap.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int, ct.c_int, ct.c_int, ct.c_long)
            libc.munmap.restype = ct.c_int
            libc.munmap.argtypes = (ct.c_void_p, ct.c_size_t)
            cls._libc = libc
        return cls._libc

    def __init__(self, fd, length, prot, offset):
        addr = self.libc().mmap(None, length, prot, mmap.MAP_SHARED, fd, offset)
        if addr in (None, ct.c_void_p(-1).value):
            err = ct.get_errno()
            raise OSError(err, f"mmap of the ring buffer: {os.strerror(err)}")
        self.addr, self.length = addr, length

    def close(self):
        if self.addr is not None:
            self.libc().munmap(self.addr, self.length)
            self.addr = None


class RingReader:
    """Consumer of one BPF_MAP_TYPE_RINGBUF map, with a backlog in user memory.

    fill() copies every committed record out of the ring in one piece and hands
    the space back to the kernel at once; each() then hands the records on, in
    order, as (buffer, offset, size). Taking records out is a header read per
    record and one copy, so the ring rarely fills while the caller works on a
    burst; the backlog is bounded (backlog_cap bytes, ~5x the ring's 16 MB by
    default): once it is full, fill() leaves records in the ring, and what the
    probes cannot write then is counted as lost, in the kernel."""

    def __init__(self, cons_addr, prod_addr, data_addr, size, fd=None, mappings=(),
                 backlog_cap=BACKLOG_CAP):
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring size {size} is not a power of 2")
        self.mask = size - 1
        self.data = data_addr
        self.backlog_cap = backlog_cap
        self._spans = RingBacklog()       # copied out of the ring, not yet handed on
        self._cons = ct.c_uint64.from_address(cons_addr)
        self._prod = ct.c_uint64.from_address(prod_addr)
        # the length words, read through one buffer instead of a ctypes object each
        self._view = memoryview((ct.c_ubyte * (2 * size)).from_address(data_addr)).cast("B")
        self._mappings = list(mappings)
        self._epoll = None
        if fd is not None:
            self._epoll = select.epoll()
            self._epoll.register(fd, select.EPOLLIN)

    @classmethod
    def from_map(cls, fd, size, **kw):
        """Map the ring of map fd (size: its max_entries, bytes)."""
        page = mmap.PAGESIZE
        cons = _Mapping(fd, page, mmap.PROT_READ | mmap.PROT_WRITE, 0)
        try:
            prod = _Mapping(fd, page + 2 * size, mmap.PROT_READ, page)
        except OSError:
            cons.close()
            raise
        return cls(cons.addr, prod.addr, prod.addr + page, size, fd=fd, mappings=(cons, prod), **kw)

    def wait(self, timeout_ms):
        """Until the kernel wakes the reader or timeout_ms pass."""
        if self._epoll is not None:
            try:
                self._epoll.poll(timeout_ms / 1000)
            except InterruptedError:
                pass

    def produced(self):
        """Where the probes' writes have reached: fill(upto) stops there."""
        return self._prod.value

    @property
    def backlog(self):
        """Bytes copied out and not yet handed on."""
        return self._spans.bytes

    def fill(self, upto=None):
        """Copy what is committed now (up to position upto, if given) into the backlog,
        as much as fits; bytes taken."""
        room = self.backlog_cap - self.backlog
        if room <= 0:
            return 0
        view, mask, unpack = self._view, self.mask, U32.unpack_from
        start = cons = self._cons.value
        prod = self._prod.value if upto is None else min(self._prod.value, upto)
        # the headers first: a record is whole once its BUSY bit is clear, and only
        # the whole ones before the first busy one are copied (x86 keeps the order
        # of these reads and of the copy's, see the module's doc)
        while cons < prod and cons - start < room:
            hdr = unpack(view, cons & mask)[0]
            if hdr & BUSY:
                break
            cons += ((hdr & ~(BUSY | DISCARD)) + HEADER + 7) & ~7
        taken = cons - start
        if taken:
            # the data pages are mapped twice in a row: a span that wraps is contiguous
            self._spans.append(ct.string_at(self.data + (start & mask), taken))
            self._cons.value = cons         # the space goes back to the probes now
        return taken

    def each(self, handle, limit, max_bytes=None):
        """handle(buf, offset, size) for up to limit records of the backlog (RingBacklog.each)."""
        return self._spans.each(handle, limit, max_bytes)

    def take(self):
        """The whole backlog as raw spans of ring records (8-byte headers included),
        emptied: trace's capture child writes them to its spool as they are."""
        return self._spans.take()

    def close(self):
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._view is not None:
            self._view.release()
            self._view = None
        for m in self._mappings:
            m.close()
        self._mappings = []
        self._spans = RingBacklog()


class RingBacklog:
    """Spans of ring records handed on a batch at a time, resumed where the last batch
    stopped: the ring reader's backlog, and the ring spans trace's spool brings."""

    def __init__(self):
        self._q = collections.deque()   # [bytes, position of the next record]
        self.bytes = 0                  # of the spans not yet wholly handed on

    def __bool__(self):
        return bool(self._q)

    def append(self, span):
        self._q.append([span, 0])
        self.bytes += len(span)

    def each(self, handle, limit, max_bytes=None):
        """handle(buf, offset, size) for the records, until limit of what it made of them
        (it may return how many: a chunk of dump parts makes hundreds; None counts one)
        or max_bytes of them have been handed on, so that one batch stays small; that
        count."""
        q = self._q
        n = taken = 0
        max_bytes = max_bytes or float("inf")
        while q and n < limit and taken < max_bytes:
            chunk = q[0]
            buf, pos = chunk
            end = len(buf)
            for off, size, pos in ring_records(buf, pos):
                n += handle(buf, off, size) or 1
                taken += size
                if n >= limit or taken >= max_bytes:
                    break
            else:
                pos = end
            if pos >= end:
                q.popleft()
                self.bytes -= end
            else:
                chunk[1] = pos
        return n

    def left(self):
        """Bytes not yet handed on (bytes counts a span whole until it is done)."""
        return sum(len(buf) - pos for buf, pos in self._q)

    def take(self):
        """What is not yet handed on, as spans; emptied."""
        spans = [buf[pos:] if pos else buf for buf, pos in self._q]
        self._q.clear()
        self.bytes = 0
        return spans


def ring_records(span, pos=0):
    """(offset, size, next record's position) of each record of a span of ring
    records from pos on (fill()'s copies, take()'s spans), skipping discarded
    ones; a record cut short ends it."""
    unpack = U32.unpack_from
    end = len(span)
    while pos + HEADER <= end:
        hdr = unpack(span, pos)[0]
        length = hdr & ~(BUSY | DISCARD)
        if pos + HEADER + length > end:
            return              # cut short: nothing more here can be trusted
        nxt = pos + ((length + HEADER + 7) & ~7)
        if not hdr & DISCARD:
            yield pos + HEADER, length, nxt
        pos = nxt
