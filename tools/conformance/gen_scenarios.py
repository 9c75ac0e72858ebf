#!/usr/bin/env python3
"""Seeded random conformance scenarios (../shared/conformance/SPEC.md).

    python3 tools/conformance/gen_scenarios.py --seed 7 --count 20 --out DIR
    python3 tools/conformance/gen_scenarios.py --seed 7 --index 3   # one, to stdout

Scenario i of seed S is generate(S, i): the same text on every machine and
Python 3 version (it depends on nothing but random.Random(f"{S}/{i}")).

What the scenarios are made of
  * every operation of SPEC.md, weighted so that deaths (del, slot writes,
    rebinding), callbacks (cb, cb:del:NAME, cb:raise, cb:collect), cycles
    through slots (strong and weak), containers and collections happen
    often; `exit` ends about a quarter of them (sometimes followed by lines
    that are never run, malformed ones included); a few end with an
    operand of the wrong kind or hold a malformed line (the error paths).
  * names are rebound across kinds (an object name becomes a ref, a
    container, ...), unbound names are read now and then.
  * death cascades with a collection inside them (op_cascade): a chain of
    objects held through slots, a callback down the chain that collects,
    an unrelated garbage cycle, and the cascade started by another
    object's finalizer (or ref) callback deleting the chain's head. This
    is the pattern of issue 13's two regressions (a nested collection
    freeing its garbage only after it returned); on the code before that
    fix about 4 scenarios in 10 disagree.

What they avoid (so that CPython's answer is a single one, see
docs/conformance.md):
  * two objects with one label: a `new` name is never a label again, so
    the per-label order compare.py checks is always defined;
  * more than MAX_OBJECTS objects: refcount cascades stay under SPEC's 50;
  * `wset.iterdel` whose victim may be an object while callbacks can unbind
    names or collect: CPython iterates a WeakSet in hash (address) order,
    which varies from run to run, and the element the iteration holds then
    changes what dies or is collected during it.
The generator tracks, for every name, the kinds of value it may hold (and
whether a callback may have unbound it), so operands have the right kind
except where a wrong kind is meant.
"""
import argparse
import os
import random
import sys

