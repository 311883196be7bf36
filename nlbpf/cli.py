"""nlbpf's command line: one click group, one module per command."""
import dataclasses
import functools
import math
import re
import sys

import click

from . import __version__
from .errors import NlbpfError
from .filters import Filters
from .capture.settings import CaptureSettings, MAX_SNAPLEN, MIN_SNAPLEN, SNAPLEN_HELP
from .commands.live import DRAIN_S
from .output.fold import FOLD_S

UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
PID_MAX = 1 << 22       # the kernel's most (PID_MAX_LIMIT)
# top's rows: one per process, or per group of them (commands/top.py group_key)
TOP_BY = ("process", "comm", "container", "netns")


def parse_duration_ns(text, default_unit="ms"):
    """'500ms' / '1.5s' / '200us' / '750' (default unit) -> ns."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zµ]*)\s*", str(text))
    if not m or (m.group(2) and m.group(2) not in UNITS):
        raise NlbpfError(f"bad duration {text!r}: use a number with ns, us, ms or s (e.g. 500ms)",
                         exit_code=2)
    return int(float(m.group(1)) * UNITS[m.group(2) or default_unit])


class FiniteFloat(click.FloatRange):
    """A float in range that is a number: nan slips past every comparison (a duration of
    nan ran forever), inf is no amount of seconds."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return rv


def _buffer_pages(n):
    if n is not None and n & (n - 1):
        raise NlbpfError(f"--buffer-pages must be a power of 2, not {n}", exit_code=2)
    return n


def capture_options(f=None, *, without=()):
    """Options every capturing command takes (serve: without those about printing)."""
    if f is None:
        return functools.partial(capture_options, without=without)
    options = [
        click.option("--json", "as_json", is_flag=True, help="One JSON object per line."),
        click.option("--duration", type=FiniteFloat(min=0, min_open=True), default=None,
                     metavar="SECONDS", help="Stop after this many seconds."),
        click.option("--drain", type=FiniteFloat(min=0), default=DRAIN_S, show_default=True,
                     metavar="SECONDS", envvar="NLBPF_DRAIN",
                     help="Once stopped (Ctrl-C, --duration), go on showing what was already "
                          "captured for at most this long; the closing line counts the rest."),
        click.option("-p", "--pid", type=click.IntRange(min=1, max=PID_MAX), default=None,
                     help="Only this process (tgid)."),
        click.option("-c", "--comm", default=None, help="Only processes with this name."),
        click.option("--proto", default=None,
                     help="Only this netlink protocol (route, generic, netfilter, sock_diag, ... or a number)."),
        click.option("--type", "type_", default=None,
                     help="Only requests of this type (RTM_DELROUTE, or a number) and their replies."),
        click.option("--netns", default=None,
                     help="Only this network namespace (ip netns name, inode or pid)."),
        click.option("--cgroup", default=None, metavar="PATH",
                     help="Only processes in this cgroup v2 or below it (/kubepods.slice/..., "
                          "as /proc/PID/cgroup shows it)."),
        click.option("--container", default=None, metavar="ID|NAME",
                     help="Only this container: id (or its start), name, pod/container, or pod."),
        click.option("--snaplen", type=click.IntRange(MIN_SNAPLEN, MAX_SNAPLEN),
                     default=None, show_default=SNAPLEN_HELP,
                     help="Bytes of each message kept, header included."),
        click.option("--hooks", type=click.Choice(["auto", "kernel", "sock", "syscall"]),
                     default="auto", show_default=True, envvar="NLBPF_HOOKS",
                     help="Hook layer: kernel functions (fentry/kprobes), socket tracepoints "
                          "(errors, top, slow; Linux 6.7+), syscall tracepoints, or the best "
                          "this kernel allows for the command."),
        click.option("--kernel-probe", type=click.Choice(["auto", "fentry", "kprobe"]), default="auto",
                     show_default=True, envvar="NLBPF_KERNEL_PROBE",
                     help="How the kernel layer attaches: fentry/fexit, kprobes, or fentry if it works."),
        click.option("--rw", type=click.Choice(["auto", "on", "off"]), default="auto",
                     show_default=True, envvar="NLBPF_RW",
                     help="Syscall layer: also hook read(), write() and their vector forms, "
                          "which a netlink socket takes too, at a cost to every process's file "
                          "I/O. auto: only where the kernel cannot count such calls (before "
                          "Linux 6.7); elsewhere they are counted as not walked."),
        click.option("--buffer", type=click.Choice(["auto", "ring", "perf"]), default="auto",
                     show_default=True, help="Kernel-to-user buffer: ring buffer, or perf buffer."),
        # debugging and tests (overload): ring buffer pages in all, or perf buffer pages per CPU
        click.option("--buffer-pages", type=click.IntRange(min=1), default=None, hidden=True),
        # tests: the hash map older kernels (no task storage for tracing) use instead
        click.option("--call-state", type=click.Choice(["auto", "hash"]), default="auto", hidden=True),
        # tests: the syscall layer's fd -> socket walk by helper reads, as kernels before 6.2
        click.option("--fd-walk", type=click.Choice(["auto", "helpers"]), default="auto", hidden=True),
        # tests and bench: bcc's per-record callback instead of reading the ring's pages
        click.option("--ring-reader", type=click.Choice(["auto", "bcc"]), default="auto", hidden=True),
        click.option("--show-secrets", is_flag=True,
                     help="Show key material (xfrm SA keys, WireGuard, MACsec and nl80211 keys) "
                          "instead of redacting it, in every output and in capture files."),
    ]
    for option in reversed(options):
        f = option(f)
    if without:
        f.__click_params__ = [p for p in f.__click_params__ if p.name not in without]

    @functools.wraps(f)
    def wrapper(**kw):
        # how to capture, for every Capture this run makes
        kw["capture"] = CaptureSettings(hooks=kw.pop("hooks"), kernel_probe=kw.pop("kernel_probe"),
                                        buffer=kw.pop("buffer"),
                                        buffer_pages=_buffer_pages(kw.pop("buffer_pages")),
                                        call_state=kw.pop("call_state"), fd_walk=kw.pop("fd_walk"),
                                        ring_reader=kw.pop("ring_reader"), rw=kw.pop("rw"))
        kw["filters"] = Filters.from_options(pid=kw.pop("pid"), comm=kw.pop("comm"),
                                             proto=kw.pop("proto"), type_=kw.pop("type_"),
                                             netns=kw.pop("netns"), cgroup=kw.pop("cgroup"),
                                             container=kw.pop("container"))
        return f(**kw)
    return wrapper


