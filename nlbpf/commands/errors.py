"""nlbpf errors: failed requests, interrupted dumps and overrun sockets.

The kernel hands over only requests whose final reply is an error or whose
dump was interrupted (it holds each request until its reply is known), so the
cost is proportional to failures, not to traffic.
"""
from ..output.records import attrs_text, transaction_record
from .common import Pipeline, capture_args, syscall_error_record


def error_details(rec):
    """The indented lines under an error in text mode."""
    lines = []
    if rec.get("extack"):
        lines.append(f'extack: "{rec["extack"]}"')
    req = rec.get("request") or {}
    fields = req.get("fields") or {}
    if fields:
        lines.append("header: " + " ".join(f"{k}={v}" for k, v in fields.items()))
    attrs = attrs_text(req.get("attrs"))
    if attrs:
        lines.append(f"attrs: {attrs}")
    if req.get("malformed"):
        lines.append(f"malformed: {req['malformed']}")
    if rec.get("truncated"):
        lines.append("request truncated at the snap length")
    return lines


def run_errors(as_json, duration, filters, snaplen, capture, drain=None, source=None,
               show_secrets=False):
    pipe = None

    def on_txn(txn):
        if not txn.errno and not txn.dump_intr:
            return
        rec = transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context)
        pipe.printer(rec, detail=error_details(rec))

    def on_syscall_error(err):
        # the socket layer's overruns come from an iterator over every socket: the
        # filters the probes apply to calls are applied here
        if err.dropped and not filters.match(err, request_type=filters.type):
            return
        pipe.printer(syscall_error_record(err, pipe.offset_ns, pipe.context))

    pipe = Pipeline(as_json, on_txn=on_txn, on_syscall_error=on_syscall_error, source=source,
                    show_secrets=show_secrets)
    pipe.run(capture_args("errors", filters, snaplen, capture), duration, drain)
