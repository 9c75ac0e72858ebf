# Runs inside gdb (tests/gdb/CMakeLists.txt):
#
#   WEAKREF_GDB_CHECKS=GROUP gdb -batch -nx -ex "source tools/gdb/weakref-gdb.py" \
#       -x tests/gdb/check_printers.py build/.../gdb_target
#
# Stops the program in gdb_checkpoint(), goes up to scenario(), runs every
# command of printers.txt in GROUP and matches what it prints against the
# expected regular expression, where @NAME@ is replaced by what the program
# printed on its "value NAME = TEXT" line. Prints one line per check, kills
# the program and quits gdb with status 0 (all passed), 1 (a check failed)
# or 77 (nothing failed, but checks were skipped; the reason is printed on a
# "SKIPPED: " line).
#
# GROUP (default "printers") selects the lines of printers.txt:
#   printers  the lines without a tag: what the printers show, read from
#             memory only. They must pass in every build.
#   calls     the lines tagged [calls]: expressions that make gdb call a
#             function in the program. gdb 13 cannot on some machines (on a
#             CPU with AMX state, Linux refuses its ptrace write of the
#             extended registers: "Couldn't write extended state status:
#             Bad address"); when gdb answers that, the check is skipped
#             with that reason instead of failed.
#   layout    the lines tagged [debuginfo]: they need the library's own
#             debug information. WEAKREF_GDB_LIBRARY_DEBUG_INFO=0 (set by
#             CMake for a library built without -g) skips them.
import os
import re
import sys
import tempfile

import gdb

TABLE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "printers.txt")
GROUPS = {"printers": "", "calls": "[calls]", "layout": "[debuginfo]"}

# What gdb says when it cannot call a function in the program on this
# machine (not a bug of the printers or of the program).
CALLS_UNSUPPORTED = "Couldn't write extended state status"


def load_table(group):
    checks = []
    with open(TABLE) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            tag = ""
            m = re.match(r"\s*(\[[a-z]+\])\s+(.*)$", line)
            if m:
                tag, line = m.groups()
                if tag not in GROUPS.values():
                    raise SystemExit("%s:%d: unknown tag %s" % (TABLE, number, tag))
            command, sep, expected = line.partition(" => ")
            if not sep:
                raise SystemExit("%s:%d: no ' => '" % (TABLE, number))
            if tag == GROUPS[group]:
                checks.append((number, command.strip(), expected.strip()))
    return checks


def program_values(output):
    values = {}
    for line in output.splitlines():
        m = re.match(r"value (\S+) = (.*)$", line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def expand(pattern, values):
    def sub(m):
        if m.group(1) not in values:
            raise KeyError("the program printed no 'value %s = ...' line" % m.group(1))
        return re.escape(values[m.group(1)])
    return re.sub(r"@([A-Za-z0-9_.]+)@", sub, pattern)


def main():
    group = os.environ.get("WEAKREF_GDB_CHECKS", "printers")
    if group not in GROUPS:
        print("FAIL: WEAKREF_GDB_CHECKS=%s: not one of %s" % (group, ", ".join(GROUPS)))
        return 1
    checks = load_table(group)
    if not checks:
        print("FAIL: printers.txt has no check in group %s" % group)
        return 1
    if group == "layout" and os.environ.get("WEAKREF_GDB_LIBRARY_DEBUG_INFO") == "0":
        print("SKIPPED: the library is built without debug information (-g), so its internal "
              "types cannot be compared with the printers' fallback layout here; a Debug or "
              "RelWithDebInfo build checks them")
        return 77
    if "weakref_printers" not in sys.modules:
        print("FAIL: the printers are not loaded (source tools/gdb/weakref-gdb.py first)")
        return 1
    gdb.execute("set pagination off")
    gdb.execute("set width unlimited")
    gdb.execute("set confirm off")
    gdb.execute("break gdb_checkpoint")
    # The program's own stdout, with its "value NAME = TEXT" lines.
    fd, path = tempfile.mkstemp(prefix="weakref-gdb-", suffix=".txt")
    os.close(fd)
    try:
        gdb.execute("run > '%s'" % path)
        with open(path) as f:
            output = f.read()
    finally:
        os.unlink(path)
    sys.stdout.write(output)
    values = program_values(output)
    gdb.execute("up", to_string=True)

    failures = 0
    skipped = []
    for number, command, expected in checks:
        try:
            got = gdb.execute(command, to_string=True).strip()
        except gdb.error as e:
            got = "gdb error: %s" % e
            if group == "calls" and CALLS_UNSUPPORTED in str(e):
                print("skip  %s" % command)
                print("        %s" % got)
                skipped.append(str(e))
                continue
        shown = re.sub(r"^\$\d+ = ", "", got)
        try:
            ok = re.fullmatch(expand(expected, values), shown, re.S) is not None
        except KeyError as e:
            ok, got = False, "%s (%s)" % (got, e)
        print("%s  %s" % ("ok  " if ok else "FAIL", command))
        print("        %s" % got)
        if not ok:
            failures += 1
            print("        expected (printers.txt:%d): %s" % (number, expected))
    passed = len(checks) - failures - len(skipped)
    print("%d of %d checks passed, %d failed, %d skipped"
          % (passed, len(checks), failures, len(skipped)))
    if failures:
        return 1
    if skipped:
        print("SKIPPED: %d check(s) need gdb to call a function in the program, and this gdb "
              "cannot on this machine: \"%s\" (gdb 13 on a CPU with AMX state)"
              % (len(skipped), skipped[0]))
        return 77
    return 0


try:
    status = main()
except Exception as e:  # noqa: BLE001 -- any error fails the test
    print("FAIL: %s: %s" % (type(e).__name__, e))
    status = 1
sys.stdout.flush()
try:
    gdb.execute("kill")
except gdb.error:
    pass
gdb.execute("quit %d" % status)
