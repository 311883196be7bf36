"""A real Prometheus server for the tests: Debian's `prometheus` scraping a target,
queried through its HTTP API (what a node operator's stack does)."""
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool):
    """The path of a tool scripts/setup.sh --test installs: missing is a failure, not a
    skip (it would hide the test in CI)."""
    path = shutil.which(tool)
    assert path, f"{tool} is missing: run scripts/setup.sh --test"
    return path


def get(url, timeout=10, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode(), r.headers.get("Content-Type", "")


class Prometheus:
    """prometheus scraping `target` (host:port) every second, with `rule_files`."""

    def __init__(self, target, rule_files=()):
        self.dir = Path(tempfile.mkdtemp(prefix="nlbpf-prom-"))
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(Path(f).resolve()) for f in rule_files],
                  "scrape_configs": [{"job_name": "nlbpf", "static_configs":
                                      [{"targets": [target]}]}]}
        (self.dir / "prometheus.yml").write_text(json.dumps(config))   # JSON is YAML
        self.log = open(self.dir / "log", "w")
        self.proc = subprocess.Popen(
            [need("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                get(self.url + "/-/ready", timeout=2)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("prometheus did not start:\n" + self.logs())
                time.sleep(0.3)

    def logs(self):
        self.log.flush()
        return (self.dir / "log").read_text()[-4000:]

    def query(self, promql):
        """The instant vector or scalar of a PromQL query: [(labels, value)]; raises on
        an error from the server (a bad expression)."""
        body, _ = get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        data = reply["data"]
        if data["resultType"] == "vector":
            return [(r["metric"], float(r["value"][1])) for r in data["result"]]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return data["result"]

    def wait_for(self, promql, want, timeout=60):
        """Poll until the query's single value is `want`; the last result if it never is."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.query(promql)
            if len(got) == 1 and got[0][1] == want:
                return got
            time.sleep(0.5)
        return got

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def samples(text):
    """An exposition's samples: [(name, labels, value)] (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def scrape_until(url, check, timeout=30):
    """Scrape url until check(samples) is true; the last samples either way."""
    deadline = time.monotonic() + timeout
    while True:
        got = samples(get(url)[0])
        if check(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def value(got, name, **labels):
    """The sum of name's samples whose labels include `labels`."""
    return sum(v for n, l, v in got if n == name and all(l.get(k) == w for k, w in labels.items()))


def histogram_ok(got, name, **labels):
    """name's buckets for `labels`: cumulative, ending at +Inf == _count. Returns _count."""
    buckets = sorted(((float(l["le"]), v) for n, l, v in got if n == name + "_bucket"
                      and all(l.get(k) == w for k, w in labels.items())))
    counts = [v for _, v in buckets]
    assert buckets and counts == sorted(counts), buckets
    total = value(got, name + "_count", **labels)
    assert buckets[-1] == (float("inf"), total), (buckets[-1], total)
    return total
