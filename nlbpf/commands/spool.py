"""nlbpf trace --spool: capture in one process, decode in another, a file between.

Live `trace` drains the kernel's buffer and decodes in one Python thread, so a
burst faster than decoding (pyroute2: 40-60 us per distinct message) fills the
buffer and the kernel drops events. With --spool a forked child loads the
probes and only copies what the kernel hands over, as it is, to a spool file:
one write per poll, however many events, so it drains the buffer as fast as
the probes fill it. This process reads the file as it grows and makes records
of it exactly as a live run does (SpoolCapture stands in for Capture). A burst
then makes the output lag, not lose messages; the file holds what waits.

Ctrl-C (or --duration) stops the capture; what is spooled is still shown, for
a few seconds at most (live.DRAIN_S), or until a second Ctrl-C. The closing
line says how much was not shown, from the child's final counters.

The spool is a private, transient format: frames of (kind, length, bytes).
"""
import contextlib
import ctypes
import json
import os
import signal
import struct
import sys
import tempfile
import time

from ..capture.loader import POLL_BATCH, POLL_BYTES, RAW_EVENT, RAW_RING
from ..capture.records import EventReader, records_of
from ..capture.ringbuf import RingBacklog, ring_records
from ..errors import NlbpfError
from .common import LiveSource
from ..capture import environment
from ..capture.loader import Capture
from .trace import run_trace

FRAME = struct.Struct("<II")            # kind, length of what follows
HELLO, STATS, END = 1, 4, 5             # RAW_RING (2) and RAW_EVENT (3) carry events
POLL_S = 0.02           # how often a caught-up reader looks for more
CHILD_STOP_S = 5        # how long a stopped capture child may take to write its last counters
FLUSH_S = 0.1           # how often the capture child flushes the spool and its counters
READ_BYTES = 4 << 20    # read from the spool per poll
LAG_WARN_BYTES = 64 << 20   # spooled and not yet shown: worth telling the user
# What is shown is freed from the file (hole punching), so the spool holds only
# what waits. What waits is bounded: past SPOOL_MAX_BYTES, or half the space its
# filesystem had free at the start, the child drops events (counted, reported)
# until the decoder has caught up to half of that.
SPOOL_MAX_BYTES = 2 << 30
FREE_EVERY_BYTES = 8 << 20
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
# The decoder yields the CPU to the capture child: when both want it (a burst on
# a small machine), output may lag, but the kernel's buffer must not overflow.
DECODE_NICE = 10
PR_SET_PDEATHSIG = 1


# ------------------------------------------------------------- the capture child
def _capture_child(fd, capture_args):
    """Load the probes, spool what they hand over until SIGINT/SIGTERM; exit code."""
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.append(1))
    try:        # if the decoder dies, so does the capture
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    out = os.fdopen(fd, "wb", buffering=1 << 20)
    # the probes leave out the decoder's own netlink (its genl family lookups)
    capture = Capture(**capture_args, self_pid=os.getppid())
    try:
        capture.start()
        layout = capture.reader_layout()
        if layout is None:
            raise NlbpfError("--spool cannot describe this machine's event layout to its "
                             "decoder; run trace without --spool")

        limit = SpoolLimit(fd)

        def frame(kind, data):
            if limit.full and kind in (RAW_RING, RAW_EVENT):
                limit.drop(kind, data)
                return
            out.write(FRAME.pack(kind, len(data)))
            out.write(data)

        def counters():
            limit.check()
            stats = capture.stats()
            stats.update(spool_dropped=limit.dropped, spool_limit=limit.limit)
            frame(STATS, json.dumps(stats).encode())

        frame(HELLO, json.dumps({"layer": capture.layer, "layer_reasons": capture.layer_reasons,
                                 "notes": capture.notes, "layout": layout,
                                 "snaplen": capture.snaplen}).encode())
        out.flush()
        capture.spool_to(frame)
        next_flush = time.monotonic() + FLUSH_S
        while not stop:
            capture.poll(100)
            if time.monotonic() >= next_flush:
                counters()
                out.flush()
                next_flush = time.monotonic() + FLUSH_S
        # the probes stop first: what is in the kernel's buffer then is all there is, and
        # the counters written last are final
        capture.detach()
        for _ in capture.drain():
            pass
        counters()
        frame(END, b"")
        out.flush()
        return 0
    finally:
        capture.close()


