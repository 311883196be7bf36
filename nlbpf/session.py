"""The live run loop every capturing command shares.

Start the probes, say so on stderr, poll until --duration, SIGINT or SIGTERM,
hand each record to the command, and keep the user told about lost events.
"""
import gc
import os
import signal
import sys
import time

from .capture.loader import Capture
from .errors import NlbpfError

TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."

# True while run() polls: write_line leaves flushing to it, once per batch of
# records instead of a write(2) per line.
_batching = False


class Stopper:
    """SIGINT/SIGTERM end the run cleanly instead of raising in the middle of a poll."""

    def __init__(self):
        self.stop = False
        self._old = {}
        self._depth = 0

    def __enter__(self):
        # re-entrant: held from before the probes load until after they are detached,
        # so that a second Ctrl-C or a SIGTERM during clean-up cannot cut it short
        if not self._depth:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        self._depth += 1
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth:
            return
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def wall_offset_ns():
    """Add to CLOCK_MONOTONIC (the probes' clock) to get wall-clock ns."""
    return time.time_ns() - time.monotonic_ns()


class LostReporter:
    """Prints a warning on stderr each time the kernel reports new lost events."""

    def __init__(self, capture):
        self.capture = capture
        self.reported = {"lost": 0, "walk_truncated": 0, "pending_full": 0}
        self.behind = False        # said that the reader's backlog is over half full

    def check_backlog(self):
        """Say so once when records wait in the reader's backlog (ringbuf.py) faster
        than they are handled: output lags the traffic, and loss comes next."""
        waiting, cap = self.capture.backlog()
        if cap and not self.behind and waiting > cap // 2:
            self.behind = True
            print(f"WARNING: falling behind the traffic: {waiting >> 20} MB of events wait to be "
                  f"handled (at {cap >> 20} MB the kernel starts losing them)",
                  file=sys.stderr, flush=True)
        elif self.behind and waiting < cap // 10:
            self.behind = False

    def check(self):
        stats = self.capture.stats()
        lost = stats["lost"] - self.reported["lost"]
        if lost > 0:
            print(f"WARNING: {lost} events lost (buffer full), {stats['lost']} in total",
                  file=sys.stderr, flush=True)
        cut = stats["walk_truncated"] - self.reported["walk_truncated"]
        if cut > 0:
            print(f"WARNING: {cut} calls had more messages than the probe walks; "
                  f"the rest of them went unseen", file=sys.stderr, flush=True)
        self.reported.update({k: stats[k] for k in self.reported})
        self.check_backlog()
        return stats


# what the socket-tracepoint layer cannot show, per command (it sees no request's start)
SOCK_LIMITS = {
    "errors": "no latency on this layer",
    "top": "no latency columns on this layer",
    "slow": "a call's start is known within {period} (threads looked at every {period})",
}


def announce(capture):
    """Say which hook layer is live (and why a better one is not), then the Tracing line."""
    why = f" ({'; '.join(capture.layer_reasons)})" if capture.layer_reasons else ""
    print(f"Hooks: {capture.layer}{why}", file=sys.stderr)
    limit = SOCK_LIMITS.get(getattr(capture, "mode", None)) if capture.layer == "sock" else None
    if limit:
        period = f"{getattr(capture, 'poll_period_ms', 0)} ms"
        print(f"Note: {limit.format(period=period)}; --hooks syscall measures it at a higher "
              f"cost to every process", file=sys.stderr)
    print(TRACING_LINE, file=sys.stderr, flush=True)


def tune_gc():
    """Fewer, larger young collections. At thousands of records a second the
    default (one every 700 allocations) spends ~10% of trace's CPU re-scanning
    what pending requests and the decode memo keep alive; what is loaded by
    now (pyroute2's tables, bcc, the compiled probes' Python side) lives as
    long as the process, so it leaves the collector's view (gc.freeze)."""
    gc.freeze()
    gc.set_threshold(20000, 10, 10)


def run(capture_args, on_record, duration=None, on_tick=None, tick_s=1.0, on_end=None,
        capture=None):
    """Run a capture until done; returns the kernel's final stats.

    capture_args: kwargs for Capture. on_record(rec) gets every record.
    on_tick(stats) runs every tick_s seconds (top's refresh; expiry of old requests).
    capture: something with Capture's interface to use instead (trace --spool's
    reader); its `finished` turning true ends the run as Ctrl-C would.
    """
    global _batching
    capture = capture if capture is not None else Capture(**capture_args)
    stopper = Stopper().__enter__()
    try:
        capture.start()
        announce(capture)
        tune_gc()
        lost = LostReporter(capture)
        deadline = time.monotonic() + duration if duration else None
        next_tick = time.monotonic() + tick_s
        closed = None
        with stopper:
            _batching = True
            try:
                while not stopper.stop:
                    for rec in capture.poll(100):
                        on_record(rec)
                    flush_output()
                    now = time.monotonic()
                    if now >= next_tick:
                        stats = lost.check()
                        if on_tick:
                            on_tick(stats)
                        next_tick = now + tick_s
                    if deadline and now >= deadline:
                        break
                    if getattr(capture, "finished", False):
                        break
                for rec in capture.drain():
                    on_record(rec)
                flush_output()
            except OutputClosed as e:
                closed = e      # `nlbpf trace | head`: still say what was seen and lost
        stats = lost.check()
        if on_end:
            on_end(stats)
        if closed:
            raise closed
        return stats
    finally:
        _batching = False
        capture.close()
        stopper.__exit__()


def write_line(text):
    """print() that turns a closed pipe (`nlbpf trace | head`) into a clean exit."""
    try:
        sys.stdout.write(text + "\n")
        if not _batching:
            sys.stdout.flush()
    except BrokenPipeError:
        output_closed()


def flush_output():
    """Flush what write_line left buffered while run() batches."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        output_closed()


def output_closed():
    # stdout is gone: point it at /dev/null so the interpreter's final
    # flush does not raise again, and stop the run.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise OutputClosed() from None


class OutputClosed(NlbpfError):
    """stdout's reader went away: a clean stop, exit status 0."""

    def __init__(self):
        super().__init__("output closed", exit_code=0)
