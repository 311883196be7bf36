"""What the record-printing commands (trace, errors, slow) share."""
import sys
import time

from ..capture.records import Extack
from ..capture.settings import default_snaplen
from ..correlate import Correlator
from ..model import CallEnd, Message, SyscallError, protocol_name
from ..decode import errno_name
from ..output.jsonline import dumps
from ..places import live_context
from ..output.records import Decoder, clock, wall_ts, where, where_tag
from ..secrets import SECRET_PROTOCOLS, scrub_live, scrub_message
from .live import DRAIN_S, flush_output, run, wall_offset_ns, write_line


def syscall_error_record(err, offset_ns, context):
    rec = {
        "ts": wall_ts(err.ts_ns, offset_ns),
        "pid": err.pid, "tid": err.tid, "comm": err.comm,
        "netns": err.netns, "cgroup": err.cgroup,
        **where(err.netns, err.cgroup, err.pid, context),
        "protocol": protocol_name(err.protocol),
        "direction": "syscall",
        "type": None, "flags": [], "seq": None, "portid": err.portid,
        "syscall": err.syscall,
        "errno": err.errno, "error": errno_name(err.errno), "extack": None,
        "latency_us": None, "request": None,
    }
    why = " (socket receive queue overrun: notifications or replies were lost)" \
        if rec["error"] == "ENOBUFS" else ""
    call = err.syscall
    if err.dropped:
        # the socket layer: seen in the socket's drop counter, not in a failed call
        rec["dropped"] = err.dropped
        call = f"socket port {err.portid} dropped {err.dropped} messages"
    rec["summary"] = (f"{err.comm} {err.pid}{where_tag(rec)} {rec['protocol']} {call} → "
                      f"{rec['error']}{why}")
    return rec


class Printer:
    """Prints records as JSON lines or as text lines with a time prefix. It leaves
    flushing to the source's loop: once per poll live, per tick from a file."""

    def __init__(self, as_json):
        self.as_json = as_json
        self.count = 0

    def __call__(self, rec, detail=(), counted=True):
        """counted=False: a line about records (errors' fold line), not one itself."""
        if self.as_json:
            write_line(dumps(rec), flush=False)
            self.count += 1
            return
        slack = rec.get("start_slack_us")
        if slack:
            # a start known within a window: the time it began by, and ≤ to say so
            write_line(f"≤{clock(rec['ts'] + slack / 1e6)} {rec['summary']}", flush=False)
        else:
            write_line(f"{clock(rec['ts'])} {rec['summary']}", flush=False)
        self.count += counted
        for line in detail:
            write_line(f"    {line}", flush=False)


class Pipeline:
    """kernel -> records -> correlated -> rendered, for one command.

    on_txn(txn) sees each completed (or expired) transaction; on_message(msg,
    txn, completed) sees each message; on_syscall_error(err) each failed call;
    on_flush(now_ns, everything) runs every tick_s seconds and, with
    everything=True, once at the end, for what a command holds back.

    source: where the records come from: LiveSource (the probes; the default) or
    a capture file (commands/read.py's FileSource). It prepares the Pipeline
    (a file's genl families and clock offset), gives the context records are
    described in (netns names, containers), and runs the Pipeline over its records.
    """

    def __init__(self, as_json, on_message=None, on_txn=None, on_syscall_error=None,
                 on_other=None, on_flush=None, keep_replies=False, tick_s=1.0, source=None,
                 show_secrets=False):
        self.printer = Printer(as_json)
        self.show_secrets = show_secrets     # --show-secrets: keys are neither scrubbed nor hidden
        self.decoder = Decoder(show_secrets=show_secrets)
        self.correlator = Correlator(keep_replies=keep_replies)
        self.offset_ns = wall_offset_ns()
        self.on_message = on_message
        self.on_txn = on_txn
        self.on_syscall_error = on_syscall_error
        self.on_other = on_other
        self.on_flush = on_flush
        self.tick_s = tick_s
        self.source = source if source is not None else LiveSource()
        self.context = self.source.context
        self.source.prepare(self)

    def feed(self, rec):
        if isinstance(rec, Message):
            if rec.protocol in SECRET_PROTOCOLS and not self.show_secrets:
                # key material is overwritten before anything sees it (nlbpf/secrets.py)
                if self.source.live:
                    scrub_live(rec, self.decoder.families)
                else:
                    scrub_message(rec, self.decoder.families)
            txn, completed = self.correlator.feed(rec)
            if self.on_message:
                self.on_message(rec, txn, completed)
            if completed and self.on_txn:
                self.on_txn(txn)
        elif isinstance(rec, Extack):
            self.correlator.add_extack(rec)
        elif isinstance(rec, CallEnd):
            txn = self.correlator.end_call(rec)
            if txn is not None and self.on_txn:
                self.on_txn(txn)
        elif isinstance(rec, SyscallError):
            if self.on_syscall_error:
                self.on_syscall_error(rec)
        elif self.on_other:
            self.on_other(rec)

    def tick(self, stats):
        # live: requests expire by the probes' clock (CLOCK_MONOTONIC), which moves on
        # when no message comes; a capture file's clock is its records'
        now = time.monotonic_ns() if self.source.live else None
        self.correlator.expire(now)
        if self.on_flush:
            self.on_flush(now if now is not None else self.correlator.now)

    def finish(self):
        """The input has ended: let go of anything held back."""
        if self.on_flush:
            self.on_flush(None, everything=True)
            flush_output()

    def end(self, outcome):
        """The closing line (live.Outcome), after what the command held back."""
        try:
            self.finish()
        finally:
            print(outcome.closing_line(f"{self.printer.count} records"), file=sys.stderr,
                  flush=True)

    def run(self, capture_args, duration, drain=None, command=None):
        """drain: how long the end may go on showing what was captured (live.run);
        command: trace -- CMD's TracedCommand (live only)."""
        return self.source.run(self, capture_args, duration, drain, command=command)


class LiveSource:
    """The probes, as a Pipeline's source: loaded in this process, or made by
    make_capture(capture_args) (trace --spool: a SpoolCapture over the child's file)."""
    live = True

    def __init__(self, make_capture=None):
        self.make_capture = make_capture
        self.context = live_context()

    def prepare(self, pipe):
        pass

    def run(self, pipe, capture_args, duration, drain=None, command=None):
        capture = self.make_capture(capture_args) if self.make_capture is not None else None
        return run(capture_args, pipe.feed, duration=duration, on_tick=pipe.tick,
                   tick_s=pipe.tick_s, on_end=pipe.end, capture=capture,
                   drain_s=DRAIN_S if drain is None else drain, command=command)


def capture_args(mode, filters, snaplen, capture, **extra):
    """Capture()'s arguments; capture: the CLI's CaptureSettings; snaplen None: the
    mode's default (settings.default_snaplen)."""
    snaplen = default_snaplen(mode) if snaplen is None else snaplen
    return dict(mode=mode, filters=filters, snaplen=snaplen, settings=capture, **extra)