OBJ, REF, PROXY, WM, FIN, WVD, WKD, WSET = 'o', 'r', 'p', 'm', 'f', 'd', 'k', 's'
PREFIX = {REF: 'r', PROXY: 'p', WM: 'm', FIN: 'f', WVD: 'D', WKD: 'K', WSET: 'S'}
UNBOUND = None
MAX_OBJECTS = 40
KEYS = ['k1', 'k2', 'k3', 'k4', 'k5', 'K_2', 'a']
VALUES = ['v1', 'v2', 'v3', 'x']


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.kinds = {}          # name -> set of kinds it may hold (+ UNBOUND)
        self.volatile = set()    # names a callback may unbind at any time
        self.labels = set()      # names used by `new` (never a label again)
        self.serial = 0
        self.objects = 0
        self.lines = []
        # Some scenarios use plain callbacks only (cb, cb:raise): there a
        # wset.iterdel may unbind objects (see the module docstring).
        self.plain = rng.random() < 0.2

    # ---- names and kinds
    def fresh(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def fresh_label(self):
        while True:
            n = self.rng.randrange(26 * 4)
            name = chr(ord('A') + n % 26) + ('' if n < 26 else str(n // 26))
            if name not in self.labels and name not in self.kinds:
                return name

    def bind(self, name, kinds):
        k = set(kinds)
        if name in self.volatile:
            k.add(UNBOUND)
        self.kinds[name] = k

    def names(self, kind, surely=False):
        out = []
        for n, k in self.kinds.items():
            if kind in k and k <= {kind, UNBOUND}:
                if not surely or UNBOUND not in k:
                    out.append(n)
        return sorted(out)

    def pick(self, kind, p_sure=0.9):
        """A name holding `kind` (usually surely bound), or None."""
        sure = self.names(kind, True)
        maybe = self.names(kind)
        if sure and (self.rng.random() < p_sure or not maybe):
            return self.rng.choice(sure)
        return self.rng.choice(maybe) if maybe else None

    def any_name(self):
        known = sorted(self.kinds)
        if not known or self.rng.random() < 0.04:
            return self.rng.choice(['nope', 'gone', 'zz'])
        return self.rng.choice(known)

    def target(self, kind):
        """The name an op binds: usually fresh, sometimes a rebinding of an
        existing name (often one a callback may unbind, or an object's)."""
        r = self.rng.random()
        if r < 0.1 and self.volatile:
            return self.rng.choice(sorted(self.volatile))
        if r < 0.2 and self.names(OBJ):
            return self.rng.choice(self.names(OBJ))
        if r < 0.3 and self.kinds:
            return self.rng.choice(sorted(self.kinds))
        return self.fresh(PREFIX[kind])

    # ---- callback tokens
    def callback(self, p, owner=None, referent=None):
        """A callback token (or None); `owner` is the name the weakref or
        finalizer is bound to, `referent` its object's name: favourite
        victims of cb:del, as are names holding objects and weak values."""
        if self.rng.random() >= p:
            return None
        r = self.rng.random()
        if self.plain:
            return 'cb' if r < 0.8 else 'cb:raise'
        if r < 0.38:
            return 'cb'
        if r < 0.72:
            victim = self.del_victim(owner, referent)
            self.volatile.add(victim)
            self.kinds.setdefault(victim, set()).add(UNBOUND)
            return f'cb:del:{victim}'
        if r < 0.84:
            return 'cb:raise'
        return 'cb:collect'

    def del_victim(self, owner, referent):
        r = self.rng.random()
        if r < 0.2 and referent:
            return referent
        if r < 0.3 and owner:
            return owner
        pools = [self.names(OBJ), self.names(REF) + self.names(PROXY) + self.names(WM),
                 self.names(WVD) + self.names(WKD) + self.names(WSET) + self.names(FIN)]
        pool = pools[0] if r < 0.65 else pools[1] if r < 0.85 else pools[2]
        return self.rng.choice(pool) if pool else self.any_name()

    def emit(self, *toks):
        self.lines.append(' '.join(t for t in toks if t is not None))

    # ---- operations: each returns False when it cannot be made now
    def op_new(self):
        if self.objects >= MAX_OBJECTS:
            return False
        name = self.fresh_label()
        if self.rng.random() < 0.15:  # rebind a name that never was a label
            others = [n for n in sorted(self.kinds)
                      if n not in self.labels and OBJ not in self.kinds[n]]
            if others:
                name = self.rng.choice(others)
        self.labels.add(name)
        self.objects += 1
        self.emit('new', name)
        self.bind(name, {OBJ})
        return True

    def op_let(self):
        x = self.any_name()
        y = x if self.rng.random() < 0.1 else self.rng.choice(
            sorted(self.kinds) + [self.fresh('v')])
        xk = self.kinds.get(x, {UNBOUND})
        yk = (xk - {UNBOUND}) | (self.kinds.get(y, {UNBOUND}) if UNBOUND in xk else set())
        self.emit('let', y, x)
        self.bind(y, yk or {UNBOUND})
        return True

    def op_del(self):
        name = self.pick(OBJ) if self.rng.random() < 0.75 else self.any_name()
        if name is None:
            return False
        self.emit('del', name)
        self.kinds[name] = {UNBOUND}
        return True

    def op_set(self):
        x = self.pick(OBJ)
        if x is None:
            return False
        y = '-' if self.rng.random() < 0.12 else (self.pick(OBJ) or '-')
        self.emit('set', f"{x}.{self.rng.choice('abc')}", y)
        return True

    def op_cycle(self):
        """Two or three objects in a cycle, often then unbound."""
        objs = self.names(OBJ, True)
        if len(objs) < 2:
            return False
        ring = self.rng.sample(objs, min(len(objs), self.rng.choice([1, 2, 2, 3])))
        for a, b in zip(ring, ring[1:] + ring[:1]):
            self.emit('set', f"{a}.{self.rng.choice('abc')}", b)
        for n in ring:
            if self.rng.random() < 0.6:
                self.emit('del', n)
                self.kinds[n] = {UNBOUND}
        return True

    def op_setref(self):
        x = self.pick(OBJ)
        w = self.pick(self.rng.choice([REF, REF, PROXY, WM]))
        if x is None or w is None:
            return False
        self.emit('setref', f"{x}.{self.rng.choice('abc')}", w)
        if self.rng.random() < 0.5:
            self.emit('del', w)
            self.kinds[w] = {UNBOUND}
        return True

    def op_same(self):
        self.emit('same', self.any_name(), self.any_name())
        return True

    def _weak(self, op, kind, p_cb):
        x = self.pick(OBJ)
        if x is None:
            return False
        name = self.target(kind)
        cb = self.callback(p_cb, name, x)
        xk = self.kinds[x]
        self.emit(op, name, x, cb)
        self.bind(name, {kind} | (self.kinds.get(name, {UNBOUND}) if UNBOUND in xk else set()))
        return True

    def op_ref(self):
        return self._weak('ref', REF, 0.7)

    def op_proxy(self):
        return self._weak('proxy', PROXY, 0.5)

    def op_wm(self):
        return self._weak('wm', WM, 0.5)

    def op_fin(self):
        return self._weak('fin', FIN, 0.5)

    def op_query(self):
        """get / use / wm.call / eq / count / refs."""
        op, kinds = self.rng.choice([
            ('get', [REF]), ('get', [REF]), ('use', [PROXY]), ('wm.call', [WM]),
            ('eq', [REF, REF]), ('count', [OBJ]), ('refs', [OBJ])])
        names = [self.pick(k, 0.8) for k in kinds]
        if None in names:
            return False
        self.emit(op, *names)
        return True

    def op_fin_use(self):
        f = self.pick(FIN, 0.8)
        if f is None:
            return False
        op = self.rng.choice(['fin.call', 'fin.alive', 'fin.peek', 'fin.detach',
                              'fin.atexit', 'fin.atexit', 'fin.call'])
        self.emit(op, f, self.rng.choice('01') if op == 'fin.atexit' else None)
        return True

    def op_container(self):
        kind = self.rng.choice([WVD, WKD, WSET])
        name = self.target(kind)
        self.emit({WVD: 'wvd', WKD: 'wkd', WSET: 'wset'}[kind], name)
        self.bind(name, {kind})
        return True

    def victim(self, for_wset):
        """The name an iterdel unbinds."""
        if for_wset and not self.plain:
            safe = [n for n, k in sorted(self.kinds.items()) if OBJ not in k]
            return self.rng.choice(safe) if safe else 'nope'
        if self.rng.random() < 0.7:
            return self.pick(OBJ) or self.any_name()
        return self.any_name()

    def _iterdel(self, op, c, for_wset=False):
        v = self.victim(for_wset)
        self.emit(op, c, v)
        self.kinds.setdefault(v, set()).add(UNBOUND)
        return True

    def op_wvd(self):
        d = self.pick(WVD)
        if d is None:
            return False
        key = self.rng.choice(KEYS)
        r = self.rng.random()
        x = self.pick(OBJ)
        if r < 0.3 and x:
            self.emit('wvd.set', d, key, x)
        elif r < 0.37 and x:
            self.emit('wvd.setdefault', d, key, x)
        elif r < 0.6:
            self.emit(self.rng.choice(['wvd.get', 'wvd.has', 'wvd.del', 'wvd.pop']), d, key)
        elif r < 0.85:
            self.emit(self.rng.choice(['wvd.len', 'wvd.keys', 'wvd.items', 'wvd.items']), d)
        elif r < 0.9:
            self.emit('wvd.clear', d)
        else:
            return self._iterdel('wvd.iterdel', d)
        return True

    def op_wkd(self):
        k = self.pick(WKD)
        x = self.pick(OBJ)
        if k is None:
            return False
        r = self.rng.random()
        if r < 0.35 and x:
            self.emit('wkd.set', k, x, self.rng.choice(VALUES))
        elif r < 0.6 and x:
            self.emit(self.rng.choice(['wkd.get', 'wkd.has', 'wkd.del', 'wkd.pop']), k, x)
        elif r < 0.85:
            self.emit(self.rng.choice(['wkd.len', 'wkd.keys', 'wkd.items', 'wkd.items']), k)
        elif r < 0.9:
            self.emit('wkd.clear', k)
        else:
            return self._iterdel('wkd.iterdel', k)
        return True

    def op_wset(self):
        s = self.pick(WSET)
        if s is None:
            return False
        x = self.pick(OBJ)
        r = self.rng.random()
        if r < 0.35 and x:
            self.emit('wset.add', s, x)
        elif r < 0.5 and x:
            self.emit(self.rng.choice(['wset.discard', 'wset.remove', 'wset.has']), s, x)
        elif r < 0.65:
            self.emit(self.rng.choice(['wset.len', 'wset.items', 'wset.items']), s)
        elif r < 0.68:
            self.emit('wset.clear', s)
        elif r < 0.85:
            s2 = self.pick(WSET)
            op = self.rng.choice(['wset.union', 'wset.inter', 'wset.diff', 'wset.symdiff'])
            t = self.target(WSET)
            sk, s2k = self.kinds[s], self.kinds[s2]
            self.emit(op, t, s, s2)
            self.bind(t, {WSET} | (self.kinds.get(t, {UNBOUND})
                                   if UNBOUND in sk | s2k else set()))
        elif r < 0.93:
            self.emit(self.rng.choice(['wset.le', 'wset.eq', 'wset.disjoint']), s,
                      self.pick(WSET))
        else:
            return self._iterdel('wset.iterdel', s, for_wset=True)
        return True

    def op_collect(self):
        self.emit('collect')
        return True

    def op_cascade(self):
        """A death cascade with a collection inside it: a chain of fresh
        objects held only through slots from its head, a weakref (or a
        finalizer) somewhere down the chain whose callback collects, often
        an unrelated garbage cycle for that collection to find, and the
        cascade started by a finalizer (or ref) callback of another object
        deleting the head, or left for a later `del`. A collection run
        deep inside deaths must free its garbage before it returns, as one
        run from the top does (tests/conformance/regressions/
        nested_collect_in_cascade*.scn)."""
        rng = self.rng
        length = rng.randint(1, 4)
        cycle = 0 if rng.random() < 0.25 else rng.choice([2, 2, 3])
        trigger = rng.random() < 0.7
        if self.objects + length + cycle + trigger > MAX_OBJECTS:
            return False
        if cycle and rng.random() < 0.5:
            self._garbage_cycle(cycle)
            cycle = 0
        chain = [self.fresh_label_new() for _ in range(length)]
        for a, b in zip(chain, chain[1:]):
            self.emit('set', f"{a}.{rng.choice('abc')}", b)
        member = rng.choice(chain[1:] or chain)
        if rng.random() < 0.75:
            name = self.fresh(PREFIX[REF])
            self.emit('ref', name, member, 'cb:collect')
            self.bind(name, {REF})
        else:
            name = self.fresh(PREFIX[FIN])
            self.emit('fin', name, member, 'cb:collect')
            self.bind(name, {FIN})
        for n in chain[1:]:
            self.emit('del', n)
            self.kinds[n] = {UNBOUND}
        if cycle:
            self._garbage_cycle(cycle)
        head = chain[0]
        if rng.random() < 0.3 and self.names(OBJ, True):
            # the head held in a slot of an object that stays bound
            holder = rng.choice([n for n in self.names(OBJ, True) if n != head] or [head])
            if holder != head:
                self.emit('set', f"{holder}.{rng.choice('abc')}", head)
                self.emit('del', head)
                self.kinds[head] = {UNBOUND}
                head = holder
        if trigger:
            t = self.fresh_label_new()
            op, kind = rng.choice([('fin', FIN), ('fin', FIN), ('ref', REF)])
            name = self.fresh(PREFIX[kind])
            self.emit(op, name, t, f'cb:del:{head}')
            self.bind(name, {kind})
            self.volatile.add(head)
            self.kinds.setdefault(head, set()).add(UNBOUND)
            self.emit('del', t)
            self.kinds[t] = {UNBOUND}
        return True

    def fresh_label_new(self):
        """`new` of a fresh label; returns it."""
        name = self.fresh_label()
        self.labels.add(name)
        self.objects += 1
        self.emit('new', name)
        self.bind(name, {OBJ})
        return name

    def _garbage_cycle(self, n):
        """n fresh objects in a cycle, unbound: garbage."""
        ring = [self.fresh_label_new() for _ in range(n)]
        for a, b in zip(ring, ring[1:] + ring[:1]):
            self.emit('set', f"{a}.{self.rng.choice('abc')}", b)
        for x in ring:
            self.emit('del', x)
            self.kinds[x] = {UNBOUND}

    def op_unbound_read(self):
        """An op reading a name that is not bound."""
        name = self.rng.choice(['nope', 'gone'])
        self.emit(self.rng.choice(['get', 'count', 'use', 'fin.alive', 'wset.len']), name)
        return True

    OPS = [  # (weight, method)
        (9, op_new), (3, op_let), (11, op_del), (9, op_set), (5, op_cycle), (4, op_setref),
        (2, op_same), (9, op_ref), (3, op_proxy), (3, op_wm), (5, op_fin), (7, op_query),
        (4, op_fin_use), (3, op_container), (8, op_wvd), (8, op_wkd), (8, op_wset),
        (6, op_collect), (1, op_unbound_read), (2, op_cascade),
    ]

    # ---- whole scenarios
    def wrong_kind_line(self):
        """An op whose operand surely has another kind (ends the trace)."""
        objs, refs = self.names(OBJ, True), self.names(REF, True)
        if objs and self.rng.random() < 0.5:
            return self.rng.choice(['get', 'use', 'wm.call', 'fin.alive', 'wvd.len',
                                    'wkd.len', 'wset.len']) + ' ' + self.rng.choice(objs)
        if refs:
            return self.rng.choice(['count', 'refs', 'use', 'fin.peek']) + ' ' + \
                self.rng.choice(refs)
        return None

    def malformed_line(self):
        return self.rng.choice([
            'frobnicate A', 'new', 'new 1A', 'set A.d B', 'ref r A cb:boom', 'get r x',
            'fin.atexit f 2', 'wvd.set D k-1 A', 'setref A.a -', "it's", 'new\xe9 A',
            'collect now', 'exit now'])

    def decorate(self, line):
        r = self.rng.random()
        if r < 0.04:
            return line.replace(' ', '\t')
        if r < 0.08:
            return line + '   # note'
        return line

    def generate(self):
        rng = self.rng
        for _ in range(rng.randint(2, 8)):
            self.op_new()
        for kind, op in ((WVD, 'wvd'), (WKD, 'wkd'), (WSET, 'wset')):
            if rng.random() < 0.5:
                name = self.fresh(PREFIX[kind])
                self.emit(op, name)
                self.bind(name, {kind})
        weights, methods = zip(*self.OPS)
        for _ in range(rng.randint(10, 80)):
            for _attempt in range(10):
                if rng.choices(methods, weights)[0](self):
                    break
        if rng.random() < 0.5:  # drop most names: deaths, then maybe collect
            for name in sorted(self.kinds):
                if rng.random() < 0.7:
                    self.emit('del', name)
                    self.kinds[name] = {UNBOUND}
            if rng.random() < 0.7:
                self.emit('collect')
        r = rng.random()
        if r < 0.04:
            line = self.wrong_kind_line()
            if line:
                self.lines.append(line)
        elif r < 0.30:
            self.lines.append('exit')
            if rng.random() < 0.2:
                self.lines += ['fin.call f1', self.malformed_line(), 'new Z']
        elif r < 0.60:
            self.lines.append('collect')
        if rng.random() < 0.02:
            self.lines.insert(rng.randrange(len(self.lines) + 1), self.malformed_line())
        out = []
        for line in self.lines:
            if rng.random() < 0.03:
                out.append(rng.choice(['', '# comment', '   ']))
            out.append(self.decorate(line))
        return '\n'.join(out) + '\n'


def generate(seed, index):
    """Scenario `index` of `seed` (text)."""
    return Gen(random.Random(f"{seed}/{index}")).generate()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--count', type=int, default=1)
    ap.add_argument('--index', type=int, help='write scenario INDEX to stdout')
    ap.add_argument('--out', help='directory for gen_SEED_INDEX.scn files')
    a = ap.parse_args(argv[1:])
    if a.index is not None:
        sys.stdout.write(generate(a.seed, a.index))
        return 0
    if not a.out:
        ap.error('--out or --index is required')
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        with open(os.path.join(a.out, f"gen_{a.seed}_{i}.scn"), 'w') as fh:
            fh.write(generate(a.seed, i))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
