"""bench/run.py's configuration names: NAME@LAYER, the raw floor, the `other` workload."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def run(monkeypatch):
    mod = load("run")
    # parse_args registers NAME@LAYER configurations in the module's table
    monkeypatch.setattr(mod, "CONFIGS", dict(mod.CONFIGS))
    return mod


def test_layered_configs_get_the_hook_options(run):
    a = run.parse_args(["--configs", "errors@fentry,top@kprobe,trace@syscall,floor-raw"])
    assert a.configs[0] == "bare"
    assert run.CONFIGS["errors@fentry"] == (
        "nlbpf errors (fentry layer)",
        ["errors", "--json", "--hooks", "kernel", "--kernel-probe", "fentry"])
    assert run.CONFIGS["top@kprobe"][1][-4:] == ["--hooks", "kernel", "--kernel-probe", "kprobe"]
    assert run.CONFIGS["trace@syscall"][1] == ["trace", "--json", "--hooks", "syscall"]
    assert run.CONFIGS["floor-raw"][1] == ["floor", "--raw"]
    assert run.base_config("errors@fentry") == "errors"
    assert run.base_config("trace-cmp") == "trace"
    assert run.base_config("trace-spool") == "trace"      # counted like trace
    assert run.base_config("trace-live") == "trace"
    assert run.CONFIGS["trace-live"][1] == ["trace", "--no-spool", "--json"]


@pytest.mark.parametrize("bad", ["errors@ebpf", "strace@fentry", "bogus"])
def test_unknown_configurations_are_refused(run, bad, capsys):
    with pytest.raises(SystemExit) as e:
        run.parse_args(["--configs", bad])
    assert e.value.code == 2
    assert f"unknown configuration {bad}" in capsys.readouterr().err


def summary_entry(ratio, captured=0, want=0):
    return {"ratio_median": ratio, "cpu_ratio_median": ratio, "captured": captured, "want": want}


def test_targets_are_judged_per_layer(run):
    run.parse_args(["--configs", "errors@fentry,errors@syscall,trace@fentry,floor,floor-raw"])
    summary = {
        ("getlink", "errors@fentry"): summary_entry(1.01),
        ("getlink", "errors@syscall"): summary_entry(1.40),
        ("getlink", "trace@fentry"): summary_entry(1.04, 6000, 6000),
        ("getlink", "floor"): summary_entry(1.10),
        ("getlink", "floor-raw"): summary_entry(1.05),
    }
    verdicts = {name: ok for name, ok, why in run.targets(summary, ["getlink"], [])}
    assert verdicts["errors ≤ 1.02× bare on the fentry layer"] is True
    assert verdicts["errors ≤ 1.02× bare on the syscall layer"] is False
    assert verdicts["trace ≤ 1.05× bare, 100% captured on the fentry layer"] is True
    assert verdicts["empty BPF on the syscall tracepoints"] is None
    assert verdicts["empty BPF on raw_syscalls, by syscall number"] is None


def test_trace_target_needs_everything_captured(run):
    summary = {("getlink", "trace"): summary_entry(1.01, 5999, 6000)}
    (name, ok, why), = run.targets(summary, ["getlink"], [])
    assert name == "trace ≤ 1.05× bare, 100% captured" and ok is False
    assert "5,999/6,000" in why


def test_other_workload_is_dd_not_netlink(run):
    argv = run.workload_argv(None, "other", 10, other_count=5000)
    assert argv == ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=5000"]


def test_raw_floor_picks_out_the_six_calls_by_number():
    floor = load("floor")
    src = floor.raw_source()
    assert src.count("RAW_TRACEPOINT_PROBE") == 2
    for nr in (44, 45, 46, 47, 299, 307):     # x86-64: sendto ... sendmmsg
        assert f"id == {nr}" in src
    assert set(floor.X86_64_NR) == set(floor.CALLS)


def test_sock_floor_is_an_empty_program_on_each_socket_layer_hook():
    from nlbpf.capture.layers import SOCK_PROGRAMS
    floor = load("floor")
    src = floor.sock_source()
    hooks = {t for progs in SOCK_PROGRAMS.values() for _, t in progs if not t.startswith("bpf_")}
    assert set(floor.SOCK_HOOKS) == hooks
    assert src.count("return 0;") == len(hooks)
    assert all(f"int empty_{t}(u64 *ctx)" in src for t in hooks)


def test_sock_copy_floor_copies_on_the_same_hooks(run):
    """floor-sock-copy: the socket layer's hooks, each program handing its message over"""
    floor = load("floor")
    assert run.CONFIGS["floor-sock-copy"][1] == ["floor", "--sock-copy"]
    src = floor.COPY_SOURCE.read_text()
    for tp in floor.SOCK_HOOKS:
        body = src.split(f"int copy_{tp}(u64 *ctx)", 1)[1].split("\n}\n", 1)[0]
        assert "copy_message(sk, " in body, tp


def test_copy_costs_variants_are_knobs_of_the_copy_program():
    """bench/copy_costs.py: each variant leaves out one step more, through a -D the C has"""
    costs, floor = load("copy_costs"), load("floor")
    src = floor.COPY_SOURCE.read_text()
    knobs = [k for _, _, ks, _ in costs.VARIANTS for k in ks]
    assert costs.VARIANTS[0][2] == () and len(set(knobs)) == len(knobs)
    assert all(pages & (pages - 1) == 0 for *_, pages in costs.VARIANTS)
    for k in knobs:
        assert f"#ifdef {k}" in src or f"#ifndef {k}" in src, k


@pytest.mark.parametrize("line,want", [
    ("nlbpf: 12 records; 13 events from the kernel: 13 shown, 0 not shown, 0 lost, "
     "0 not walked", {"records": 12, "events": 13, "lost": 0}),
    ("nlbpf: 9 records; 60 events from the kernel: 9 shown, 41 not shown (stopped by a "
     "second signal), 10 lost (the kernel's buffer was full), 0 not walked",
     {"records": 9, "events": 50, "lost": 10}),
    ("nlbpf: 14 messages written to x.pcapng; 15 events from the kernel: 15 written, "
     "0 not written, 0 lost, 0 not walked", {"records": 14, "events": 15, "lost": 0}),
    # a tree from before the closing line said what became of every event
    ("nlbpf: 12 records, 13 events from the kernel, 2 lost",
     {"records": 12, "events": 13, "lost": 2})])
def test_the_closing_line_is_read_in_either_form(run, line, want):
    tracer = run.Tracer.__new__(run.Tracer)
    tracer.lines = ["Tracing netlink... Hit Ctrl-C to end.", line]
    assert tracer.closing() == want
