#!/usr/bin/env python3
"""Print deploy/prometheus/alerts.yml as a PrometheusRule for the Prometheus Operator:

    python3 deploy/prometheus/prometheusrule.py | kubectl apply -f -

The rules live in alerts.yml only (promtool checks and tests them there)."""
import json
import sys
from pathlib import Path

import yaml

rules = yaml.safe_load((Path(__file__).parent / "alerts.yml").read_text())
rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "nlbpf", "namespace": sys.argv[1] if len(sys.argv) > 1 else "nlbpf",
                     "labels": {"app.kubernetes.io/name": "nlbpf"}},
        "spec": {"groups": rules["groups"]}}
json.dump(rule, sys.stdout, indent=2)     # JSON is YAML: kubectl takes it as it is
print()
