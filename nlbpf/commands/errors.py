"""nlbpf errors: failed requests, interrupted dumps and overrun sockets.

The kernel hands over only requests whose final reply is an error or whose
dump was interrupted (it holds each request until its reply is known), so the
cost is proportional to failures, not to traffic. And, while dumps run in a
netns, the changes that succeed there: an interrupted dump names those that
may have interrupted it (interrupts.py).
"""
import sys

from ..interrupts import ChangeLog, InterruptHold
from ..output.fold import FOLD_S, RepeatFolder
from ..output.detail import detail_lines
from ..output.records import change_record, interrupted_line, transaction_record, wall_ts
from .common import Pipeline, capture_args, syscall_error_record
from .live import ignored_text

# Often enough that a dump held for the changes that raced it (interrupts.HOLD_NS)
# is not shown much later than that when nothing else comes.
TICK_S = 0.1


def error_details(rec, verbose=False):
    """The indented lines under an error in text mode: the request's header and
    attributes (each on its own line with -v), as trace -v and slow -v show them."""
    lines = []
    if rec.get("extack"):
        lines.append(f'extack: "{rec["extack"]}"')
    req = rec.get("request") or {}
    lines += detail_lines(req, full=verbose)
    if rec.get("truncated"):
        lines.append("request truncated at the snap length")
    return lines


def run_errors(as_json, duration, filters, snaplen, capture, drain=None, source=None,
               show_secrets=False, command=None, fold=FOLD_S, verbose=False):
    pipe = None
    ignored = {}        # --ignore rule -> failures dropped here (a capture file's: live, the kernel)
    folder = RepeatFolder(0 if as_json else fold)

    def show(rec, detail=()):
        shown, due = folder.admit(rec)
        for line in due:
            pipe.printer(line, counted=False)
        if shown:
            pipe.printer(rec, detail=detail)

    def on_flush(now_ns, everything=False):
        release(now_ns, everything)
        if now_ns is None and not everything:
            return
        now_s = wall_ts(now_ns, pipe.offset_ns) if now_ns is not None else None
        for line in folder.due(now_s, everything):
            pipe.printer(line, counted=False)

    def release(now_ns, everything=False):
        for txn in held.due(pipe.correlator.now, now_ns, everything):
            named = [change_record(c, pipe.decoder, pipe.offset_ns)
                     for c in changes.named(txn)]
            rec = transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context,
                                     interrupted_by=named)
            show(rec, [interrupted_line(named)] + error_details(rec, verbose))

    def on_message(msg, txn, completed):
        if msg.direction == "notify":
            changes.add_kernel(msg)         # the kernel layer's: what the kernel changed itself

    def on_txn(txn):
        if not txn.errno and not txn.dump_intr:
            changes.add(txn)
            return
        if txn.dump_intr:
            held.hold(txn.done.ts_ns, txn)
            return
        if filters.ignore:
            req = txn.request
            rule = filters.ignored(req.protocol, req.nl_type, txn.errno)
            if rule is not None:
                ignored[rule.text] = ignored.get(rule.text, 0) + 1
                return
        rec = transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context)
        show(rec, error_details(rec, verbose))
        release(None)

    def on_syscall_error(err):
        # the socket layer's overruns come from an iterator over every socket: the
        # filters the probes apply to calls are applied here
        if err.dropped and not filters.match(err, request_type=filters.type):
            return
        show(syscall_error_record(err, pipe.offset_ns, pipe.context))

    changes = ChangeLog()
    held = InterruptHold()
    pipe = Pipeline(as_json, on_message=on_message, on_txn=on_txn,
                    on_syscall_error=on_syscall_error, source=source, on_flush=on_flush,
                    tick_s=TICK_S, show_secrets=show_secrets)
    closing = pipe.end

    def end(outcome):
        for rule, n in ignored.items():
            outcome.ignored[rule] = outcome.ignored.get(rule, 0) + n
        closing(outcome)

    pipe.end = end
    pipe.run(capture_args("errors", filters, snaplen, capture), duration, drain, command=command)
    if not pipe.source.live and ignored:
        print(f"nlbpf: {ignored_text(ignored)}", file=sys.stderr, flush=True)
