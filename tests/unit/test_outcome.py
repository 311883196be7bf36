"""The closing line: every event the kernel had is shown, not shown (and why), lost or
not walked, and the numbers add up whatever ended the run."""
import re

from nlbpf.commands.live import Outcome


def numbers(line):
    m = re.search(r"; (\d+) events from the kernel: (\d+) shown, (\d+) not shown.*?, (\d+) lost"
                  r".*?, (\d+) not walked", line)
    return tuple(int(g) for g in m.groups())


def test_a_clean_run_shows_everything():
    o = Outcome.of({"emitted": 13, "lost": 0, "walk_truncated": 0, "unseen": 0}, shown=13)
    line = o.closing_line("12 records")
    assert line == ("nlbpf: 12 records; 13 events from the kernel: 13 shown, 0 not shown, "
                    "0 lost, 0 not walked")


def test_the_parts_add_up_to_the_events():
    """A flood, a second Ctrl-C and calls too long to walk: total = shown + not shown +
    lost + not walked, each with its why."""
    o = Outcome.of({"emitted": 53958, "lost": 53840, "walk_truncated": 2, "unseen": 1,
                    "spool_dropped": 100}, shown=48912)
    o.why.append("stopped by a second signal")
    line = o.closing_line("48000 records")
    total, shown, not_shown, lost, walked = numbers(line)
    assert total == shown + not_shown + lost + walked
    assert (shown, not_shown, lost, walked) == (48912, 5046, 53840, 3)
    assert "100 dropped: the spool was full; stopped by a second signal" in line
    assert "53840 lost (the kernel's buffer was full)" in line
    assert "2 calls with more messages or iovecs than the probes walk" in line
    assert "1 calls by a path this hook layer does not walk" in line


def test_record_says_written():
    o = Outcome.of({"emitted": 5, "lost": 1}, shown=4)
    o.why.append("the output was closed")
    assert "4 written, 1 not written (the output was closed), 1 lost" in o.closing_line(
        "4 messages written to -", verb="written")
