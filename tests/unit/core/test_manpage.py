"""hafast(8) stays current: every option of the command line is in the man page, and
the page renders with no groff warning."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from hafast.app.cmdline import build_parser
from tests.conftest import require_tool

PAGE = Path(__file__).resolve().parents[3] / "packaging" / "hafast.8"


def options() -> list[str]:
    out = []
    for action in build_parser()._actions:
        if action.help == argparse.SUPPRESS:
            continue
        out += [o for o in action.option_strings if o.startswith("--")]
    return out


def test_every_option_is_documented() -> None:
    text = PAGE.read_text().replace("\\-", "-")
    missing = [o for o in options() if o not in text]
    assert missing == [], f"options missing from packaging/hafast.8: {missing}"


def test_the_page_renders_cleanly() -> None:
    groff = require_tool("groff")
    res = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(PAGE)],
                         capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
