"""List blocks keepalived 2.2.7 reads word by word (``read_value_block`` in lib/parser.c):
``vrrp_sync_group``/``track_group`` ``group``, ``garp_group`` ``interfaces`` and
``notification_email``.  Every word is an item however the words are spread over lines,
so ``group { A B }`` on one line, a line ``A B`` inside the block, and one name per line
all mean the same.  Checked against keepalived's own reading: ``keepalived -t`` accepts
each spelling, and its ``-d`` dump of the same configs (run by hand, 2.2.7) lists
"VRRP member instances: A B C" and every address of "Email notification to".

The other list blocks (``track_script``, ``virtual_ipaddress``, ...) take one item per
line (``alloc_value_block``), the line's other words being that item's options: they are
not read this way, and ``track_script { a b }`` stays an error in both.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hafast.config.loader import load_text
from tests.conftest import require_tool

_INSTANCES = "".join(
    f"vrrp_instance {n} {{\n interface eth0\n virtual_router_id {i}\n"
    f" virtual_ipaddress {{\n  10.0.0.{i}\n }}\n}}\n"
    for i, n in enumerate("ABC", start=1)
)

SPELLINGS = {
    "one_line": "group { A B C }",
    "two_per_line": "group {\n  A B\n  C\n}",
    "one_per_line": "group {\n  A\n  B\n  C\n}",
    "brace_on_next_line": "group\n{\n  A B C\n}",
}


def _keepalived_accepts(tmp_path: Path, text: str) -> None:
    exe = require_tool("keepalived")
    path = tmp_path / "k.conf"
    path.write_text(text)
    proc = subprocess.run([exe, "-t", "-f", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_sync_group_members_every_spelling(spelling: str, tmp_path: Path) -> None:
    text = _INSTANCES + f"vrrp_sync_group G {{\n{SPELLINGS[spelling]}\n}}\n"
    r = load_text(text)
    assert r.diagnostics == []
    assert [g.group for g in r.config.sync_groups] == [("A", "B", "C")]
    _keepalived_accepts(tmp_path, text)


def test_notification_email_every_word(tmp_path: Path) -> None:
    text = ("global_defs {\n notification_email { a@x.org b@x.org }\n"
            " notification_email {\n  c@x.org d@x.org\n  e@x.org\n }\n}\n")
    r = load_text(text)
    assert r.diagnostics == []
    # the first word of each line was all hafast kept before: alerts to a third
    # of the recipients, without a word
    assert r.config.global_defs.notification_email == (
        "a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org")
    _keepalived_accepts(tmp_path, text)


def test_track_group_and_garp_group_interfaces_load(tmp_path: Path) -> None:
    text = ("track_group TG {\n group { A B }\n}\n"
            "garp_group {\n garp_interval 0.1\n interfaces { eth0 lo }\n}\n")
    r = load_text(text)
    # garp_group is warned as a whole; the track group's members are read as a list
    # (A and B are no instances: keepalived's "doesn't exist - ignoring")
    assert r.errors == []
    assert [d.message for d in r.warnings if d.code != "unsupported"] == [
        "vrrp instance A specified in track group TG doesn't exist - ignoring",
        "vrrp instance B specified in track group TG doesn't exist - ignoring",
        "Static track group TG has no VRRP instance(s)"]


def test_per_line_lists_are_not_read_word_by_word() -> None:
    r = load_text("vrrp_script a {\n script /bin/true\n}\nvrrp_script b {\n"
                  " script /bin/true\n}\n" + _INSTANCES.replace(
                      " virtual_router_id 1\n", " virtual_router_id 1\n track_script { a b }\n"))
    assert [d.message.split(" (")[0] for d in r.errors] == [
        "'b' after a tracked name: expected 'weight W [reverse]'"]
