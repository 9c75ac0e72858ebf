#!/usr/bin/env python3
"""The weak containers' memory per entry against CPython's, side by side.

    python3 bench/cpython_containers.py [BENCH_CONTAINERS] [--n N] [--no-timing]

BENCH_CONTAINERS is the C++ program (default build/bench/bench/bench_containers;
build it with `cmake --preset bench && cmake --build --preset bench`).

Memory: both sides fill one container with N entries over objects made
beforehand (for the dictionaries, WeakValueDictionary keys are ints made
beforehand too; WeakKeyDictionary values are the small int 1), and count the
bytes the filling adds: tracemalloc's traced memory for CPython; for C++,
what operator new hands out plus the library's small-block pages in use
(weakref::detail::pool_committed_bytes()). C++ is shown twice:
objects already weakly referenced (their side table exists), and objects
never weakly referenced before, whose side table the entry creates (CPython
objects carry their 8-byte weakref slot from birth, so CPython has no such
case).

Timing (unless --no-timing): CPython's lookup (d[k], x in s) per operation,
next to the C++ lookups and their std counterparts from the same C++ run.
"""
import gc
import json
import os
import subprocess
import sys
import timeit
import tracemalloc
import weakref

DEFAULT_N = 100_000


class Obj:
    pass


def traced_bytes_per_entry(make, fill, n):
    objs = [Obj() for _ in range(n)]
    keys = [1_000_000 + i for i in range(n)]
    container = make()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(container, objs, keys)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del container
    return (after - before) / n


def fill_set(s, objs, keys):
    for o in objs:
        s.add(o)


def fill_wvd(d, objs, keys):
    for k, o in zip(keys, objs):
        d[k] = o


def fill_wkd(d, objs, keys):
    for o in objs:
        d[o] = 1


def cpython_memory(n):
    return {
        'WeakSet': traced_bytes_per_entry(weakref.WeakSet, fill_set, n),
        'WeakValueDictionary': traced_bytes_per_entry(weakref.WeakValueDictionary, fill_wvd, n),
        'WeakKeyDictionary': traced_bytes_per_entry(weakref.WeakKeyDictionary, fill_wkd, n),
    }


def cpython_timing(n):
    """Seconds per lookup, random order, on a container of n entries."""
    import random
    rng = random.Random(42)
    objs = [Obj() for _ in range(n)]
    d = weakref.WeakValueDictionary()
    for i, o in enumerate(objs):
        d[i] = o
    s = weakref.WeakSet(objs)
    order = list(range(n))
    rng.shuffle(order)
    probes = [order[i % n] for i in range(100_000)]
    sobjs = [objs[i] for i in probes]

    def wvd_get():
        for k in probes:
            d[k]

    def set_contains():
        for o in sobjs:
            o in s
    out = {}
    for name, fn in (('wvd_get', wvd_get), ('weakset_contains', set_contains)):
        best = min(timeit.repeat(fn, number=1, repeat=5))
        out[name] = best / len(probes)
    return out


def run_cpp(program, args):
    res = subprocess.run([program, '--benchmark_format=json'] + args,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)['benchmarks']


def cpp_memory(program):
    out = {}
    for b in run_cpp(program, ['--benchmark_filter=BM_memory']):
        out[b['name'].split('/iterations')[0]] = b['bytes_per_entry']
    return out


def cpp_timing(program):
    out = {}
    for b in run_cpp(program, ['--benchmark_filter=get/|get_use/|contains/',
                               '--benchmark_repetitions=9',
                               '--benchmark_enable_random_interleaving=true',
                               '--benchmark_report_aggregates_only=true']):
        if b.get('aggregate_name') == 'median':
            out[b['run_name']] = b['real_time']  # ns
    return out


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    program = os.path.join(root, 'build', 'bench', 'bench', 'bench_containers')
    n = DEFAULT_N
    timing = True
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == '--n':
            n = int(args.pop(0))
        elif a == '--no-timing':
            timing = False
        else:
            program = a
    if not os.path.exists(program):
        sys.exit(f'{program} not found: build it with '
                 '`cmake --preset bench && cmake --build --preset bench`')

    py = cpython_memory(n)
    cpp = cpp_memory(program)
    cpp_n = {'WeakSet': 'weakset', 'WeakValueDictionary': 'wvd', 'WeakKeyDictionary': 'wkd'}
    print(f'Memory per entry, {n} entries (C++ figures at 100000 entries)')
    print(f'{"container":22} {"CPython":>9} {"C++":>9} {"ratio":>7} {"C++ +side table":>16} {"ratio":>7}')
    for name, b in py.items():
        have = cpp[f'BM_memory_{cpp_n[name]}/100000/0']
        fresh = cpp[f'BM_memory_{cpp_n[name]}/100000/1']
        print(f'{name:22} {b:9.1f} {have:9.1f} {have / b:7.2f} {fresh:16.1f} {fresh / b:7.2f}')
    print(f'{"std::unordered_map<long, weak_ptr>":36} {cpp["BM_memory_std_weak_map/100000"]:9.1f}')
    print(f'{"std::unordered_set<T*>":36} {cpp["BM_memory_std_set/100000"]:9.1f}')

    if timing:
        pyt = cpython_timing(n)
        ct = cpp_timing(program)
        print()
        print('Lookup time per operation, ns (C++: median of 9, interleaved; random order)')
        print(f'{"operation":34} {"entries":>8} {"C++":>8} {"std":>8} {"C++/std":>8} {"CPython":>9}')
        rows = (('WeakValueDictionary get', 'BM_wvd_get', 'BM_std_weak_map_get', 'wvd_get'),
                ('WeakValueDictionary get + use', 'BM_wvd_get_use', 'BM_std_weak_map_get_use', None),
                ('WeakSet contains', 'BM_weakset_contains', 'BM_std_set_contains',
                 'weakset_contains'))
        for label, ours, std, pykey in rows:
            for size in (1000, 100000):
                a = ct.get(f'{ours}/{size}')
                s = ct.get(f'{std}/{size}')
                if a is None or s is None:
                    continue
                pyv = f'{pyt[pykey] * 1e9:9.1f}' if pykey and size == n else f'{"":9}'
                print(f'{label:34} {size:8} {a:8.1f} {s:8.1f} {a / s:8.2f} {pyv}')


if __name__ == '__main__':
    main(sys.argv[1:])
