#!/usr/bin/env python3
"""The write path (issue 11): weakref against hand-rolled std code and CPython.

    python3 bench/write_vs_std.py [BENCH_WRITE] [--repetitions N] [--min-time S]
                                  [--python PYTHON]

BENCH_WRITE is the C++ program (default build/bench/bench/bench_write; build
it with `cmake --preset bench && cmake --build --preset bench`). Each row of
bench_write.cpp times the library and the std code a user would write instead,
in the same binary. The rows run twice: in a single-threaded process, and in
a process that has had a second thread (atomic count updates on both sides;
bench_core.cpp explains why the two differ). Each process runs every
benchmark N times in random interleaved order; figures are medians. The same
steps are timed in CPython (timeit, in a subprocess of PYTHON, default this
interpreter) in the same run.

Printed: ns per operation, weakref / std (below 1: the library is faster), and
CPython / weakref (how many times faster than CPython) against both process
modes, with issue 11's target for the row. Times are CPU time on both sides
(Google Benchmark's cpu_time, timeit with time.process_time): on a shared
machine, wall time also counts other processes' time slices.
"""
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, '..', 'build', 'bench', 'bench', 'bench_write')

# The CPython side: common setup, then per row (setup, statement, operations
# per statement). Statements that loop over 1000 keys divide by 1000.
PY_PRELUDE = '''
import weakref, random
class Payload:
    __slots__ = ('value', '__weakref__')
    def __init__(self):
        self.value = 1
    def notify(self):
        self.value += 1
def _callback(_):
    pass
def _fin(n):
    pass
N = 1000
order = list(range(N))
random.Random(12345).shuffle(order)
keys = ['key%d' % i for i in range(N)]
fresh = ['new%d' % i for i in range(N)]
'''

PY_ROWS = {
    'ref_existing': ('o = Payload(); first = weakref.ref(o)',
                     'r = weakref.ref(o); del r', 1),
    'make_ref_release': ('', 'o = Payload(); r = weakref.ref(o); del r; del o', 1),
    'make_ref_death': ('', 'o = Payload(); r = weakref.ref(o); del o; del r', 1),
    'make_callback_death': ('', 'o = Payload(); r = weakref.ref(o, _callback); del o; del r', 1),
    'make_finalize_death': ('', 'o = Payload(); f = weakref.finalize(o, _fin, 1); del o; del f', 1),
    'wvd_set_existing': (
        'vals = [Payload() for _ in range(N)]\n'
        'd = weakref.WeakValueDictionary(zip(keys, vals))',
        'for j in order: d[keys[j]] = vals[j]', 1000),
    'wvd_insert_erase': (
        'vals = [Payload() for _ in range(N)]\n'
        'd = weakref.WeakValueDictionary(zip(keys, vals))',
        'for j in order:\n    d[fresh[j]] = vals[j]\n    del d[fresh[j]]', 1000),
    'wkd_insert_erase': (
        'objs = [Payload() for _ in range(2 * N)]\n'
        'd = weakref.WeakKeyDictionary((o, i) for i, o in enumerate(objs[:N]))\n'
        'pool = [objs[N + j] for j in order]',
        'for o in pool:\n    d[o] = 1\n    del d[o]', 1000),
    'weakset_add_discard': (
        'objs = [Payload() for _ in range(2 * N)]\n'
        's = weakref.WeakSet(objs[:N])\n'
        'pool = [objs[N + j] for j in order]',
        'for o in pool:\n    s.add(o)\n    s.discard(o)', 1000),
    'cache_churn': (
        'cache = weakref.WeakValueDictionary()\n'
        'ks = [keys[j] for j in order]',
        'for k in ks:\n'
        '    v = cache.get(k)\n'
        '    if v is None:\n'
        '        v = Payload()\n'
        '        cache[k] = v\n'
        '    v.value\n'
        '    del v', 1000),
    'observer_churn': (
        'alive = [Payload() for _ in range(N)]\n'
        'subscribers = weakref.WeakSet(alive)\n'
        'state = [0]\n'
        'def step():\n'
        '    i = state[0]\n'
        '    alive[i] = Payload()\n'
        '    subscribers.add(alive[i])\n'
        '    state[0] = (i + 1) % N\n'
        '    for o in subscribers:\n'
        '        o.notify()',
        'step()', 1),
}

# name shown, bench_write row, issue 11's target[, the std row when it is not
# the row's own _std]
ROWS = [
    ('ref to an object that has one', 'ref_existing', '<=2x / <=1.2x std'),
    ('make + ref + release', 'make_ref_release', '<=1.5x std'),
    ('make + ref + death, ref outlives', 'make_ref_death', ''),
    ('make + callback ref + death', 'make_callback_death', '>=5x CPython'),
    ('make + finalize + death', 'make_finalize_death', '>=10x CPython'),
    ('WVD set existing key (1000)', 'wvd_set_existing', '<=1.5x std (phase 2)'),
    ('WVD insert + erase', 'wvd_insert_erase', '<=1.2x std (phase 2)'),
    ('WKD insert + erase', 'wkd_insert_erase', '<=1.2x std (phase 2)'),
    ('WeakSet add + discard', 'weakset_add_discard', '<=1.2x std (phase 2)'),
    ('cache churn (1000 keys)', 'cache_churn', '<=1.5x std (phase 2)'),
    ('  vs std keeping expired weak_ptrs', 'cache_churn', '(reference)', 'cache_churn_keep'),
    ('observer churn (1000, + notify)', 'observer_churn', '<=1.5x std (phase 2)'),
]


