"""Offline: the trace, errors, slow and top views over a capture file.

    nlbpf read FILE [--view trace|errors|slow|top] ...      (same as)
    nlbpf trace|errors|slow|top --read FILE ...

The records of the file go through the same Pipeline (decode, correlate,
render) as a live run: a FileSource, given to the Pipeline, stands in for the
probes and describes records by the file's own metadata. Filters are applied
the way the probes apply them. Nothing on this path loads bcc or needs root.
"""
import contextlib
import json
import sys

from ..files.recording import CaptureFile
from ..capture.abi import LAT_BUCKETS, TOP_COUNTERS
from ..capture.records import Extack, Span
from ..correlate import Correlator, final_status, socket_key
from ..errors import NlbpfError
from ..model import Message, SyscallError, REQUEST, REPLY, NOTIFY
from ..netlink import NLM_F_REQUEST, is_final_reply
from ..output.records import Decoder, clock
from ..files.pcap import PcapError
from .live import flush_output
from .live import write_line
from .errors import run_errors
from .slow import run_slow
from .top import TopState, render_table
from .trace import run_trace

NS = 1_000_000_000
TICK_NS = NS
# --type's requests waiting for their final reply: as many as the probes' table of
# them (bpf `pending`, an LRU of 16,384), the oldest let go first as there
OPEN_MAX = 16384
# threads whose last long call slow has made a span for (only the latest call of a
# thread matters: the others are over)
SPAN_TIDS_MAX = 4096


class OfflineFilter:
    """The probes' filters, in userspace, over recorded records.

    --type keeps requests of that type, the replies to them and notifications
    of that type, as the kernel does (it drops other requests before it
    remembers them, so their replies are orphans and are not handed over)."""

    def __init__(self, filters):
        self.f = filters
        self.open = {}          # (socket key, seq) -> request flags, for --type
        if filters is not None and getattr(filters, "cgroup", None) is not None:
            raise NlbpfError("--cgroup and --container do not apply to a capture file yet; "
                             "filter with --pid, --comm, --proto, --type or --netns",
                             exit_code=2)

    def _who(self, rec):
        return self.f is None or self.f.who(rec)

    def message(self, msg):
        if not self._who(msg):
            return False
        t = self.f.type if self.f is not None else None
        if t is None:
            return True
        if msg.length < 16 or len(msg.data) < 16:
            return True                 # malformed bytes are shown whatever the type
        if msg.direction == REQUEST:
            if msg.nl_type != t:
                return False
            if msg.nl_flags & NLM_F_REQUEST:
                key = (socket_key(msg), msg.seq)
                self.open.pop(key, None)
                self.open[key] = msg.nl_flags
                if len(self.open) > OPEN_MAX:
                    del self.open[next(iter(self.open))]
            return True
        if msg.direction == NOTIFY:
            return msg.nl_type == t
        key = (socket_key(msg), msg.seq)
        flags = self.open.get(key)
        if flags is None:
            return False
        if is_final_reply(msg.nl_type, msg.nl_flags, flags):
            del self.open[key]
        return True

    def event(self, rec):
        if isinstance(rec, Extack):
            return self.f is None or self.f.pid is None or rec.pid == self.f.pid
        return self._who(rec)