class SpoolLimit:
    """The capture child's bound on what waits in the spool: the file's allocated
    blocks, which the decoder frees as it shows them."""

    def __init__(self, fd, most=SPOOL_MAX_BYTES):
        self.fd = fd
        try:
            st = os.fstatvfs(fd)
            most = min(most, st.f_bavail * st.f_frsize // 2)
        except OSError:
            pass
        self.limit = most
        self.full = False
        self.dropped = 0

    def held(self):
        try:
            return os.fstat(self.fd).st_blocks * 512
        except OSError:
            return 0

    def check(self):
        held = self.held()
        if not self.full and held > self.limit:
            self.full = True
        elif self.full and held < self.limit // 2:
            self.full = False

    def drop(self, kind, data):
        self.dropped += sum(1 for _ in ring_records(data)) if kind == RAW_RING else 1


def _child_main(fd, capture_args):
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())       # the decoder owns stdout
        code = _capture_child(fd, capture_args)
    except NlbpfError as e:
        if e.exit_code:
            print(f"nlbpf: {e}", file=sys.stderr, flush=True)
        code = e.exit_code
    except BrokenPipeError:
        code = 0
    except BaseException as e:          # noqa: BLE001 - the child must not unwind into click
        print(f"nlbpf: the capture process failed: {e}", file=sys.stderr, flush=True)
    finally:
        sys.stderr.flush()
    return code


# ------------------------------------------------------------------ the decoder
class SpoolUnavailable(NlbpfError):
    """No spool file can be made (an unwritable TMPDIR)."""


def open_spool(spool_dir=None):
    """A new spool file, already unlinked: (the child's fd, the decoder's file)."""
    try:
        fd, path = tempfile.mkstemp(prefix="nlbpf-spool-", dir=spool_dir)
    except OSError as e:
        where = spool_dir or tempfile.gettempdir()
        raise SpoolUnavailable(f"cannot create the spool file in {where}: {e.strerror} "
                               f"(set TMPDIR to a writable directory)") from None
    try:
        return fd, open(path, "r+b", buffering=0)     # r+: to free what is read
    finally:
        os.unlink(path)         # both ends hold it open: nothing is left behind


