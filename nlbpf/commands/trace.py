"""nlbpf trace: every netlink message, one line each."""
from ..correlate import classify_orphan, origin
from ..output.records import message_record
from .common import Pipeline, capture_args, syscall_error_record


def run_trace(as_json, duration, filters, snaplen, buffer):
    pipe = None

    def on_message(msg, txn, completed):
        if txn is None:
            msg.direction = classify_orphan(msg)
        who = origin(pipe.correlator, msg) if msg.direction == "notify" else None
        rec = message_record(msg, txn, completed, pipe.decoder, pipe.offset_ns, origin=who)
        pipe.printer(rec)

    def on_syscall_error(err):
        pipe.printer(syscall_error_record(err, pipe.offset_ns))

    pipe = Pipeline(as_json, on_message=on_message, on_syscall_error=on_syscall_error)
    pipe.run(capture_args("trace", filters, snaplen, buffer), duration)
