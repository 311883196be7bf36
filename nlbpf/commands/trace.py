"""nlbpf trace: every netlink message, one line each."""
from ..correlate import NotificationHold, classify_orphan, origin
from ..interrupts import ChangeLog, InterruptHold
from ..output.detail import detail_lines
from ..output.records import change_record, interrupted_line, message_record
from .common import Pipeline, capture_args, syscall_error_record

# Ticks often enough that a notification held for its request (at most
# HOLD_NS) is not shown much later than that when nothing else comes.
TICK_S = 0.1


def run_trace(as_json, duration, filters, snaplen, capture, drain=None, source=None,
              show_secrets=False, command=None, verbose=False):
    pipe = None
    hold = None

    def show(msg, txn, completed):
        who = origin(pipe.correlator, msg) if msg.direction == "notify" else None
        named = None
        if completed and txn.dump_intr:
            named = [change_record(c, pipe.decoder, pipe.offset_ns) for c in changes.named(txn)]
        rec = message_record(msg, txn, completed, pipe.decoder, pipe.offset_ns, pipe.context,
                             origin=who, interrupted_by=named)
        detail = [] if named is None or as_json else [interrupted_line(named)]
        # -v: the message in full under its line (the summary says it was cut)
        if verbose and not as_json:
            detail += detail_lines(rec["message"], truncated=rec["truncated"],
                                   length=msg.length, kept=len(msg.data))
        pipe.printer(rec, detail=detail)

    def on_message(msg, txn, completed):
        if txn is None:
            msg.direction = classify_orphan(msg)
        if msg.direction == "request" and txn is not None:
            changes.add(txn)
        elif msg.direction == "notify":
            changes.add_kernel(msg)
        if completed and txn.dump_intr:
            # shown once the changes that raced its last part are in too
            interrupted.hold(msg.ts_ns, (msg, txn))
        elif msg.direction != "notify" or not hold.hold(msg):
            show(msg, txn, completed)
        if hold.held and msg.direction == "request":
            release(msg.ts_ns)
        elif interrupted.held:
            show_interrupted()

    def show_interrupted(wall_ns=None, everything=False):
        for final, done in interrupted.due(pipe.correlator.now, wall_ns, everything):
            show(final, done, True)

    def release(now_ns, everything=False):
        for note in hold.release(now_ns, everything):
            show(note, None, False)
        show_interrupted(now_ns, everything)

    def on_syscall_error(err):
        pipe.printer(syscall_error_record(err, pipe.offset_ns, pipe.context))

    pipe = Pipeline(as_json, on_message=on_message, on_syscall_error=on_syscall_error,
                    on_flush=release, tick_s=TICK_S, source=source, show_secrets=show_secrets)
    hold = NotificationHold(pipe.correlator)
    changes = ChangeLog()
    interrupted = InterruptHold()
    pipe.run(capture_args("trace", filters, snaplen, capture), duration, drain, command=command)
