"""JSON lines: orjson and the standard library give the same records back."""
import json

import pytest

from nlbpf.output import jsonline


REC = {"ts": 1732270000.123456, "pid": 42, "comm": "ip", "flags": ["NLM_F_REQUEST"],
       "attrs": {"RTA_DST": "10.0.0.0", 3: "int key"}, "text": "extack: “no route” ü",
       "raw": b"\x01\x02", "big": 1 << 70, "none": None, "ok": True}


@pytest.mark.parametrize("fast", [True, False])
def test_both_encoders_give_the_same_record(monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(jsonline, "orjson", None)
    elif jsonline.orjson is None:
        pytest.skip("orjson is not installed")
    line = jsonline.dumps(REC)
    assert "\n" not in line and "“no route” ü" in line          # UTF-8 as is
    back = json.loads(line)
    assert back == json.loads(json.dumps(REC, default=str, ensure_ascii=False))
    assert back["raw"] == str(b"\x01\x02") and back["big"] == 1 << 70