# the commands that can run one command and trace it: options first, then the command
# (`nlbpf trace --json -- ip -d link`); what follows its name is its own
COMMAND_SETTINGS = {"allow_interspersed_args": False}


def command_argument(f):
    """[--] CMD...: start CMD, trace it and what it forks until it exits, exit with its
    status (commands/traced_command.py)."""
    f = click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")(f)

    @functools.wraps(f)
    def wrapper(**kw):
        argv = kw.pop("command")
        if not argv:
            return f(**kw)
        if kw.get("read_file") is not None:
            raise click.UsageError("a command to trace runs live; it does not go with --read")
        if kw["filters"].pid is not None:
            raise click.UsageError("-p/--pid and a command: trace one or the other")
        from .capture import environment
        from .commands.traced_command import TracedCommand
        environment.require_root()      # before the command is started
        traced = TracedCommand(argv)
        try:
            kw["filters"] = dataclasses.replace(kw["filters"], follow=traced.spawn())
            f(command=traced, **kw)
        finally:
            traced.abandon()            # still held: nlbpf failed before it ran
        status = traced.exit_status()
        if status is None:
            print(f"nlbpf: {argv[0]} (pid {traced.proc.pid}) still runs; it is no longer "
                  f"traced", file=sys.stderr, flush=True)
            return None
        sys.exit(status)
    return wrapper


def verbose_option(f):
    """-v: each message in full under its line (header fields, every attribute)."""
    return click.option("-v", "--verbose", is_flag=True,
                        help="Under each line, the message in full: its header's fields and "
                             "every attribute, nested ones indented, by name.")(f)


def read_option(f):
    """-r/--read FILE: a view over a capture file instead of the live probes."""
    return click.option("-r", "--read", "read_file", default=None, metavar="FILE",
                        help="Read a capture file instead of tracing live (nlbpf record's "
                             "pcapng, or an nlmon capture; - for stdin). Needs no root.")(f)


def _given(name):
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)


