# Runs inside gdb (tests/gdb/CMakeLists.txt):
#
#   gdb -batch -nx -ex "source tools/gdb/weakref-gdb.py" \
#       -x tests/gdb/check_printers.py build/.../gdb_target
#
# Stops the program in gdb_checkpoint(), goes up to scenario(), runs every
# command of printers.txt and matches what it prints against the expected
# regular expression, where @NAME@ is replaced by what the program printed
# on its "value NAME = TEXT" line. Prints one line per check, kills the
# program and quits gdb with status 0 (all passed) or 1.
import os
import re
import sys
import tempfile

import gdb

TABLE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "printers.txt")


def load_table():
    checks = []
    with open(TABLE) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command, sep, expected = line.partition(" => ")
            if not sep:
                raise SystemExit("%s:%d: no ' => '" % (TABLE, number))
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
    checks = load_table()
    for number, command, expected in checks:
        try:
            got = gdb.execute(command, to_string=True).strip()
        except gdb.error as e:
            got = "gdb error: %s" % e
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
    print("%d of %d checks passed" % (len(checks) - failures, len(checks)))
    return 1 if failures else 0


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
