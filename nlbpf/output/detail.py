"""A message in full, for a person: the lines under a summary line (trace -v, errors,
slow -v).

The header's fields by name on one line, then every attribute on its own line,
nested ones indented under their parent, flags and enums as the decoder named them.
Values are written the way the rest of the output is (names, addresses, numbers),
never as Python reprs; a long value is cut, with how much was left out.
"""

import re

from ..capture.settings import MAX_SNAPLEN

INDENT = "  "
FLAG_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*|0x[0-9a-f]+)$")   # a name, or bits left unnamed
MAX_ITEMS = 16          # list items shown before "… N more"
MAX_CHARS = 96          # characters of one value shown before "… (N chars)"


def value_text(v):
    """One value on one line: {a=1 b=2} for a struct, [x, y, … 3 more] for a list."""
    if isinstance(v, dict):
        inner = " ".join(f"{k}={value_text(x)}" for k, x in list(v.items())[:MAX_ITEMS])
        more = len(v) - MAX_ITEMS
        return "{" + inner + (f" … {more} more" if more > 0 else "") + "}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) and FLAG_NAME.match(x) for x in v):
            return "|".join(v)          # flag names: IFF_UP|IFF_LOOPBACK, as C writes them
        shown = ", ".join(value_text(x) for x in v[:MAX_ITEMS])
        more = len(v) - MAX_ITEMS
        return "[" + shown + (f", … {more} more" if more > 0 else "") + "]"
    if v is None:
        return "-"
    if v == "":
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    text = str(v)
    if len(text) > MAX_CHARS:
        return f"{text[:MAX_CHARS]}… ({len(text)} chars)"
    return text


def _is_struct(v):
    """A C struct's fields (IFLA_STATS64's counters, an xfrm lifetime: lower-case names,
    plain values): one line does. Attributes (upper-case names) nest."""
    return (isinstance(v, dict) and not any(isinstance(x, (dict, list)) for x in v.values())
            and not all(FLAG_NAME.match(str(k)) for k in v))


def attr_lines(attrs, depth=0):
    lines = []
    pad = INDENT * depth
    for name, value in (attrs or {}).items():
        if isinstance(value, dict) and value and (not _is_struct(value)
                                                  or len(value) > MAX_ITEMS):
            lines.append(f"{pad}{name}:")
            lines += attr_lines(value, depth + 1)
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for i, item in enumerate(value[:MAX_ITEMS]):
                lines.append(f"{pad}{name}[{i}]:")
                lines += attr_lines(item, depth + 1)
            if len(value) > MAX_ITEMS:
                lines.append(f"{pad}… {len(value) - MAX_ITEMS} more {name}")
        else:
            lines.append(f"{pad}{name}={value_text(value)}")
    return lines


def flat_attrs(attrs, prefix=""):
    """RTA_DST=198.51.100.0 IFLA_LINKINFO.IFLA_INFO_KIND=veth ...: one line, nested
    attributes by their dotted path."""
    parts = []
    for name, value in (attrs or {}).items():
        if isinstance(value, dict) and value and not _is_struct(value):
            parts.append(flat_attrs(value, prefix=f"{prefix}{name}."))
        else:
            parts.append(f"{prefix}{name}={value_text(value)}")
    return " ".join(p for p in parts if p)


def detail_lines(decoded, truncated=False, length=None, kept=None, full=True):
    """The lines under a summary for one decoded message (decoder.json()'s dict): every
    attribute on its own line (full), or all of them on one (errors without -v)."""
    if not decoded:
        return []
    lines = []
    fields = decoded.get("fields") or {}
    if fields:
        # an empty set of flags is 0, as C writes it
        lines.append("header: " + " ".join(f"{k}={value_text(v) if v != [] else 0}"
                                           for k, v in fields.items()))
    if full:
        lines += attr_lines(decoded.get("attrs"))
    elif decoded.get("attrs"):
        lines.append("attrs: " + flat_attrs(decoded["attrs"]))
    if decoded.get("malformed"):
        lines.append(f"malformed: {value_text(decoded['malformed'])}")
    if truncated:
        lines.append(truncation_text(length, kept))
    return lines


def truncation_text(length, kept):
    """What was cut, and how to see it all."""
    if length and kept is not None and length > kept:
        hint = (f"--snaplen {length} keeps it" if length <= MAX_SNAPLEN
                else f"more than --snaplen can keep ({MAX_SNAPLEN})")
        return f"truncated: {kept} of {length} bytes kept ({hint})"
    return "truncated at the snap length"
