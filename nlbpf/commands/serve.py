"""nlbpf serve: this node's netlink health as Prometheus metrics, for a fleet.

Three captures, each on the cheapest layer the kernel offers:
  counters  top's probes, with failed requests per errno and (where the layer sees
            a request's start) latency and lock-wait histograms per request type:
            counted in the kernel, read every --interval (output/metrics.py)
  errors    errors' probes: socket overruns (ENOBUFS) and other failed calls; with
            --events, each failed request as a JSON line on stdout
  slow      slow's probes, when --slow is on: requests over the threshold; with
            --events, each as a JSON line
The errors and slow probes hand over only what failed or was slow, so their cost
follows failures, not traffic. prometheus_client serves /metrics (Prometheus text
or OpenMetrics, as the scraper asks).
"""
import re
import sys
import time

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from ..capture.loader import (Capture, forget_pids, gone_pids, read_top, read_top_errs,
                              read_type_hists)
from ..decode import decode
from ..errors import NlbpfError
from ..output.metrics import Metrics, who_of
from ..output.records import transaction_record
from .common import LiveSource, Pipeline, syscall_error_record
from .live import (OutputClosed, OutputError, Stopper, TRACING_LINE, flush_output,
                   tune_gc)
from .slow import BusyCalls, slow_record
from .top import forget_where, not_walked, read_where

DEFAULT_PORT = 9434
POLL_MS = 50            # each event capture's poll: the loop turns ~10 times a second


