#!/usr/bin/env python3
"""Core weak-reference operations: C++ (weakref), std::weak_ptr and CPython.

    python3 bench/core_vs_cpython.py [BENCH_CORE] [--repetitions N]

BENCH_CORE is the C++ program (default build/bench/bench/bench_core; build it
with `cmake --preset bench && cmake --build --preset bench`). It runs the
Google Benchmark program (which times the library and its std counterpart in
the same run), times the same step in this CPython with timeit, and prints ns
per operation side by side, in a single-threaded process and in a
multi-threaded one (bench_core.cpp explains why they differ), with the
ratios std / weakref (above 1: the library is faster than std) and
CPython / weakref (how many times faster than CPython, against both columns).
Figures are the median of N repetitions on each side.
"""
import gc
import json
import os
import statistics
import subprocess
import sys
import timeit
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, '..', 'build', 'bench', 'bench', 'bench_core')


class Payload:
    __slots__ = ('value', '__weakref__')

    def __init__(self):
        self.value = 1


def _callback(_):
    pass


# name shown, C++ benchmark, std benchmark, CPython setup, CPython statement
ROWS = [
    ('r() on a live referent', 'BM_ref_lock', 'BM_weak_ptr_lock',
     'o = Payload(); r = weakref.ref(o)', 's = r(); del s'),
    ('r() on a dead referent', 'BM_ref_lock_dead', 'BM_weak_ptr_lock_dead',
     'o = Payload(); r = weakref.ref(o); del o', 'r()'),
    ('strong copy + release', 'BM_strong_copy/with_weakref:0', 'BM_shared_ptr_copy',
     'o = Payload()', 'c = o; del c'),
    ('make + drop an object', 'BM_make', 'BM_make_shared',
     '', 'Payload()'),
    ('make + first weakref + drop', 'BM_make_with_ref', 'BM_make_shared_with_weak_ptr',
     '', 'o = Payload(); r = weakref.ref(o); del o, r'),
    ('death with one callback', 'BM_death_with_callback', None,
     '', 'o = Payload(); r = weakref.ref(o, _callback); del o; del r'),
]


def mt(name):
    """The multi-threaded-process variant of a benchmark (bench_core.cpp)."""
    base, _, arg = name.partition('/')
    return base + '_mt' + ('/' + arg if arg else '')


def run_cpp(program, repetitions):
    names = set()
    for _, ours, std, _, _ in ROWS:
        for n in (ours, std):
            if n:
                names.update({n.split('/')[0], mt(n).split('/')[0]})
    out = subprocess.run(
        [program, '--benchmark_format=json',
         f'--benchmark_repetitions={repetitions}',
         '--benchmark_report_aggregates_only=true',
         '--benchmark_filter=^(' + '|'.join(sorted(names)) + ')(/.*)?$'],
        check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)['benchmarks']:
        if b.get('aggregate_name') == 'median':
            medians[b['run_name']] = b['real_time']  # ns (default unit)
    return medians


def run_python(setup, stmt, repetitions):
    env = {'Payload': Payload, 'weakref': weakref, '_callback': _callback}
    timer = timeit.Timer(stmt, setup, globals=env)
    number, _ = timer.autorange()
    number = max(number, 100_000)
    gc.disable()
    try:
        runs = [timer.timeit(number) / number * 1e9 for _ in range(repetitions)]
    finally:
        gc.enable()
    return statistics.median(runs)


def main():
    args = sys.argv[1:]
    repetitions = 5
    if '--repetitions' in args:
        i = args.index('--repetitions')
        repetitions = int(args[i + 1])
        del args[i:i + 2]
    program = args[0] if args else DEFAULT
    if not os.path.exists(program):
        sys.exit(f'{program} not found: cmake --preset bench && cmake --build --preset bench')
    cpp = run_cpp(program, repetitions)
    print(f'CPython {sys.version.split()[0]}; median of {repetitions} repetitions; ns per operation.')
    print('"1 thread": a single-threaded process, where libstdc++ and this library use plain')
    print('count updates; "threads": the same after another thread has existed (atomic updates).')
    print('std/weakref > 1: the library is faster than std; CPython/weakref: times faster than CPython.\n')
    head = (f'{"operation":30} {"weakref":>8} {"std":>8} {"std/wr":>7}   {"weakref":>8} {"std":>8} {"std/wr":>7}'
            f'   {"CPython":>8} {"CPy/wr1":>7} {"CPy/wrN":>7}')
    print(f'{"":30} {"---------- 1 thread ----------":>25}   {"----------- threads ----------":>25}')
    print(head)

    def cell(v):
        return f'{v:8.2f}' if v else f'{"-":>8}'

    def ratio(a, b):
        return f'{a / b:6.2f}x' if a and b else f'{"-":>7}'

    for name, ours, std, setup, stmt in ROWS:
        c1, s1 = cpp.get(ours), cpp.get(std) if std else None
        c2, s2 = cpp.get(mt(ours)), cpp.get(mt(std)) if std else None
        p = run_python(setup, stmt, repetitions)
        print(f'{name:30} {cell(c1)} {cell(s1)} {ratio(s1, c1)}   {cell(c2)} {cell(s2)} {ratio(s2, c2)}'
              f'   {cell(p)} {ratio(p, c1)} {ratio(p, c2)}')
    print('\nCPy/wr1, CPy/wrN: CPython against the 1-thread and the threads column (CPython\'s counts')
    print('are never atomic: the GIL serializes them; the 1-thread column is the like-for-like one).')

if __name__ == '__main__':
    main()