def _offline(kw):
    """Pops --read: the file's source for a record-printing view (None when live)."""
    from .commands.read import offline
    return offline(kw.pop("read_file"), kw["snaplen"] if _given("snaplen") else None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nlbpf")
def cli():
    """nlbpf: see every netlink request on this machine, who made it, and how it went."""


@cli.command(context_settings=COMMAND_SETTINGS)
@capture_options
@read_option
@verbose_option
@click.option("--spool/--no-spool", default=None,
              help="Capture in a separate process to a temporary file ($TMPDIR) and show from "
                   "it, the default when tracing live: a burst faster than decoding makes the "
                   "output lag instead of losing events. --no-spool decodes as it captures, "
                   "in one process and with no file: what its buffers cannot hold is dropped "
                   "(and counted).")
@command_argument
def trace(spool, **kw):
    """Every netlink message, one line each.

    \b
    Examples:
      nlbpf trace                          every netlink message on this machine
      nlbpf trace -c ip --proto route      what `ip` asks of rtnetlink
      nlbpf trace -- ip route get 1.1.1.1  one command and what it forks; its exit status
      nlbpf trace --json -p 1234           one running process, as JSON lines
    """
    if kw["read_file"] is not None:
        if spool:
            raise click.UsageError("--spool captures live; it does not apply to --read")
    elif spool is not False:
        kw.pop("read_file")
        from .commands.spool import run_spooled_trace
        run_spooled_trace(asked=bool(spool), **kw)
        return
    from .commands.trace import run_trace
    with _offline(kw) as source:
        run_trace(source=source, **kw)


@cli.command(context_settings=COMMAND_SETTINGS)
@capture_options
@read_option
@click.option("--ignore", "ignore", multiple=True, metavar="[PROTO/]TYPE[:ERRNO]|:ERRNO",
              help="Failures you expect, dropped in the kernel and only counted (the closing "
                   "line says how many): RTM_NEWLINK:ENODEV (iproute2's probe), :EEXIST, "
                   "generic/16:ENOENT. Repeatable.")
@verbose_option
@click.option("--fold", type=FiniteFloat(min=0), default=FOLD_S, show_default=True,
              metavar="SECONDS",
              help="Text: the same failure from the same process name again within this long "
                   "is counted, then said once with its count; 0 shows every one. --json "
                   "shows every one.")
@command_argument
def errors(ignore, **kw):
    """Failed requests (with errno, extack and the decoded request), interrupted dumps, overruns.

    \b
    Examples:
      nlbpf errors                         every failure on this machine
      nlbpf errors --container web         one container's
      nlbpf errors -- /opt/cni/bin/bridge  one command's (and its children's)
      nlbpf errors --ignore RTM_NEWLINK:ENODEV    without iproute2's feature probe
    """
    from .commands.errors import run_errors
    from .filters import parse_ignore
    kw["filters"] = dataclasses.replace(kw["filters"],
                                        ignore=tuple(parse_ignore(t) for t in ignore))
    with _offline(kw) as source:
        run_errors(source=source, **kw)


@cli.command(context_settings=COMMAND_SETTINGS)
@capture_options
@read_option
@click.option("--threshold", default="500ms", show_default=True,
              help="Report requests slower than this (ns, us, ms, s).")
@verbose_option
@command_argument
def slow(threshold, **kw):
    """Requests slower than a threshold, with lock wait vs work and who held the lock."""
    from .commands.slow import run_slow
    with _offline(kw) as source:
        run_slow(threshold_ns=parse_duration_ns(threshold), source=source, **kw)


@cli.command()
@capture_options
@click.option("-i", "--interval", type=FiniteFloat(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many refreshes.")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True,
              help="Processes shown per refresh.")
@click.option("--by", type=click.Choice(TOP_BY), default="process",
              show_default=True,
              help="One row per process, per process name (short-lived `ip` runs in one "
                   "row), per container (else cgroup), or per network namespace.")
@read_option
def top(**kw):
    """Per-process netlink activity, counted in the kernel, refreshed like top."""
    path = kw.pop("read_file")
    if path is not None:
        # offline: one interval for the whole file unless -i was given
        from .commands.read import run_top_file
        run_top_file(path, snaplen_given=_given("snaplen"),
                     **{**kw, "interval": kw["interval"] if _given("interval") else None})
        return
    from .commands.top import run_top
    run_top(**kw)


@cli.command(context_settings=COMMAND_SETTINGS)
@capture_options
@click.option("-w", "--write", required=True, metavar="FILE",
              help="The capture file (- for stdout, e.g. | wireshark -k -i -).")
@click.option("--format", "fmt", type=click.Choice(["pcapng", "pcap"]), default="pcapng",
              show_default=True,
              help="pcapng keeps pid, comm, netns and direction in each packet's comment; "
                   "classic pcap keeps only pid, tid and direction.")
@command_argument
def record(**kw):
    """Write every netlink message to a pcapng file (Wireshark opens it; nlbpf read replays it).

    \b
    Examples:
      nlbpf record -w nl.pcapng                    until Ctrl-C
      nlbpf record -w nl.pcapng -- ip link show    one command's messages
      nlbpf record -w - | wireshark -k -i -
    """
    from .commands.record import run_record
    run_record(**kw)


@cli.command("read")
@click.argument("file")
@click.option("--view", type=click.Choice(["trace", "errors", "slow", "top"]), default="trace",
              show_default=True, help="Which command's output to make from the file.")
@capture_options
@click.option("--threshold", default="500ms", show_default=True,
              help="slow view: report requests slower than this.")
@click.option("-i", "--interval", type=FiniteFloat(min=0.001), default=None,
              help="top view: one table per this many seconds of capture time "
                   "(default: one for the whole file).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=None,
              help="top view: stop after this many tables.")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True,
              help="top view: processes shown per table.")
@click.option("--by", type=click.Choice(TOP_BY), default="process",
              show_default=True, help="top view: one row per process, process name, container "
                                      "or netns.")
def read_(file, view, threshold, interval, count, rows, by, **kw):
    """Replay a capture file (nlbpf record's, or nlmon+tcpdump's) through a view. No root."""
    from .commands.read import run_read
    run_read(file, view, threshold_ns=parse_duration_ns(threshold), interval=interval,
             count=count, rows=rows, by=by, snaplen_given=_given("snaplen"), **kw)


@cli.command()
@capture_options(without=("as_json", "drain"))
@click.option("--listen", default=":9434", show_default=True, metavar="[ADDRESS]:PORT",
              envvar="NLBPF_LISTEN", help="Where to serve /metrics (Prometheus or OpenMetrics).")
@click.option("-i", "--interval", type=FiniteFloat(min=0.1), default=2.0, show_default=True,
              help="Seconds between reads of the kernel's counters.")
@click.option("--slow", "slow", default="1s", show_default=True, metavar="DURATION|off",
              help="Count requests slower than this (nlbpf_slow_requests_total); off: no slow "
                   "probes.")
@click.option("--events", is_flag=True,
              help="Also print each failed request, overrun and slow request as a JSON line on "
                   "stdout (the records of errors --json and slow --json), for a log shipper.")
@click.option("--max-label-sets", type=click.IntRange(min=1), default=200, show_default=True,
              help="Distinct (comm, container, pod, namespace, netns) label sets with series of "
                   "their own; more are counted as 'other'.")
@click.option("--series-ttl", type=FiniteFloat(min=1), default=900, show_default=True,
              metavar="SECONDS", help="A label set idle this long is dropped, making room.")
def serve(slow, **kw):
    """Serve this node's netlink health as Prometheus metrics, counted in the kernel.

    \b
    Examples:
      nlbpf serve                          metrics on :9434/metrics
      nlbpf serve --listen 127.0.0.1:9434 --slow 500ms
      nlbpf serve --events | vector ...    failed and slow requests as JSON lines too
      curl -s localhost:9434/metrics | grep nlbpf_request_errors_total
    """
    from .commands.serve import run_serve
    slow_ns = None if slow.strip().lower() in ("off", "0", "none") else parse_duration_ns(slow)
    run_serve(slow_ns=slow_ns, **kw)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def doctor(as_json):
    """Which hooks load on this kernel, and why not where they don't."""
    from .commands.doctor import run_doctor
    sys.exit(run_doctor(as_json))


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="nlbpf", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        # one line, not click's usage block
        print(f"nlbpf: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except NlbpfError as e:
        if e.exit_code and str(e):          # an empty one: already said (trace --spool's child)
            print(f"nlbpf: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
