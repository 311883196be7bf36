"""errors with less noise: --ignore rules (parsed once, the kernel's keys derived from
them) and the text's folding of repeats."""
import pytest

from nlbpf.capture.abi import DEFINES
from nlbpf.errors import NlbpfError
from nlbpf.filters import Filters, parse_ignore
from nlbpf.output.fold import RepeatFolder

ROUTE, GENERIC = 0, 16


@pytest.mark.parametrize("text,want", [
    ("RTM_NEWLINK:ENODEV", (ROUTE, 16, 19)),
    ("RTM_NEWLINK", (ROUTE, 16, None)),
    (":EEXIST", (None, None, 17)),
    ("generic/16:ENOENT", (GENERIC, 16, 2)),
    ("route/RTM_DELROUTE:3", (ROUTE, 25, 3)),
    ("24", (None, 24, None)),
])
def test_ignore_rules(text, want):
    rule = parse_ignore(text)
    assert (rule.protocol, rule.type, rule.errno) == want


@pytest.mark.parametrize("text", ["", ":", "RTM_NOPE:ENODEV", "RTM_NEWLINK:EBOGUS",
                                  "RTM_NEWLINK:99999", "nosuchproto/16", "70000"])
def test_bad_ignore_rules_are_one_clear_error(text):
    with pytest.raises(NlbpfError) as e:
        parse_ignore(text)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_the_kernels_keys_and_userspace_agree():
    f = Filters(ignore=(parse_ignore("RTM_NEWLINK:ENODEV"), parse_ignore(":EEXIST"),
                        parse_ignore("24")))
    keys = f.ignore_keys()
    assert keys[f.ignore[0]] == [(ROUTE, 16, -19)]
    assert keys[f.ignore[1]] == [(DEFINES["IGNORE_ANY_PROTO"], DEFINES["IGNORE_ANY_TYPE"], -17)]
    assert len(keys[f.ignore[2]]) == 32            # a bare number: every protocol
    assert "-DFILTER_IGNORE" in f.cflags()
    assert f.ignored(ROUTE, 16, 19) is f.ignore[0]
    assert f.ignored(ROUTE, 16, 22) is None         # another errno
    assert f.ignored(GENERIC, 16, 19) is None       # genl's 16 is not RTM_NEWLINK
    assert f.ignored(12, 99, 17) is f.ignore[1]
    assert f.ignored(GENERIC, 24, 1) is f.ignore[2]


def rec(ts, pid, type_="RTM_NEWLINK", error="ENODEV", comm="ip"):
    return {"ts": ts, "pid": pid, "comm": comm, "protocol": "route", "type": type_,
            "error": error, "extack": None, "summary": "..."}


def test_repeats_are_said_once_with_a_count_per_window():
    f = RepeatFolder(1.0)
    assert f.admit(rec(10.0, 1)) == (True, [])
    for i in range(5):
        assert f.admit(rec(10.1 + i * 0.1, 2 + i)) == (False, [])
    # another kind is shown at once
    assert f.admit(rec(10.2, 9, type_="RTM_DELROUTE", error="ESRCH"))[0]
    assert f.due(10.5) == []                        # the window is still open
    [line] = f.due(11.0)
    assert "RTM_NEWLINK → ENODEV: 5 more in the 1s after it, from 5 processes" in line["summary"]
    # after its window, the next one is shown in full again
    assert f.admit(rec(11.5, 20)) == (True, [])
    assert f.due(0, everything=True) == []          # nothing folded in that window


def test_a_repeat_after_the_window_says_the_count_first():
    f = RepeatFolder(1.0)
    f.admit(rec(10.0, 1))
    f.admit(rec(10.5, 2))
    shown, due = f.admit(rec(11.2, 3))              # no tick came between
    assert shown and len(due) == 1 and "1 more" in due[0]["summary"]


def test_fold_zero_shows_every_one():
    f = RepeatFolder(0)
    assert all(f.admit(rec(10.0, i)) == (True, []) for i in range(3))
