#!/usr/bin/env python3
"""Differential fuzzing: random scenarios under CPython (oracle.py) and the
replay, compared with compare.py; a disagreement is shrunk to a minimal
scenario and saved with its oracle trace.

    python3 tools/conformance/diff_fuzz.py --replay build/dev/tools/replay/weakref-replay \\
        [--seed 1] [--count 300] [--first 0] [--jobs 2] [--save-dir DIR | --no-save]

Scenario i of seed S is gen_scenarios.generate(S, i) (see gen_scenarios.py);
`--seed S --first I --count 1` reruns exactly that one. Two runs agree when
the exit statuses are equal, stderr is equal when a run fails (status 2:
the same `error: line N: ...`) and compare.py accepts the traces.

On a disagreement the oracle is run again a few times: if CPython itself
does not always give one trace the scenario is counted as "unstable" and
skipped. It is also run with the objects allocated in other orders (runs of
`new` lines of fresh names permuted, which SPEC.md says changes nothing):
if CPython's trace changes, the scenario observes the order in which a
collection handles different garbage objects, which SPEC.md leaves
unspecified, and it is counted as "garbage-order" and skipped
(docs/conformance.md explains both). Otherwise the scenario is shrunk (delta debugging over its lines, then one line at a
time, then callback tokens made plain), every candidate kept only when the
oracle still accepts it the same way and the replay still disagrees (and
not by garbage order), and
saved as DIR/fuzz_S_I.scn with .expected (and .stderr) recorded by
oracle.py. Exit status: 0 when every stable scenario agreed, 1 otherwise,
2 on a usage error.
"""
import argparse
import collections
import concurrent.futures
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout, redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import gen_scenarios  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CONFORMANCE = os.environ.get(
    'CONFORMANCE', os.path.join(ROOT, '..', 'shared', 'conformance'))
TIMEOUT = 60


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Runner:
    def __init__(self, replay, conformance, python):
        self.replay = replay
        self.oracle = os.path.join(conformance, 'oracle.py')
        self.python = python
        self.compare_mod = load(os.path.join(conformance, 'compare.py'), 'compare')
        self.ops = load(self.oracle, 'oracle_ops').OPS  # every SPEC operation
        # compare.py reports on sys.stdout: in-process calls are serialized,
        # and so is our own printing.
        self.lock = threading.Lock()

    def print(self, *args):
        with self.lock:
            print(*args)

    def run(self, cmd, path):
        try:
            p = subprocess.run(cmd + [path], capture_output=True, timeout=TIMEOUT)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return 124, b'', b'timeout'

    def oracle_run(self, path):
        return self.run([self.python, self.oracle], path)

    def replay_run(self, path):
        return self.run([self.replay], path)

    def compare(self, scn, exp, act):
        """(agree, one-line reason) for two traces, by compare.py's rule."""
        with tempfile.TemporaryDirectory() as d:
            e, a = os.path.join(d, 'e'), os.path.join(d, 'a')
            with open(e, 'wb') as fh:
                fh.write(exp)
            with open(a, 'wb') as fh:
                fh.write(act)
            buf = io.StringIO()
            with self.lock, redirect_stdout(buf), redirect_stderr(buf):
                rc = self.compare_mod.main(['compare.py', '--brief', '--scenario', scn, e, a])
        return rc == 0, buf.getvalue().strip()

    def verdict(self, path, oracle=None):
        """(agree, reason, oracle result) for the scenario file."""
        o = oracle or self.oracle_run(path)
        r = self.replay_run(path)
        if o[0] not in (0, 2):
            return True, 'oracle failed', o  # not a valid scenario
        if r[0] != o[0]:
            err = r[2].decode(errors='replace').strip().splitlines()[:1]
            return False, f"exit status {r[0]}, oracle {o[0]} {err}", o
        if o[0] == 2 and r[2] != o[2]:
            return False, (f"stderr {r[2].decode(errors='replace').strip()!r}, oracle "
                           f"{o[2].decode(errors='replace').strip()!r}"), o
        ok, why = self.compare(path, o[1], r[1])
        return ok, why, o


def write(path, text):
    with open(path, 'w') as fh:
        fh.write(text)


def oracle_stable(runner, path, first, runs=4):
    return all(runner.oracle_run(path)[:3] == first[:3] for _ in range(runs))


