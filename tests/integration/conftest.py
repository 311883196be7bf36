"""Root integration tests: real probes, real netlink traffic in throwaway netns.

They skip only when this machine truly cannot load the probes, and say why
(the helpers they share are in tests/helpers/live.py)."""
import json
import sys

import pytest

from tests.helpers.live import NLCLIENT, WHY_NOT, Netns, Run, hooks_args


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.root)
            if WHY_NOT:
                item.add_marker(pytest.mark.skip(reason=WHY_NOT))


@pytest.fixture
def nlbpf():
    runs = []

    def start(*args, **kw):
        run = Run(list(args) + hooks_args(), **kw)
        runs.append(run)
        return run
    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()


@pytest.fixture
def netns():
    ns = Netns()
    yield ns
    ns.delete()


@pytest.fixture
def nlclient():
    def run(ns, *args, timeout=120):
        proc = ns.popen([sys.executable, str(NLCLIENT), *map(str, args)])
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])
    return run