class FileSource:
    """A capture file standing in for the probes (a Pipeline's source)."""
    live = False

    def __init__(self, path, snaplen=None):
        self.path = path
        self.snaplen = snaplen      # cut messages further (only when asked)
        self.cap = CaptureFile.open(path)
        self.shown_notes = 0

    @property
    def context(self):
        return self.cap.context

    def prepare(self, pipe):
        """Called by Pipeline.__init__: the file's genl families and clock."""
        pipe.decoder = Decoder(families=self.cap.families, live_families=False,
                               show_secrets=pipe.show_secrets)
        pipe.offset_ns = self.cap.offset_ns

    def records(self, filters=None, duration=None, span_min_ns=None):
        """The file's records as the probes would have handed them over."""
        flt = filters if isinstance(filters, OfflineFilter) else OfflineFilter(filters)
        start = None
        last_call = {}              # tid -> ts of the last call a span was made for
        for rec in self.cap.records():
            if len(self.cap.notes) > self.shown_notes:
                self.notes()
            if start is None:
                start = rec.ts_ns
            if duration and rec.ts_ns - start > duration * NS:
                return
            if isinstance(rec, Message):
                if not flt.message(rec):
                    continue
                if self.snaplen is not None and len(rec.data) > self.snaplen:
                    rec.data = rec.data[:self.snaplen]
                if span_min_ns is not None and rec.dur_ns > 0 and rec.dur_ns >= span_min_ns:
                    # slow's "who else was busy": one span per long call (a message's
                    # time is its send call's start, or its receive call's end); a call
                    # of no known length (nlmon's messages have none) kept no one busy
                    begin = rec.ts_ns if rec.direction == REQUEST else rec.ts_ns - rec.dur_ns
                    if last_call.get(rec.tid) != begin:
                        last_call.pop(rec.tid, None)
                        last_call[rec.tid] = begin
                        if len(last_call) > SPAN_TIDS_MAX:
                            del last_call[next(iter(last_call))]
                        yield Span(ts_ns=begin, dur_ns=rec.dur_ns, pid=rec.pid, tid=rec.tid,
                                   comm=rec.comm, protocol=rec.protocol, syscall=rec.syscall,
                                   lock_wait_ns=0, holder_pid=0, holder_comm="")
            elif not flt.event(rec):
                continue
            yield rec

    def notes(self):
        for note in self.cap.notes[self.shown_notes:]:
            print(f"nlbpf: {note}", file=sys.stderr, flush=True)
        self.shown_notes = len(self.cap.notes)

    def stats(self):
        lost = self.cap.lost
        return {"emitted": self.cap.counts["packets"], "lost": lost or 0}

    def summary(self, shown, what="records"):
        c = self.cap.counts
        self.notes()
        print(f"nlbpf: {shown} {what} from {c['messages']} messages in {self.cap.name}",
              file=sys.stderr, flush=True)
        lost = self.cap.lost
        if lost:
            print(f"nlbpf: warning: the recording lost {lost} events (buffer full): some "
                  f"requests may lack their replies", file=sys.stderr, flush=True)

    def run(self, pipe, capture_args, duration, drain=None, command=None):
        """The Pipeline over the file's records (drain: live runs only)."""
        span_min = None
        if capture_args.get("mode") == "slow":
            slow_ns = capture_args.get("slow_ns") or 0
            span_min = capture_args.get("span_min_ns")
            if span_min is None:
                span_min = min(int(slow_ns), 1_000_000)
        next_tick = None
        flt = OfflineFilter(capture_args.get("filters"))     # bad filters: say so first
        damage = None
        try:
            try:
                for rec in self.records(flt, duration, span_min):
                    if next_tick is None:
                        next_tick = rec.ts_ns + TICK_NS
                    elif rec.ts_ns >= next_tick:
                        pipe.tick(self.stats())
                        flush_output()
                        next_tick = rec.ts_ns + TICK_NS
                    pipe.feed(rec)
            except PcapError as e:
                damage = e          # what came before it is shown all the same
            pipe.finish()
        finally:
            self.summary(pipe.printer.count)
        if damage is not None:
            raise damage
        return self.stats()

    def close(self):
        self.cap.close()


@contextlib.contextmanager
def offline(path, snaplen=None):
    """The FileSource over `path` for a command's Pipeline (closed on leaving);
    None when path is None (the command captures live)."""
    if path is None:
        yield None
        return
    source = FileSource(path, snaplen)
    try:
        yield source
    finally:
        source.close()