def allocation_variants(lines, count=3):
    """The scenario with its objects made in other orders: each run of
    consecutive `new` lines binding names the file has not mentioned before
    is reversed (then shuffled). Under SPEC.md these variants have the same
    trace; under CPython a collection's garbage order follows allocation
    (its gc list order), so a trace that changes tells that the scenario
    observes that order, which SPEC.md does not specify."""
    seen, runs, run = set(), [], []
    for k, line in enumerate(lines):
        toks = line.split('#', 1)[0].split()
        if len(toks) == 2 and toks[0] == 'new' and toks[1] not in seen:
            run.append(k)
        else:
            if len(run) > 1:
                runs.append(run)
            run = []
        seen.update(toks[1:])
    if len(run) > 1:
        runs.append(run)
    variants = []
    rng = __import__('random').Random(len(lines))
    for v in range(count):
        out = list(lines)
        for r in runs:
            order = list(reversed(r)) if v == 0 else rng.sample(r, len(r))
            for dst, src in zip(r, order):
                out[dst] = lines[src]
        if out != lines and out not in variants:
            variants.append(out)
    return variants


def order_sensitive(runner, lines, oracle, workdir):
    """Whether CPython's trace changes with the objects' allocation order."""
    path = os.path.join(workdir, 'variant.scn')
    for variant in allocation_variants(lines):
        write(path, '\n'.join(variant) + '\n')
        o = runner.oracle_run(path)
        if o[0] != oracle[0] or o[2] != oracle[2] or not runner.compare(path, oracle[1], o[1])[0]:
            return True
    return False


