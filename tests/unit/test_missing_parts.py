"""A machine without bcc or kernel headers: one line, non-zero exit, no traceback."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the root check comes first")


def run(args, env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "nlbpf.cli"] + args, capture_output=True,
                          text=True, env=env, timeout=120)


def test_missing_bcc(tmp_path):
    # a bcc that cannot be imported shadows the real one
    (tmp_path / "bcc.py").write_text("raise ImportError('No module named bcc')\n")
    r = run(["trace", "--duration", "1"], {"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.strip() == ("nlbpf: bcc is not importable: install python3-bpfcc and use a "
                                "venv made with --system-site-packages (scripts/setup.sh does both)")


def test_missing_headers(tmp_path):
    r = run(["errors", "--duration", "1"], {"BCC_KERNEL_SOURCE": str(tmp_path / "nothing")})
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "holds no kernel headers" in r.stderr