def std_row(r):
    return r[3] if len(r) > 3 else r[1]


def run_cpp(program, repetitions, min_time, multithreaded):
    """Medians (ns) of every row in one process mode, keyed by row and side."""
    suffix = '_mt' if multithreaded else ''
    names = []
    for r in ROWS:
        names += [f'BM_{r[1]}{suffix}', f'BM_{std_row(r)}_std{suffix}']
    names = list(dict.fromkeys(names))
    out = subprocess.run(
        [program, '--benchmark_format=json',
         f'--benchmark_repetitions={repetitions}',
         '--benchmark_enable_random_interleaving=true',
         f'--benchmark_min_time={min_time}',
         '--benchmark_filter=^(' + '|'.join(names) + ')$'],
        check=True, capture_output=True, text=True).stdout
    runs = {}
    for b in json.loads(out)['benchmarks']:
        if b.get('run_type') != 'iteration':
            continue
        name = b['run_name'][len('BM_'):]
        if multithreaded:
            name = name[:-len('_mt')]
        side = 'std' if name.endswith('_std') else 'weakref'
        key = (name[:-len('_std')] if side == 'std' else name, side)
        runs.setdefault(key, []).append(b['cpu_time'])  # ns (default unit)
    return {key: statistics.median(v) for key, v in runs.items()}


def cpython_worker(repetitions):
    """Runs in the subprocess: times PY_ROWS, prints {row: median ns}."""
    import gc
    import time
    import timeit
    result = {}
    for row, (setup, stmt, per) in PY_ROWS.items():
        timer = timeit.Timer(stmt, PY_PRELUDE + setup, timer=time.process_time)
        number, _ = timer.autorange()
        runs = []
        for _ in range(repetitions):
            gc.collect()
            gc.disable()
            try:
                runs.append(timer.timeit(number) / number / per * 1e9)
            finally:
                gc.enable()
        result[row] = statistics.median(runs)
    print(json.dumps(result))


def run_python(python, repetitions):
    out = subprocess.run([python, os.path.abspath(__file__), '--cpython-worker',
                          str(repetitions)], check=True, capture_output=True, text=True)
    version = subprocess.run([python, '-c', 'import sys; print(sys.version.split()[0])'],
                             check=True, capture_output=True, text=True).stdout.strip()
    return version, json.loads(out.stdout)


def main():
    args = sys.argv[1:]
    if args[:1] == ['--cpython-worker']:
        cpython_worker(int(args[1]))
        return
    options = {'--repetitions': '5', '--min-time': '0.2', '--python': sys.executable}
    for opt in list(options):
        if opt in args:
            i = args.index(opt)
            options[opt] = args[i + 1]
            del args[i:i + 2]
    repetitions = int(options['--repetitions'])
    program = args[0] if args else DEFAULT
    if not os.path.exists(program):
        sys.exit(f'{program} not found: cmake --preset bench && cmake --build --preset bench')
    one = run_cpp(program, repetitions, options['--min-time'], False)
    version, py = run_python(options['--python'], repetitions)
    many = run_cpp(program, repetitions, options['--min-time'], True)

    print(f'CPython {version}; median of {repetitions} interleaved repetitions; ns per operation.')
    print('"1 thread": a single-threaded process (plain count updates on both sides);')
    print('"threads": the same after another thread has existed (atomic updates).')
    print('wr/std < 1: the library is faster than std. CPy/wr: times faster than CPython.\n')

    def cell(v):
        return f'{v:8.1f}' if v else f'{"-":>8}'

    def ratio(a, b):
        return f'{a / b:6.2f}x' if a and b else f'{"-":>7}'

    print(f'{"":34} {"---------- 1 thread ---------":>26}   {"----------- threads ----------":>26}')
    print(f'{"operation":34} {"weakref":>8} {"std":>8} {"wr/std":>7}   {"weakref":>8} {"std":>8} '
          f'{"wr/std":>7}   {"CPython":>8} {"CPy/wr1":>7} {"CPy/wrN":>7}   target')
    for r in ROWS:
        name, row, target = r[:3]
        w1, s1 = one.get((row, 'weakref')), one.get((std_row(r), 'std'))
        wn, sn = many.get((row, 'weakref')), many.get((std_row(r), 'std'))
        p = py.get(row) if len(r) == 3 else None
        print(f'{name:34} {cell(w1)} {cell(s1)} {ratio(w1, s1)}   {cell(wn)} {cell(sn)} '
              f'{ratio(wn, sn)}   {cell(p)} {ratio(p, w1)} {ratio(p, wn)}   {target}')
    print('\nstd counterparts (bench/bench_write.cpp): weak_ptr, make_shared + weak_ptr, a shared_ptr')
    print('deleter that calls back, unordered_map/unordered_set + weak_ptr (the cache erases the')
    print('expired entry; the reference row keeps it for the next set), vector<weak_ptr>.')


if __name__ == '__main__':
    main()