def shrink(runner, lines, want_status, workdir):
    """Delta debugging (ddmin) over lines, then single lines, then plain
    callback tokens. A candidate must keep the oracle's exit status and
    still disagree."""
    path = os.path.join(workdir, 'cand.scn')
    tests = 0

    def interesting(cand):
        nonlocal tests
        tests += 1
        write(path, '\n'.join(cand) + '\n')
        o = runner.oracle_run(path)
        if o[0] != want_status:
            return False
        agree, _, _ = runner.verdict(path, o)
        return not agree and not order_sensitive(runner, cand, o, workdir)

    n = 2
    while len(lines) >= 2:
        chunk = max(1, len(lines) // n)
        parts = [lines[i:i + chunk] for i in range(0, len(lines), chunk)]
        for k in range(len(parts)):
            cand = [l for j, p in enumerate(parts) if j != k for l in p]
            if interesting(cand):
                lines, n = cand, max(n - 1, 2)
                break
        else:
            if n >= len(lines):
                break
            n = min(n * 2, len(lines))
    changed = True
    while changed:
        changed = False
        for k in range(len(lines) - 1, -1, -1):
            cand = lines[:k] + lines[k + 1:]
            if interesting(cand):
                lines, changed = cand, True
        for k, line in enumerate(lines):
            plain = re.sub(r'\s+cb(:\S+)?$', '', line)
            for simpler in (plain, re.sub(r'cb:\S+$', 'cb', line)):
                if simpler != line and interesting(lines[:k] + [simpler] + lines[k + 1:]):
                    lines, changed = lines[:k] + [simpler] + lines[k + 1:], True
                    break
    # Tidy: drop comments, blank lines and odd spacing if that changes
    # nothing.
    tidy = [' '.join(l.split('#', 1)[0].split()) for l in lines]
    tidy = [l for l in tidy if l]
    if tidy != lines and interesting(tidy):
        lines = tidy
    return lines, tests


def save(runner, save_dir, name, lines, header):
    os.makedirs(save_dir, exist_ok=True)
    base = os.path.join(save_dir, name)
    write(base + '.scn', ''.join(f"# {h}\n" for h in header) + '\n'.join(lines) + '\n')
    o = runner.oracle_run(base + '.scn')
    with open(base + '.expected', 'wb') as fh:
        fh.write(o[1])
    if o[0] == 2:
        with open(base + '.stderr', 'wb') as fh:
            fh.write(o[2])
    return base + '.scn'


def check_one(runner, seed, index, workdir):
    text = gen_scenarios.generate(seed, index)
    path = os.path.join(workdir, f"s{index}.scn")
    write(path, text)
    agree, why, o = runner.verdict(path)
    return index, text, agree, why, o


def stats_of(text, trace, st):
    for line in text.splitlines():
        toks = line.split('#', 1)[0].split()
        if toks:
            st['op ' + toks[0]] += 1
            if toks[0] == 'exit':
                break
    for line in trace.decode(errors='replace').splitlines():
        body = line.split(': ', 1)[-1]
        word = body.split()[0] if body else ''
        if word in ('cb', 'fin', 'unraisable'):
            st['event ' + word] += 1
        elif body.startswith('collect -> '):
            st['collect > 0' if body != 'collect -> 0' else 'collect = 0'] += 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--replay', required=True)
    ap.add_argument('--conformance', default=DEFAULT_CONFORMANCE)
    ap.add_argument('--python', default=os.environ.get('PYTHON', sys.executable))
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--first', type=int, default=0)
    ap.add_argument('--count', type=int, default=300)
    ap.add_argument('--jobs', type=int, default=1)
    ap.add_argument('--save-dir', default=os.path.join(ROOT, 'tests', 'conformance', 'regressions'))
    ap.add_argument('--no-save', action='store_true', help='report, shrink, but write nothing')
    ap.add_argument('--max-failures', type=int, default=3, help='stop after this many')
    ap.add_argument('--stats', action='store_true', help='print op and event counts')
    a = ap.parse_args(argv[1:])
    if not os.access(a.replay, os.X_OK):
        ap.error(f"not an executable: {a.replay}")
    if not os.path.isfile(os.path.join(a.conformance, 'oracle.py')):
        ap.error(f"no oracle.py in {a.conformance}")
    runner = Runner(os.path.abspath(a.replay), a.conformance, a.python)

    start = time.time()
    counts = collections.Counter()
    st = collections.Counter()
    failures = []
    with tempfile.TemporaryDirectory() as workdir, \
            concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as pool:
        indices = range(a.first, a.first + a.count)
        for index, text, agree, why, o in pool.map(
                lambda i: check_one(runner, a.seed, i, workdir), indices):
            counts['run'] += 1
            counts[{0: 'status 0', 2: 'status 2'}.get(o[0], 'oracle failed')] += 1
            if re.search(r'^exit\b', text, re.M):
                counts['with exit'] += 1
            stats_of(text, o[1], st)
            if agree:
                continue
            if len(failures) >= a.max_failures:
                counts['not shrunk'] += 1
                continue
            path = os.path.join(workdir, f"s{index}.scn")
            if not oracle_stable(runner, path, o):
                counts['unstable'] += 1
                runner.print(f"unstable: seed {a.seed} scenario {index}: CPython gives more than "
                             f"one trace; skipped")
                continue
            if order_sensitive(runner, text.rstrip('\n').split('\n'), o, workdir):
                counts['order'] += 1
                runner.print(f"garbage order: seed {a.seed} scenario {index}: CPython's trace "
                             f"depends on the allocation order; skipped ({why})")
                continue
            runner.print(f"DISAGREE: seed {a.seed} scenario {index}: {why}")
            lines, tests = shrink(runner, text.rstrip('\n').split('\n'), o[0], workdir)
            write(os.path.join(workdir, 'min.scn'), '\n'.join(lines) + '\n')
            _, why_min, _ = runner.verdict(os.path.join(workdir, 'min.scn'))
            runner.print(f"  shrunk to {len(lines)} line(s) in {tests} runs: {why_min}")
            for l in lines:
                runner.print(f"    {l}")
            if not a.no_save:
                saved = save(runner, a.save_dir, f"fuzz_{a.seed}_{index}", lines, [
                    f"Found by tools/conformance/diff_fuzz.py --seed {a.seed} "
                    f"--first {index} --count 1 (shrunk).",
                    f"Replay disagreed with CPython: {why_min}"])
                runner.print(f"  saved {os.path.relpath(saved)}")
            failures.append(index)
    missing = sorted(op for op in runner.ops if st['op ' + op] == 0)
    disagreed = len(failures) + counts['not shrunk']
    agreed = counts['run'] - disagreed - counts['unstable'] - counts['order']
    runner.print(
        f"diff_fuzz: seed {a.seed}, scenarios {a.first}..{a.first + a.count - 1}: "
        f"{counts['run']} run, {agreed} agreed, {disagreed} disagreed, "
        f"{counts['unstable']} unstable, {counts['order']} garbage-order "
        f"(oracle exit 0: {counts['status 0']}, exit 2: {counts['status 2']}; "
        f"{counts['with exit']} with exit) in {time.time() - start:.0f}s")
    runner.print(
        f"  events: {st['event cb']} cb, {st['event fin']} fin, {st['event unraisable']} "
        f"unraisable; collections that destroyed something: {st['collect > 0']}"
        + (f"; ops never generated: {' '.join(missing)}" if missing else ''))
    if a.stats:
        for k, v in sorted(st.items()):
            runner.print(f"  {k}: {v}")
    return 1 if disagreed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
