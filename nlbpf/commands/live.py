"""The live run loop every capturing command shares.

Start the probes, say so on stderr, poll until --duration, SIGINT, SIGTERM or
SIGHUP, hand each record to the command, and keep the user told about lost
events. At the end, account for every event the kernel handed over: shown, not
shown (and why), lost, not walked; the closing line says so, whatever ended the
run.
"""
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from ..capture.loader import Capture
from ..errors import NlbpfError

TRACING_LINE = "Tracing netlink... Hit Ctrl-C to end."
# Once stopped, the records already captured are still shown, for this long at most
# (a second signal stops at once): a backlog of any size never holds the exit up.
# What is left is counted as not shown.
DRAIN_S = 2.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

class Stopper:
    """SIGINT, SIGTERM and SIGHUP end the run cleanly instead of raising in the middle of
    a poll; a second one stops showing what is left at once."""

    def __init__(self):
        self.signals = 0
        self._old = {}
        self._depth = 0

    @property
    def stop(self):
        return self.signals > 0

    @property
    def abandon(self):
        return self.signals > 1

    def __enter__(self):
        # re-entrant: held from before the probes load until after they are detached,
        # so that a second Ctrl-C or a SIGTERM during clean-up cannot cut it short
        if not self._depth:
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        self._depth += 1
        return self

    def _handle(self, signum, frame):
        self.signals += 1

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
    """Prints a warning on stderr each time the kernel reports new lost events, or
    netlink calls it could not walk."""

    def __init__(self, capture):
        self.capture = capture
        self.reported = {"lost": 0, "walk_truncated": 0, "pending_full": 0, "unseen": 0,
                         "follow_full": 0}
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
            print(f"WARNING: {cut} calls had more messages or iovecs than the probes walk; "
                  f"the rest of them went unseen (not walked)", file=sys.stderr, flush=True)
        unfollowed = stats.get("follow_full", 0) - self.reported["follow_full"]
        if unfollowed > 0:
            print(f"WARNING: {unfollowed} processes the command started were not followed "
                  f"(the follow table was full): their netlink traffic went unseen",
                  file=sys.stderr, flush=True)
        unseen = stats.get("unseen", 0) - self.reported["unseen"]
        if unseen > 0:
            print(f"WARNING: {unseen} netlink sends/receives went by a path this hook layer "
                  f"does not walk (io_uring, sendfile...): their messages went unseen (not "
                  f"walked)", file=sys.stderr, flush=True)
        self.reported.update({k: stats.get(k, 0) for k in self.reported})
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
    for note in getattr(capture, "notes", ()):
        print(f"Note: {note}", file=sys.stderr)
    print(TRACING_LINE, file=sys.stderr, flush=True)


def tune_gc():
    """Fewer, larger young collections. At thousands of records a second the
    default (one every 700 allocations) spends ~10% of trace's CPU re-scanning
    what pending requests and the decode memo keep alive; what is loaded by
    now (pyroute2's tables, bcc, the compiled probes' Python side) lives as
    long as the process, so it leaves the collector's view (gc.freeze)."""
    gc.freeze()
    gc.set_threshold(20000, 10, 10)


@dataclass
class Outcome:
    """What became of the events the kernel had for this run: the closing line's numbers.

    events = shown + not_shown + lost + not_walked, where lost ones never reached the
    buffer (it was full) and not walked ones are netlink calls the probes could not
    walk to the end (each hides at least one message)."""
    emitted: int = 0            # handed over by the kernel
    lost: int = 0               # the kernel had no room for them
    walk_truncated: int = 0     # calls with more messages or iovecs than the probes walk
    unseen: int = 0             # calls by a path the hook layer does not walk
    shown: int = 0              # made into output
    dropped: int = 0            # not shown: the spool was full (trace's capture child)
    why: list = field(default_factory=list)    # why the rest was not shown
    output_gone: bool = False   # the output was closed or cannot be written
    ignored: dict = field(default_factory=dict)     # errors --ignore: rule -> failures dropped

    @classmethod
    def of(cls, stats, shown):
        return cls(emitted=stats.get("emitted", 0), lost=stats.get("lost", 0),
                   walk_truncated=stats.get("walk_truncated", 0),
                   unseen=stats.get("unseen", 0), shown=shown,
                   dropped=stats.get("spool_dropped", 0), ignored=stats.get("ignored_by", {}))

    @property
    def not_shown(self):
        return max(0, self.emitted - self.shown)

    @property
    def not_walked(self):
        return self.walk_truncated + self.unseen

    @property
    def events(self):
        return self.emitted + self.lost + self.not_walked

    def closing_line(self, made, verb="shown"):
        """`nlbpf: 12 records; 13 events from the kernel: 13 shown, 0 not shown, 0 lost,
        0 not walked`, with why after each number that is not 0."""
        why = list(self.why)
        if self.dropped:
            why.insert(0, f"{self.dropped} dropped: the spool was full")
        parts = [f"{self.shown} {verb}",
                 f"{self.not_shown} not {verb}" + (f" ({'; '.join(why)})" if self.not_shown
                                                   and why else "")]
        parts.append(f"{self.lost} lost" + (" (the kernel's buffer was full)" if self.lost
                                            else ""))
        walked = []
        if self.walk_truncated:
            walked.append(f"{self.walk_truncated} calls with more messages or iovecs than the "
                          f"probes walk")
        if self.unseen:
            walked.append(f"{self.unseen} calls by a path this hook layer does not walk")
        parts.append(f"{self.not_walked} not walked" + (f" ({'; '.join(walked)})" if walked
                                                        else ""))
        line = f"nlbpf: {made}; {self.events} events from the kernel: " + ", ".join(parts)
        if self.ignored:
            # dropped in the kernel as asked: not events, but not unaccounted for either
            line += f"; {ignored_text(self.ignored)}"
        return line