class SpoolCapture:
    """Capture's interface over the spool its child writes (live.run drives it)."""

    def __init__(self, capture_args, spool_dir=None, spool=None):
        self.capture_args = capture_args
        self.spool = spool          # open_spool()'s, or made by start()
        self.snaplen = capture_args["snaplen"]      # (the child's HELLO says it again)
        self.spool_dir = spool_dir
        self.layer = None
        self.layer_reasons = []
        self.notes = []             # what the child's layer will not show (announce says it)
        self.finished = False       # the child said END, or is gone: nothing more will come
        self.died = False           # gone without its END
        self.pid = None
        self.status = None
        self.f = None
        self._reader = None
        self._buf = b""
        self._ring = RingBacklog()  # RAW_RING frames' records not yet handed on
        self._stats = {"lost": 0, "emitted": 0, "walk_truncated": 0, "pending_full": 0}
        self._lagging = False

        self._freed = 0             # the spool is freed up to here
        self._dropped = 0           # events the child dropped, as last reported

    # -- the child
    def start(self):
        if self.spool is None:
            self.spool = open_spool(self.spool_dir)
        fd, self.f = self.spool
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            self.f.close()
            os._exit(_child_main(fd, self.capture_args))
        os.close(fd)
        with self._forwarding_signals():
            while self.layer is None:
                exited = self._exited()
                self._fill()
                self._frames(None)
                if self.layer is None and exited:
                    st = self.status        # the child has said why on stderr
                    raise NlbpfError("", exit_code=128 - st if st < 0 else (st or 1))
                if self.layer is None:
                    time.sleep(POLL_S)
        try:
            os.setpriority(os.PRIO_PROCESS, 0,
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + DECODE_NICE))
        except OSError:
            pass
        return self

    def _exited(self):
        if self.status is None and self.pid:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status is not None

    @contextlib.contextmanager
    def _forwarding_signals(self):
        """While the child loads the probes, Ctrl-C, SIGTERM and SIGHUP stop it."""
        old = {sig: signal.signal(sig, lambda *_: self._stop_child())
               for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _stop_child(self):
        if not self._exited():
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    # -- reading
    def _fill(self):
        """Read what the child has written, unless what is read already makes a poll's
        worth of records; bytes read."""
        if self._ring or (len(self._buf) >= READ_BYTES and self._whole_frame()):
            return 0
        data = self.f.read(READ_BYTES)
        if data:
            self._buf = self._buf + data if self._buf else data
            if self.f.tell() - self._freed >= FREE_EVERY_BYTES:
                self._free()
        return len(data or b"")

    def _has_work(self):
        """Read and not yet handled: a poll can go on without waiting for the child."""
        return bool(self._ring) or self._whole_frame()

    def _whole_frame(self):
        if len(self._buf) < FRAME.size:
            return False
        return len(self._buf) >= FRAME.size + FRAME.unpack_from(self._buf, 0)[1]

    def _free(self):
        """Give back the disk (or RAM, on tmpfs) of what has been read."""
        end = self.f.tell() & ~0xFFFF
        if self._freed is None or end <= self._freed:
            return
        if _punch_hole(self.f.fileno(), self._freed, end - self._freed):
            self._freed = end
        else:
            self._freed = None      # this filesystem cannot: the spool keeps all of it

    def _frames(self, out):
        """Handle the whole frames in the buffer, as far as one live poll's worth of
        records (POLL_BATCH of them; of a ring span, POLL_BYTES too: one made into
        records at once was ~400 MB on a dump flood); out gets records (None: the hello
        only). Returns how many frames, or None if not even one was whole."""
        def handle(buf, off, size):
            return records_of(self._reader, buf, off, size, self.snaplen, out)

        made = 0
        if out is not None and self._ring:
            made = self._ring.each(handle, POLL_BATCH, POLL_BYTES)
            if self._ring:
                return None
        buf, pos, n = self._buf, 0, 0
        while pos + FRAME.size <= len(buf) and made < POLL_BATCH:
            kind, length = FRAME.unpack_from(buf, pos)
            end = pos + FRAME.size + length
            if end > len(buf):
                break
            body = buf[pos + FRAME.size:end]
            pos = end
            n += 1
            if kind == HELLO:
                hello = json.loads(body)
                self.layer, self.layer_reasons = hello["layer"], hello["layer_reasons"]
                self.notes = hello.get("notes", [])
                self._reader = EventReader.from_layout(hello["layout"])
                self.snaplen = hello["snaplen"]
                if out is None:
                    break
            elif out is None:
                pos -= FRAME.size + length      # events: not before the hello is handled
                n -= 1
                break
            elif kind == RAW_RING:
                self._ring.append(body)
                made += self._ring.each(handle, POLL_BATCH - made, POLL_BYTES)
                if self._ring:
                    break               # the rest of it next poll, before later frames
            elif kind == RAW_EVENT:
                made += handle(body, 0, len(body)) or 1
            elif kind == STATS:
                self._stats = json.loads(body)
                self._report_dropped()
            elif kind == END:
                self.finished = True
        self._buf = buf[pos:]
        return n or None

    def poll(self, timeout_ms=100):
        out = []
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            got = self._fill()
            self._frames(out)
            if out or self.finished or got or self._has_work():
                break
            if self._exited() and not self._fill() and not self._has_work():
                self.finished = self.died = True    # no END: what it wrote is shown
                print(f"nlbpf: warning: the capture process ended on its own (exit status "
                      f"{self.status}); nothing after that was seen", file=sys.stderr, flush=True)
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        self._check_lag()
        return out

    def detach(self):
        """Stop the capture: the child detaches the probes, spools what their buffer
        still holds, its final counters and its END."""
        self._stop_child()

    def settle(self, abandoned):
        """Wait (CHILD_STOP_S at most, or until abandoned() says a second signal came)
        for the child to have detached its probes and spooled the rest: what is shown
        for --drain seconds then starts from a capture that has ended, not from the
        child's detaching, which takes a second or more."""
        deadline = time.monotonic() + CHILD_STOP_S
        while not self._exited() and time.monotonic() < deadline and not abandoned():
            time.sleep(POLL_S)

    def drain(self):
        """The rest of the spool, up to the child's END (live.run decides how long
        it is shown); None while there is nothing yet, so that it can keep its time."""
        while not self.finished:
            yield from self.poll(100) or [None]

    def final_stats(self):
        """The child's last counters. It writes them once it has stopped, after its last
        events: the rest of the spool is skimmed for them, its events left unread."""
        self._stop_child()
        deadline = time.monotonic() + CHILD_STOP_S
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if not self._exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -signal.SIGKILL
        self._skim()
        return dict(self._stats)

    def _skim(self):
        """Read the counters frames (STATS) from what is left of the spool: what was
        read and not handled, then the file, seeking over the events."""
        left, self._buf = self._buf, b""
        f = self.f
        while True:
            if len(left) < FRAME.size:
                more = f.read(FRAME.size - len(left)) if f is not None else b""
                left += more or b""
                if len(left) < FRAME.size:
                    return
            kind, length = FRAME.unpack_from(left, 0)
            have = left[FRAME.size:FRAME.size + length]
            left = left[FRAME.size + length:]
            if kind == STATS:
                body = have + (f.read(length - len(have)) if len(have) < length else b"")
                if len(body) < length:
                    return
                self._stats = json.loads(body)
            elif len(have) < length:
                if f is None:
                    return
                f.seek(length - len(have), os.SEEK_CUR)

    def _unread(self):
        try:
            return (os.fstat(self.f.fileno()).st_size - self.f.tell() + len(self._buf)
                    + self._ring.left())
        except (OSError, ValueError):
            return 0

    def _report_dropped(self):
        dropped = self._stats.get("spool_dropped", 0)
        if dropped > self._dropped:
            print(f"WARNING: {dropped - self._dropped} events dropped: the spool holds its most "
                  f"({self._stats.get('spool_limit', 0) >> 20} MB) while the output catches up, "
                  f"{dropped} in total (TMPDIR can point at a larger filesystem)",
                  file=sys.stderr, flush=True)
            self._dropped = dropped

    def _check_lag(self):
        """Say once when the output falls far behind the capture, and when it is back."""
        waiting = self._unread()
        if not self._lagging and waiting > LAG_WARN_BYTES:
            self._lagging = True
            gone = self._stats.get("lost", 0) + self._stats.get("spool_dropped", 0)
            print(f"nlbpf: output is behind the traffic: {waiting >> 20} MB of captured "
                  f"events wait in the spool to be shown ("
                  + (f"{gone} events lost so far" if gone else "none lost so far") + ")",
                  file=sys.stderr, flush=True)
        elif self._lagging and waiting < LAG_WARN_BYTES // 8:
            self._lagging = False
            print("nlbpf: output has caught up with the traffic", file=sys.stderr, flush=True)

    # -- what live.run asks besides records
    def stats(self):
        return dict(self._stats)

    def backlog(self):
        return (0, 0)           # the spool's lag is _check_lag's to report

    def close(self):
        if self.pid and not self._exited():
            self._stop_child()
            deadline = time.monotonic() + 30
            while not self._exited() and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if not self._exited():
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.status = -signal.SIGKILL
        if self.f is not None:
            self.f.close()
            self.f = None


_libc = None


def _punch_hole(fd, offset, length):
    """fallocate(PUNCH_HOLE | KEEP_SIZE): free a range of a file; False if unsupported."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0


def run_spooled_trace(as_json, duration, filters, snaplen, capture, asked=True, drain=None,
                      show_secrets=False, command=None, verbose=False, **_):
    """trace's live capture: its records made from the capture child's spool. Unless
    the user asked for the spool (--spool), a spool that cannot be made means decoding
    in this process instead, said in one line."""
    environment.require_root()
    trace_args = dict(as_json=as_json, duration=duration, filters=filters, snaplen=snaplen,
                      capture=capture, drain=drain, show_secrets=show_secrets, command=command,
                      verbose=verbose)
    try:
        opened = open_spool()
    except SpoolUnavailable as e:
        if asked:
            raise
        print(f"nlbpf: {e}; decoding as it captures instead (--no-spool): a burst "
              f"beyond its buffers is dropped, and counted", file=sys.stderr, flush=True)
        run_trace(**trace_args)
        return
    made = []

    def spool_capture(capture_args):
        made.append(SpoolCapture(capture_args, spool=opened))
        return made[-1]

    try:
        run_trace(source=LiveSource(make_capture=spool_capture), **trace_args)
    finally:
        if not made:
            os.close(opened[0])
            opened[1].close()
    if made and made[0].died:
        raise NlbpfError("", exit_code=1)   # its warning has said so
