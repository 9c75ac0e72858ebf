# Loads the weakref GDB pretty-printers (docs/gdb.md):
#
#     (gdb) source /path/to/weakref-gdb.py
#
# or put that line in ~/.gdbinit. It works from the source tree
# (tools/gdb/) and from an installation (<prefix>/share/weakref/gdb/): the
# printers module, weakref_printers.py, is looked up next to this file.
import os
import sys

import gdb

_weakref_printers_dir = os.path.dirname(os.path.realpath(__file__))
if _weakref_printers_dir not in sys.path:
    sys.path.insert(0, _weakref_printers_dir)

import weakref_printers  # noqa: E402

# Auto-loaded for an objfile: its printers; sourced by hand: every program.
weakref_printers.register_printers(gdb.current_objfile())
