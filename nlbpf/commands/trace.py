"""nlbpf trace: every netlink message, one line each."""
from ..correlate import NotificationHold, classify_orphan, origin
from ..output.detail import detail_lines
from ..output.records import message_record
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
        rec = message_record(msg, txn, completed, pipe.decoder, pipe.offset_ns, pipe.context,
                             origin=who)
        # -v: the message in full under its line (the summary says it was cut)
        detail = (detail_lines(rec["message"], truncated=rec["truncated"], length=msg.length,
                               kept=len(msg.data))
                  if verbose and not as_json else ())
        pipe.printer(rec, detail=detail)

    def on_message(msg, txn, completed):
        if txn is None:
            msg.direction = classify_orphan(msg)
        if msg.direction != "notify" or not hold.hold(msg):
            show(msg, txn, completed)
        if hold.held and msg.direction == "request":
            release(msg.ts_ns)

    def release(now_ns, everything=False):
        for note in hold.release(now_ns, everything):
            show(note, None, False)

    def on_syscall_error(err):
        pipe.printer(syscall_error_record(err, pipe.offset_ns, pipe.context))

    pipe = Pipeline(as_json, on_message=on_message, on_syscall_error=on_syscall_error,
                    on_flush=release, tick_s=TICK_S, source=source, show_secrets=show_secrets)
    hold = NotificationHold(pipe.correlator)
    pipe.run(capture_args("trace", filters, snaplen, capture), duration, drain, command=command)
