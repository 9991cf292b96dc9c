#!/usr/bin/env python3
"""Checks the workspace's layering, from the source alone:

1. Crate dependencies point down: driver -> frontends and backends ->
   compiler. A crate in compiler/ depends only on compiler/ crates; a crate in
   frontends/ or backends/ only on compiler/ crates (normal and dev
   dependencies alike); only driver/ and tests/ may depend on anything.
2. No `use` cycle between modules: inside every crate, each reference to
   another module (`crate::a::b`, `super::x`, and names a module re-exports
   with `pub use`) is an edge between the two sibling modules under their
   common parent; no set of siblings may reach each other in a cycle.
   `#[cfg(test)]` items are left out: tests may reach across modules.

    python3 scripts/check-layering.py            # the repository
    python3 scripts/check-layering.py --self-test

Prints every crate edge and module graph it checked, then `layering: ok`, or
each violation and exits 1.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Which top-level folder may depend on which.
ALLOWED = {
    "compiler": {"compiler"},
    "frontends": {"compiler"},
    "backends": {"compiler"},
    "driver": {"compiler", "frontends", "backends"},
    "tests": {"compiler", "frontends", "backends", "driver"},
}


def layer_of(manifest_path, root):
    rel = os.path.relpath(os.path.dirname(manifest_path), root)
    return rel.split(os.sep)[0]


def crate_violations(root, out):
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout
    )
    by_name = {p["name"]: p for p in meta["packages"]}
    bad = []
    for p in sorted(meta["packages"], key=lambda p: p["name"]):
        layer = layer_of(p["manifest_path"], root)
        allowed = ALLOWED.get(layer)
        for d in p["dependencies"]:
            dep = by_name.get(d["name"])
            if dep is None:
                continue  # a crate from crates.io
            dlayer = layer_of(dep["manifest_path"], root)
            kind = d["kind"] or "normal"
            ok = allowed is not None and dlayer in allowed
            out.append(f"  {p['name']} ({layer}) -> {dep['name']} ({dlayer}) [{kind}]{'' if ok else '  NOT ALLOWED'}")
            if not ok:
                bad.append(f"{p['name']} in {layer}/ depends on {dep['name']} in {dlayer}/ ({kind})")
    return bad


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = "\n".join(re.sub(r"//.*$", "", line) for line in text.splitlines())
    return strip_tests(text)


def strip_tests(text):
    """Drops every `#[cfg(test)]` item: test code may reach across modules."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        j = m.end()
        # The item ends at `;` before any brace, or at its matching brace.
        depth = 0
        while j < len(text):
            ch = text[j]
            if ch == ";" and depth == 0:
                j += 1
                break
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def modules_of(src):
    """Module path (tuple) of every .rs file under a crate's src/."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods


def paths_in(expr):
    """`a::b::{c, d::e}` -> [a::b::c, a::b::d::e] (leading segments only)."""
    expr = expr.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", expr, re.S)
    if not m:
        return [expr]
    prefix, inner = m.group(1), m.group(3)
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        for p in paths_in(it):
            out.append(f"{prefix}::{p}" if prefix else p)
    return out


REF = re.compile(r"\b(crate|super|self)((?:::(?:\w+|\{[^;]*?\}))+)")


def resolve(mods, reexports, here, kind, rest):
    """The module a path starting at `kind` from module `here` refers to."""
    base = {"crate": (), "self": here, "super": here[:-1]}[kind]
    segs = [s for s in rest.split("::") if s]
    while segs and segs[0] == "super":
        base = base[:-1]
        segs = segs[1:]
    cur = base
    for s in segs:
        if cur + (s,) in mods:
            cur = cur + (s,)
        elif (cur, s) in reexports:
            cur = reexports[(cur, s)]
            break
        else:
            break
    return cur


def module_cycles(crate, src, out):
    mods = modules_of(src)
    texts = {m: strip_comments(open(p, encoding="utf-8").read()) for m, p in mods.items()}
    # `pub use child::{A, B}` / `pub use child::A` in a module: A is child's.
    reexports = {}
    for m, t in texts.items():
        for use in re.finditer(r"pub(?:\([^)]*\))?\s+use\s+([^;]+);", t):
            for p in paths_in(use.group(1)):
                segs = [s.strip() for s in p.split("::") if s.strip()]
                if not segs:
                    continue
                if segs[0] in ("crate", "self", "super"):
                    kind, segs = segs[0], segs[1:]
                    target = resolve(mods, {}, m, kind, "::".join(segs))
                else:
                    target = m + (segs[0],) if m + (segs[0],) in mods else None
                    if target:
                        for s in segs[1:]:
                            if target + (s,) in mods:
                                target = target + (s,)
                if target is None:
                    continue
                name = segs[-1].split(" as ")[-1].strip()
                if name != "*":
                    reexports[(m, name)] = target
    edges = {}
    for m, t in texts.items():
        for ref in REF.finditer(t):
            for p in paths_in(ref.group(2)[2:]):
                target = resolve(mods, reexports, m, ref.group(1), p)
                # Edge between the two siblings under the common parent.
                k = 0
                while k < min(len(m), len(target)) and m[k] == target[k]:
                    k += 1
                if k == len(m) or k == len(target):
                    continue  # a module and its own ancestor or descendant
                parent, a, b = m[:k], m[k], target[k]
                edges.setdefault(parent, {}).setdefault(a, set()).add(b)
    bad = []
    for parent, g in sorted(edges.items()):
        where = f"{crate}::{'::'.join(parent)}" if parent else crate
        out.append(f"  {where}: " + ", ".join(f"{a} -> {b}" for a in sorted(g) for b in sorted(g[a])))
        for cyc in cycles(g):
            bad.append(f"module cycle in {where}: " + " -> ".join(cyc + [cyc[0]]))
    return bad


def cycles(g):
    """One cycle per strongly connected component of more than one node."""
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]
    nodes = sorted(set(g) | {b for bs in g.values() for b in bs})

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return comps


def check(root):
    out, bad = ["crate dependencies:"], []
    bad += crate_violations(root, out)
    out.append("module references (sibling -> sibling, by parent module):")
    for layer in ("compiler", "frontends", "backends", "driver", "tests"):
        base = os.path.join(root, layer)
        for dirpath, dirs, files in sorted(os.walk(base)):
            dirs[:] = sorted(d for d in dirs if d not in ("target", "fixtures", "snapshots"))
            if "Cargo.toml" in files and os.path.isdir(os.path.join(dirpath, "src")):
                crate = os.path.relpath(dirpath, root)
                bad += module_cycles(crate, os.path.join(dirpath, "src"), out)
    return out, bad


def self_test():
    """The checks find a planted upward dependency and a planted cycle."""
    with tempfile.TemporaryDirectory() as d:
        def write(rel, text):
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").write(text)
        write("Cargo.toml", '[workspace]\nresolver = "2"\nmembers = ["compiler/a", "backends/b"]\n')
        write("compiler/a/Cargo.toml", '[package]\nname = "a"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nb = { path = "../../backends/b" }\n')
        write("backends/b/Cargo.toml", '[package]\nname = "b"\nversion = "0.1.0"\nedition = "2021"\n')
        write("backends/b/src/lib.rs", "pub mod plan;\npub mod emit;\npub use plan::Plan;\n")
        write("backends/b/src/plan.rs", "pub struct Plan;\npub fn f() { crate::emit::g() }\n")
        write("backends/b/src/emit.rs", "use crate::Plan;\npub fn g() {}\npub fn h(_: &Plan) {}\n")
        write("compiler/a/src/lib.rs", "pub fn a() {}\n")
        _, bad = check(d)
        want = ["a in compiler/ depends on b in backends/", "module cycle in backends/b: emit -> plan -> emit"]
        for w in want:
            if not any(b.startswith(w) for b in bad):
                print(f"self-test: missed `{w}`; found {bad}")
                return 1
        # Without the planted edges, both checks pass.
        write("compiler/a/Cargo.toml", '[package]\nname = "a"\nversion = "0.1.0"\nedition = "2021"\n')
        write("backends/b/src/plan.rs", "pub struct Plan;\npub fn f() {}\n")
        _, bad = check(d)
        if bad:
            print(f"self-test: false alarms {bad}")
            return 1
    print("layering self-test: ok (finds an upward crate dependency and a re-export cycle)")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    out, bad = check(ROOT)
    print("\n".join(out))
    if bad:
        print("\nlayering violations:")
        print("\n".join(f"  {b}" for b in bad))
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