# ---------------------------------------------------------------------- top
def lat_bucket(v):
    """bpf/emit.bpf.h's lat_bucket: log2 with one extra bit of precision."""
    v = max(0, int(v))
    lg = v.bit_length() - 1 if v else 0
    half = (v >> (lg - 1)) & 1 if lg else 0
    b = lg * 2 + half
    return b if b < LAT_BUCKETS else LAT_BUCKETS - 1


# The kernel's top maps hold this many processes and (process, type) pairs; what
# does not fit is not counted (bpf/maps.bpf.h: BPF_HASH top, top_types).
TOP_ROWS_MAX = 10240
TOP_TYPES_MAX = 65536


class TopCounters:
    """The kernel's top maps, rebuilt from recorded messages (cumulative until reset()).

    Like the kernel's maps they hold TOP_ROWS_MAX processes and TOP_TYPES_MAX types;
    what does not fit is not counted, and `full` says how many were not."""

    def __init__(self):
        self.rows = {}              # pid -> counters, comm, lat_max_ns, hist
        self.types = {}             # (pid, proto, type) -> requests
        self.where = {}             # pid -> (cgroup, netns) of its latest call
        self.correlator = Correlator()
        self.full = 0               # records of processes the table had no room for
        self._next_expire = None
        self._fed = 0

    def reset(self):
        """Start counting afresh (the next interval); requests in flight stay."""
        self.rows, self.types, self.where = {}, {}, {}

    def _row(self, rec):
        row = self.rows.get(rec.pid)
        if row is None:
            if len(self.rows) >= TOP_ROWS_MAX:
                self.full += 1
                return None
            row = self.rows[rec.pid] = {k: 0 for k in TOP_COUNTERS}
            row.update(comm=rec.comm, lat_max_ns=0, hist=[0] * LAT_BUCKETS)
        self.where[rec.pid] = (getattr(rec, "cgroup", 0), getattr(rec, "netns", 0))
        return row

    def _expire(self, ts):
        # requests whose reply never comes go, as in the other views (Pipeline.tick):
        # once per second of capture time (and per 4,096 records, if time stands still
        # or goes back)
        self._fed += 1
        if self._next_expire is None or ts >= self._next_expire or not self._fed & 4095:
            self.correlator.expire()
            self._next_expire = ts + TICK_NS

    def add(self, rec, type_filter=None):
        self._expire(rec.ts_ns)
        if isinstance(rec, SyscallError):
            row = self._row(rec)
            if row is not None:
                row["errors"] += 1
            return
        if isinstance(rec, Extack):
            self.correlator.add_extack(rec)
            return
        if not isinstance(rec, Message) or rec.length < 16 or len(rec.data) < 16:
            return
        if rec.direction == REQUEST:
            if type_filter is not None and rec.nl_type != type_filter:
                return
            row = self._row(rec)
            if row is None:
                self.correlator.feed(rec)
                return
            row["msgs_out"] += 1
            row["bytes_out"] += rec.length
            if rec.nl_flags & NLM_F_REQUEST:
                row["requests"] += 1
            if rec.nl_flags & 0x300 == 0x300:
                row["dumps"] += 1
            key = (rec.pid, rec.protocol, rec.nl_type)
            if key in self.types or len(self.types) < TOP_TYPES_MAX:
                self.types[key] = self.types.get(key, 0) + 1
            self.correlator.feed(rec)
            return
        row = self._row(rec)
        if row is None:
            if rec.direction == REPLY:
                self.correlator.feed(rec)
            return
        row["msgs_in"] += 1
        row["bytes_in"] += rec.length
        if rec.direction != REPLY:
            return
        txn, completed = self.correlator.feed(rec)
        if not completed:
            return
        latency = txn.latency_ns or 0
        status = final_status(rec)
        row["errors"] += bool(status)
        row["dump_intr"] += bool(txn.dump_intr)
        row["lat_count"] += 1
        row["lat_sum_ns"] += latency
        row["lock_wait_ns"] += rec.lock_wait_ns
        row["lat_max_ns"] = max(row["lat_max_ns"], latency)
        row["hist"][lat_bucket(latency)] += 1

    def snapshot(self):
        rows = {pid: {**r, "hist": list(r["hist"])} for pid, r in self.rows.items()}
        return rows, dict(self.types), dict(self.where)


