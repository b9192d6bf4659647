"""hafast.lib.gcfreeze: the daemon's processes freeze their built state out of the
cyclic collector's walks, after one collection that frees the previous state's
cycles; any other process (this one) is left alone."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from hafast.lib import gcfreeze


def test_not_enabled_it_leaves_the_process_alone() -> None:
    before = gc.get_freeze_count()
    assert gcfreeze.settle() == 0.0
    assert gc.get_freeze_count() == before


def test_enabled_it_frees_old_cycles_and_freezes_what_lives() -> None:
    script = textwrap.dedent("""
        import gc, weakref
        from hafast.lib import gcfreeze

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return a

        gcfreeze.enable()
        old = cycle()
        gcfreeze.settle()
        assert gc.get_freeze_count() > 0
        gone = weakref.ref(old)
        del old  # a frozen cycle dropped: the next settle frees it
        live = cycle()
        took = gcfreeze.settle()
        assert gone() is None, "the old cycle outlived the settle"
        assert took > 0 and gc.get_freeze_count() > 0
        # what is frozen is out of the collector's generations
        assert all(o is not live for o in gc.get_objects(generation=2))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
