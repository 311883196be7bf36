"""trace -- CMD's command: held at its gate until the probes are attached, never run
untraced, its status given as a shell gives it."""
import os
import time

import pytest

from nlbpf.commands.traced_command import TracedCommand
from nlbpf.errors import NlbpfError


def test_the_command_waits_at_its_gate_until_released(tmp_path):
    mark = tmp_path / "ran"
    cmd = TracedCommand(["touch", str(mark)])
    pid = cmd.spawn()
    time.sleep(0.5)
    assert not mark.exists() and not cmd.exited()
    cmd.release()
    cmd.proc.wait(30)
    assert mark.exists() and cmd.exit_status() == 0
    assert cmd.proc.pid == pid          # the gate execs: the pid followed is the command's


def test_a_command_never_released_never_runs(tmp_path):
    mark = tmp_path / "ran"
    cmd = TracedCommand(["touch", str(mark)])
    cmd.spawn()
    cmd.abandon()
    assert not mark.exists() and cmd.exited()


def test_if_nlbpf_goes_before_the_release_the_command_does_not_run(tmp_path):
    mark = tmp_path / "ran"
    cmd = TracedCommand(["touch", str(mark)])
    cmd.spawn()
    os.close(cmd._go)           # what nlbpf's death does to the gate's pipe
    cmd._go = None
    assert cmd.proc.wait(30) == 125 and not mark.exists()


@pytest.mark.parametrize("argv,status", [(["sh", "-c", "exit 3"], 3),
                                         (["sh", "-c", "kill -KILL $$"], 128 + 9)])
def test_exit_status_as_a_shell_gives_it(argv, status):
    cmd = TracedCommand(argv)
    cmd.spawn()
    assert cmd.exit_status() is None
    cmd.release()
    cmd.proc.wait(30)
    assert cmd.exit_status() == status


@pytest.mark.parametrize("argv,code", [([], 2), (["no-such-command-xyz"], 127)])
def test_no_command_or_a_missing_one_is_an_error(argv, code):
    with pytest.raises(NlbpfError) as e:
        TracedCommand(argv)
    assert e.value.exit_code == code


def test_userspace_follows_the_same_tree_as_the_kernel():
    """Filters.who() for records an iterator made (the socket layer's overruns and
    running calls): the command's process or one below it."""
    from nlbpf.filters import Filters, descends_from
    me, parent = os.getpid(), os.getppid()
    assert descends_from(me, me) and descends_from(me, parent)
    assert not descends_from(parent, me)
    assert not descends_from(1 << 22, me)           # no such process
    f = Filters(follow=parent)
    assert f.who(type("R", (), {"pid": me})()) and not f.who(type("R", (), {"pid": 1})())
    assert "-DFILTER_FOLLOW" in f.cflags() and f"pid {parent}" in f.describe()