def _event_time(rec):
    """When the kernel counted it: a request when sent, a reply when read."""
    if isinstance(rec, Message) and rec.direction == REQUEST:
        return rec.ts_ns + rec.dur_ns
    return rec.ts_ns


def run_read(path, view, threshold_ns, interval, count, rows, by, snaplen_given, **kw):
    """nlbpf read FILE --view VIEW: the same code as VIEW --read FILE."""
    if view == "top":
        run_top_file(path, interval=interval, count=count, rows=rows, by=by,
                     snaplen_given=snaplen_given, **kw)
        return
    with offline(path, kw["snaplen"] if snaplen_given else None) as source:
        if view == "trace":
            run_trace(source=source, **kw)
        elif view == "errors":
            run_errors(source=source, **kw)
        else:
            run_slow(threshold_ns=threshold_ns, source=source, **kw)


def run_top_file(path, as_json, duration, filters, snaplen, interval, count, rows,
                 by="process", snaplen_given=False, **_live_only):
    """nlbpf top over a file: one interval for the whole file, or -i seconds each."""
    with offline(path, snaplen if snaplen_given else None) as source:
        def new_state():
            return TopState(by=by, context=source.context)
        counters = TopCounters()
        offset = source.cap.offset_ns
        type_filter = filters.type if filters is not None else None
        step = int(interval * NS) if interval else None
        shown = 0
        bucket_start = bucket_end = None
        first = last = None

        def emit(end_ns, span_s, lost_new, lost_total):
            nonlocal shown
            # each interval counts afresh (a new TopState, the counters reset): the
            # processes of one interval are all that is held, however long the file
            state = new_state()
            rows_now, types, where = counters.snapshot()
            counters.reset()
            if counters.full:
                source.cap.note("top-full", f"{source.cap.name}: more than {TOP_ROWS_MAX} "
                                            f"processes in an interval; as in the kernel's "
                                            f"table, the others were not counted")
                counters.full = 0
            try:
                data = state.interval(rows_now, types, where=where)
            except TypeError:
                data = state.interval(rows_now, types)
            if not data:
                return
            shown += 1
            wall = (end_ns + offset) / NS
            if as_json:
                write_line(json.dumps({"ts": round(wall, 6), "interval_s": round(span_s, 3),
                                       "by": by, "lost": lost_new, "total_lost": lost_total,
                                       "rows": data}))
            else:
                try:
                    text = render_table(data, rows, span_s, lost_new, lost_total, by=by)
                except TypeError:
                    text = render_table(data, rows, span_s, lost_new, lost_total)
                stamp = clock(wall).split(".")[0]
                write_line(stamp + text[8:] if text[2:3] == ":" else text)
                write_line("")

        stop = False
        damage = None
        flt = OfflineFilter(filters)
        try:
            try:
                for rec in source.records(flt, duration):
                    t = _event_time(rec)
                    if first is None:
                        first = t
                        if step:
                            bucket_start, bucket_end = t, t + step
                    if step and t >= bucket_end:
                        emit(bucket_end, step / NS, 0, 0)
                        if count and shown >= count:
                            stop = True
                            break
                        skipped = (t - bucket_end) // step
                        bucket_start = bucket_end + skipped * step
                        bucket_end = bucket_start + step
                    last = max(last or t, t)
                    counters.add(rec, type_filter)
            except PcapError as e:
                damage = e          # the table of what came before it is shown all the same
            if not stop and first is not None:
                lost = source.cap.lost or 0
                if step:
                    emit(bucket_end, step / NS, lost, lost)
                else:
                    emit(last, (last - first) / NS, lost, lost)
        finally:
            source.summary(shown, "intervals")
        if damage is not None:
            raise damage