def parse_listen(text):
    """':9434', '127.0.0.1:9434', '[::1]:9434' or '9434' -> (address, port)."""
    m = re.fullmatch(r"\s*(?:(\[[0-9a-fA-F:.]*\]|[^:\[\]]*):)?(\d{1,5})\s*", text or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise NlbpfError(f"bad --listen {text!r}: use [ADDRESS]:PORT, e.g. :{DEFAULT_PORT} or "
                         f"127.0.0.1:{DEFAULT_PORT}", exit_code=2)
    addr = (m.group(1) or "").strip("[]") or "0.0.0.0"
    return addr, int(m.group(2))


def type_name(proto, type_):
    header = (16).to_bytes(4, "little") + type_.to_bytes(2, "little") + bytes(10)
    return decode(proto, header).type_name


class Counters:
    """The counters capture, read into Metrics every interval."""

    def __init__(self, capture, metrics, context):
        self.capture = capture
        self.metrics = metrics
        self.context = context

    def refresh(self):
        c = self.capture
        # processes already gone before this read have their final counts in it and
        # are forgotten once it is taken in (as top does)
        gone = gone_pids(c)
        rows, types = read_top(c)
        errs = read_top_errs(c)
        where = read_where(c)
        pids = set(rows) | {k[0] for k in types} | {k[0] for k in errs}
        whos = {}
        for pid in pids:
            cgroup, netns = where.get(pid, (0, 0))
            comm = rows[pid]["comm"] if pid in rows else ""
            whos[pid] = who_of(comm, {**self.context.describe(netns, cgroup, pid),
                                      "netns": netns})
        # the socket layer sees no request's start: no histograms
        hists = read_type_hists(c) if c.layer != "sock" else None
        self.metrics.add_counters(rows, types, errs, whos, hists)
        forget_pids(c, gone)
        forget_where(c, gone)
        self.metrics.forget(gone)
        self.metrics.expire()


def who_of_record(rec, context):
    """The who labels of a record's process (a Message or a SyscallError)."""
    return who_of(rec.comm, {**context.describe(rec.netns, rec.cgroup, rec.pid),
                             "netns": rec.netns})


def event_pipelines(metrics, source, events, filters, show_secrets):
    """The Pipelines of the errors and slow captures: count what they see, and print
    it as JSON lines with --events."""
    pipes = {}
    busy = BusyCalls()

    def on_error_txn(txn):
        if events and (txn.errno or txn.dump_intr):
            pipe = pipes["errors"]
            pipe.printer(transaction_record(txn, pipe.decoder, pipe.offset_ns, pipe.context))

    def on_syscall_error(err):
        # the socket layer's overruns come from an iterator over every socket: the
        # filters the probes apply to calls are applied here
        if err.dropped and not filters.match(err, request_type=filters.type):
            return
        metrics.add_call_error(err.protocol, err.errno, who_of_record(err, source.context))
        if events:
            pipe = pipes["errors"]
            pipe.printer(syscall_error_record(err, pipe.offset_ns, pipe.context))

    def on_slow_txn(txn):
        done = txn.done
        busy.ended(txn.request.tid, done.ts_ns if done is not None else None)
        threshold = metrics.slow_threshold_ns
        # counted once certainly over it (the socket layer knows a start within a window)
        if (txn.latency_ns or 0) < threshold or txn.latency_min_ns < threshold:
            return
        req = txn.request
        metrics.add_slow(req.protocol, req.nl_type, who_of_record(req, source.context))
        if events:
            pipe = pipes["slow"]
            pipe.printer(slow_record(txn, pipe, busy))

    def on_slow_other(rec):
        if getattr(rec, "in_progress", None) is False:
            busy.add(rec)

    pipes["errors"] = Pipeline(True, on_txn=on_error_txn, on_syscall_error=on_syscall_error,
                               source=source, show_secrets=show_secrets)
    pipes["slow"] = Pipeline(True, on_txn=on_slow_txn, on_other=on_slow_other, source=source,
                             show_secrets=show_secrets)
    return pipes


def run_serve(listen, interval, slow_ns, events, max_label_sets, series_ttl, duration,
              filters, snaplen, capture, show_secrets=False):
    addr, port = parse_listen(listen)
    tune_gc()
    metrics = Metrics(limit=max_label_sets, ttl_s=series_ttl, type_name=type_name,
                      slow_threshold_ns=slow_ns)
    source = LiveSource()
    captures = {"counters": Capture(mode="top", filters=filters, snaplen=snaplen,
                                    settings=capture, counts=("errno", "type_hist")),
                "errors": Capture(mode="errors", filters=filters, snaplen=snaplen,
                                  settings=capture)}
    if slow_ns:
        captures["slow"] = Capture(mode="slow", filters=filters, snaplen=snaplen,
                                   settings=capture, slow_ns=slow_ns)
    pipes = event_pipelines(metrics, source, events, filters, show_secrets)
    counters = Counters(captures["counters"], metrics, source.context)
    registry = CollectorRegistry()
    registry.register(metrics)
    ProcessCollector(registry=registry)         # process_resident_memory_bytes and the like
    server = None
    stopper = Stopper().__enter__()             # until the probes are detached (live.Stopper)
    try:
        # the port first: taken, it fails at once, not after the probes' compile (and
        # until they are attached, nlbpf_up says 0)
        try:
            server, _thread = start_http_server(port, addr=addr, registry=registry)
        except OSError as e:
            raise NlbpfError(f"cannot listen on {addr}:{port}: {e.strerror or e}") from None
        for role, cap in captures.items():
            cap.start()
        for role, cap in captures.items():
            metrics.set_health(role, layer=cap.layer)
        for role, cap in captures.items():
            why = f" ({'; '.join(cap.layer_reasons)})" if cap.layer_reasons else ""
            print(f"Hooks: {role}: {cap.layer}{why}", file=sys.stderr)
        shown = f"[{addr}]" if ":" in addr else addr
        print(f"Serving metrics on http://{shown}:{port}/metrics", file=sys.stderr)
        print(TRACING_LINE, file=sys.stderr, flush=True)
        started = last_read = last_tick = time.monotonic()
        closed = None
        with stopper:
            try:
                while not stopper.stop:
                    for role in ("errors", "slow"):
                        cap = captures.get(role)
                        if cap is None:
                            continue
                        for rec in cap.poll(POLL_MS):
                            pipes[role].feed(rec)
                    now = time.monotonic()
                    if now - last_tick >= 1.0:
                        last_tick = now
                        for role in ("errors", "slow"):
                            if role in captures:
                                pipes[role].tick(None)
                        health(metrics, captures)
                        flush_output()
                    if now - last_read >= interval:
                        last_read = now
                        counters.refresh()
                    if duration and now - started >= duration:
                        break
            except (OutputClosed, OutputError) as e:
                closed = e      # `nlbpf serve --events | head`: the metrics stay right
        for cap in captures.values():
            cap.detach()
        for role in ("errors", "slow"):
            if role in captures:
                for rec in captures[role].drain():
                    pipes[role].feed(rec)
        counters.refresh()
        health(metrics, captures)
        flush_output()
        lost = sum(metrics.lost.values())
        walked = sum(metrics.not_walked.values())
        print(f"nlbpf: served; {lost} events lost, {walked} calls not walked",
              file=sys.stderr, flush=True)
        if closed:
            raise closed
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        for cap in captures.values():
            cap.close()
        stopper.__exit__()


def health(metrics, captures):
    for role, cap in captures.items():
        stats = cap.stats()
        metrics.set_health(role, lost=stats["lost"], not_walked=not_walked(stats))
