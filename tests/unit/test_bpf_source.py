"""bpf/: each hook layer's file joined with the shared headers it includes, as bcc
is given it (nlbpf/capture/source.py)."""
import re

import pytest

from nlbpf.capture import source

LINE = re.compile(r'^#line (\d+) "bpf/([\w.-]+)"$')


@pytest.mark.parametrize("layer", sorted(source.LAYER_FILES))
def test_every_line_points_home(layer):
    """Each line of the joined text is the line its #line marker names, in that file:
    clang's errors point where a person would look."""
    files = {}
    where = None
    for text_line in source.layer_text(layer).splitlines():
        m = LINE.match(text_line)
        if m:
            where = [m.group(2), int(m.group(1))]
            continue
        name, n = where
        if name not in files:
            files[name] = (source.BPF_DIR / name).read_text().splitlines()
        assert files[name][n - 1] == text_line, f"{name}:{n}"
        where[1] += 1


@pytest.mark.parametrize("layer", sorted(source.LAYER_FILES))
def test_headers_joined_once(layer):
    """Every shared header is in the text once, none left as an #include bcc would
    compile without rewriting its map calls; nlbpf.h stays a real #include."""
    text = source.layer_text(layer)
    assert not re.search(r'^#include "[\w-]+\.bpf\.h"', text, re.M)
    starts = re.findall(r'^#line 1 "bpf/([\w.-]+)"$', text, re.M)
    assert starts[0] == source.LAYER_FILES[layer]
    assert len(starts) == len(set(starts))
    assert {"base.bpf.h", "maps.bpf.h", "walk.bpf.h", "tracepoints.bpf.h"} <= set(starts)
    assert text.count('#include "nlbpf.h"') == 1


def test_digest_follows_the_text():
    assert source.layer_digest("syscall") != source.layer_digest("kernel")
    assert len(source.layer_digest("sock")) == 40
