#!/usr/bin/env python3
"""The collector against CPython on the shapes of issue 4, side by side.

    python3 bench/gc_vs_cpython.py [BENCH_GC] [--repetitions N]

BENCH_GC is the C++ program (default build/bench/bench/bench_gc; build it
with `cmake --preset bench && cmake --build --preset bench`). For each shape
both sides build 1M objects with automatic collection off, then time one
full collection (gc.collect() / weakref::gc::collect()); the figure is
objects examined per second of collection, the best of N runs. The
"build+collect" rows time building the garbage too.
"""
import gc
import json
import os
import subprocess
import sys
import time

N = 1_000_000


class Node:
    __slots__ = ('next',)

    def __init__(self):
        self.next = None


def cycles_garbage():
    for _ in range(N // 2):
        a = Node()
        b = Node()
        a.next = b
        b.next = a


def list_cycle():
    head = Node()
    tail = head
    for _ in range(N - 1):
        n = Node()
        tail.next = n
        tail = n
    tail.next = head


def timed_garbage(build, include_build):
    gc.collect()
    t0 = time.perf_counter()
    build()
    t1 = time.perf_counter()
    found = gc.collect()
    t2 = time.perf_counter()
    assert found >= N, found
    return (t2 - t0) if include_build else (t2 - t1)


def timed_live():
    live = [Node() for _ in range(N)]
    for i in range(1, N, 2):
        live[i].next = live[i - 1]
    gc.collect()
    t0 = time.perf_counter()
    gc.collect()
    t1 = time.perf_counter()
    del live
    return t1 - t0


def cpython(reps):
    gc.disable()
    shapes = {
        'cycles_garbage': lambda: timed_garbage(cycles_garbage, False),
        'live': timed_live,
        'list_cycle': lambda: timed_garbage(list_cycle, False),
        'total_cycles_garbage': lambda: timed_garbage(cycles_garbage, True),
        'total_list_cycle': lambda: timed_garbage(list_cycle, True),
    }
    out = {}
    for name, fn in shapes.items():
        out[name] = N / min(fn() for _ in range(reps))
    gc.enable()
    return out


def cpp(program, reps):
    res = subprocess.run(
        [program, '--benchmark_format=json', f'--benchmark_repetitions={reps}',
         '--benchmark_filter=/1000000/'],
        check=True, capture_output=True, text=True)
    data = json.loads(res.stdout)
    best = {}
    for b in data['benchmarks']:
        if b.get('run_type') != 'iteration':
            continue
        name = b['run_name'].split('/')[0].replace('BM_gc_', '').replace('BM_', '')
        rate = b['objects_per_second']
        best[name] = max(best.get(name, 0), rate)
    return best


def main(argv):
    program = 'build/bench/bench/bench_gc'
    reps = 5
    args = iter(argv[1:])
    for a in args:
        if a == '--repetitions':
            reps = int(next(args))
        else:
            program = a
    if not os.path.exists(program):
        sys.exit(f'{program} not found: cmake --preset bench && cmake --build --preset bench')
    py = cpython(reps)
    cc = cpp(program, reps)
    print(f'{"shape (1M objects)":<24}{"CPython obj/s":>16}{"weakref obj/s":>16}{"ratio":>8}')
    for name in ['cycles_garbage', 'live', 'list_cycle', 'total_cycles_garbage',
                 'total_list_cycle']:
        label = name.replace('total_', 'build+collect ')
        print(f'{label:<24}{py[name]:>16,.0f}{cc[name]:>16,.0f}{cc[name] / py[name]:>7.1f}x')
    print(f'\nper-object tracking overhead: 16 bytes (CPython: sizeof(PyGC_Head) = 16)')
    print(f'CPython {sys.version.split()[0]}; best of {reps} runs each')


if __name__ == '__main__':
    main(sys.argv)