def ignored_text(ignored):
    """errors --ignore's count: `5 failures ignored (RTM_NEWLINK:ENODEV 5)`."""
    return (f"{sum(ignored.values())} failures ignored ("
            + ", ".join(f"{rule} {n}" for rule, n in ignored.items()) + ")")


def run(capture_args, on_record, duration=None, on_tick=None, tick_s=1.0, on_end=None,
        capture=None, drain_s=DRAIN_S, command=None):
    """Run a capture until done; returns its Outcome.

    capture_args: kwargs for Capture. on_record(rec) gets every record.
    on_tick(stats) runs every tick_s seconds (top's refresh; expiry of old requests).
    on_end(outcome) runs once at the end, whatever ended the run (the closing line).
    capture: something with Capture's interface to use instead (trace's spool reader);
    its `finished` turning true ends the run as Ctrl-C would.
    command: trace -- CMD's TracedCommand: released once the probes are attached; its
    exit ends the run as Ctrl-C would.

    The end: the probes are detached (their counters are then final), and what they
    had handed over is still shown for drain_s at most, or until a second signal; the
    rest is counted as not shown. A closed stdout (`| head`) ends at once, counted the
    same way; stdout that cannot be written (a full disk) too, then raises its error.
    """
    capture = capture if capture is not None else Capture(**capture_args)
    stopper = Stopper().__enter__()
    shown = 0
    why = []
    failure = None
    try:
        capture.start()
        announce(capture)
        if command is not None:
            command.release()
        tune_gc()
        lost = LostReporter(capture)
        deadline = time.monotonic() + duration if duration else None
        next_tick = time.monotonic() + tick_s
        with stopper:
            try:
                while not stopper.stop:
                    for rec in capture.poll(100):
                        on_record(rec)
                        shown += 1
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
                    if command is not None and command.exited():
                        break
                capture.detach()
                settle = getattr(capture, "settle", None)     # trace's spool child
                if settle is not None:
                    settle(lambda: stopper.abandon)
                until = time.monotonic() + drain_s
                for rec in capture.drain():
                    if stopper.abandon:
                        why.append("stopped by a second signal")
                        break
                    if time.monotonic() >= until:
                        why.append(f"stopping shows what was captured for {drain_s:g} s at "
                                   f"most, as --drain says; `nlbpf record -w FILE` keeps every "
                                   f"event")
                        break
                    if rec is None:
                        continue        # nothing yet: drain() says so, so time is kept
                    on_record(rec)
                    shown += 1
                flush_output()
            except OutputClosed:
                # `nlbpf trace | head`: still say what was seen and lost
                why.append("the output was closed")
                failure = OutputClosed()
            except OutputError as e:
                why.append("the output cannot be written")
                failure = e
        outcome = Outcome.of(capture.final_stats(), shown)
        outcome.why = why
        outcome.output_gone = failure is not None
        lost.check()
        if on_end:
            try:
                on_end(outcome)
            except (OutputClosed, OutputError) as e:
                failure = failure or e
        if failure:
            raise failure
        return outcome
    finally:
        if command is not None:
            command.abandon()       # held still if the probes never attached
        capture.close()
        stopper.__exit__()


def write_line(text, flush=True):
    """print() that turns a closed pipe (`nlbpf trace | head`) into a clean exit, and a
    stdout that cannot be written (a full disk) into one line and a failure. flush=False:
    the caller flushes (flush_output) once per batch, not a write(2) per line."""
    try:
        sys.stdout.write(text + "\n")
        if flush:
            sys.stdout.flush()
    except BrokenPipeError:
        output_closed()
    except OSError as e:
        output_failed(e)


def flush_output():
    """Flush what write_line(flush=False) left buffered."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        output_closed()
    except OSError as e:
        output_failed(e)


def _stdout_to_devnull():
    # the interpreter's final flush must not raise again
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def output_closed():
    # stdout is gone: point it at /dev/null, and stop the run.
    _stdout_to_devnull()
    raise OutputClosed() from None


def output_failed(e):
    """stdout cannot take more (ENOSPC, EIO...): what was buffered is dropped, the run
    stops and the command fails with one line."""
    _stdout_to_devnull()
    raise OutputError(f"cannot write the output: {os.strerror(e.errno) if e.errno else e}"
                      ) from None


class OutputClosed(NlbpfError):
    """stdout's reader went away: a clean stop, exit status 0."""

    def __init__(self):
        super().__init__("output closed", exit_code=0)


class OutputError(NlbpfError):
    """stdout cannot be written (a full disk): exit status 1."""
