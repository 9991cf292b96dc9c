#!/usr/bin/env python3
"""Markdown tables of backends/verilog/synth/units.tsv for the README and
RFC 0005: every run, and the least-squares fits the cost model uses
(the same regressors as `cost::cells`: tls_matvec over LANES*ROWS and
V-1, tls_embed over LANES and min(V,LANES)-1, tls_attn over HP*KP*BPC and HP-1,
tls_wfetch over LANES*ROWS, tls_link over W, the others over V).
Usage: scripts/synth-report.py [units.tsv]"""
import sys

N6_FO4_PS = 10.0  # assumption, see backends/verilog/src/synth.rs
SHORT = {"sky130_fd_sc_hd__tt_025C_1v80": "sky130hd", "osu018_stdcells": "osu018"}


def regressors(unit, p):
    g = lambda k, d: p.get(k, d)
    if unit == "tls_matvec":
        r = g("ROWS", 1)
        return [g("LANES", 0) * r, g("V", r) - 1], "LANES·ROWS, V−1"
    if unit == "tls_embed":
        l = g("LANES", 0)
        return [l, min(g("V", 1), l) - 1], "LANES, min(V,LANES)−1"
    if unit == "tls_attn":
        if g("V", 1) != 1:
            return None, ""
        hp = g("HP", 1)
        return [hp * g("KP", 1) * g("BPC", 1), hp - 1], "HP·KP·BPC, HP−1"
    if unit == "tls_wfetch":
        return [g("LANES", 0) * g("ROWS", 1)], "LANES·ROWS"
    if unit == "tls_link":
        return [g("W", 32)], "W"
    return [g("V", 1)], "V"


def solve(pts):
    k = len(pts[0][0])
    n = k + 1
    m = [[0.0] * (n + 1) for _ in range(n)]
    for x, y in pts:
        row = [1.0] + x
        for i in range(n):
            for j in range(n):
                m[i][j] += row[i] * row[j]
            m[i][n] += row[i] * y
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[piv][c]) < 1e-9 * max(1.0, abs(m[c][c])):
            return None
        m[c], m[piv] = m[piv], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for j in range(c, n + 1):
                    m[r][j] -= f * m[c][j]
    return [m[i][n] / m[i][i] for i in range(n)]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "backends/verilog/synth/units.tsv"
    lines = open(path).read().splitlines()
    rows = []
    for l in lines[1:]:
        f = l.split("\t")
        p = {} if f[1] == "-" else {k: int(v) for k, v in (q.split("=") for q in f[1].split(","))}
        rows.append(dict(unit=f[0], params=f[1], p=p, lib=f[2], area=float(f[3]),
                         n2=float(f[4]), ns=float(f[5]), fo4=float(f[6]), cells=int(f[7]), check=f[8],
                         rtl=f[10] if len(f) > 10 else "–"))
    print("| unit | params | library | µm² | NAND2-eq | crit ns | crit FO4 | N6 clock (MHz, ≤) | cells | check | RTL |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['unit']} | {r['params'].replace(',', ' ')} | {SHORT.get(r['lib'], r['lib'])} | "
              f"{r['area']:,.0f} | {r['n2']:,.0f} | {r['ns']:.2f} | {r['fo4']:.0f} | "
              f"{1e6 / (r['fo4'] * N6_FO4_PS):,.0f} | {r['cells']:,} | {r['check']} | {r['rtl']} |")
    print()
    print("| unit | library | regressors | base | per regressor | points (measured, residual) |")
    print("|---|---|---|---:|---|---|")
    for unit in sorted({r["unit"] for r in rows}):
        for lib in sorted({r["lib"] for r in rows}, key=lambda l: l != "sky130_fd_sc_hd__tt_025C_1v80"):
            pts, names = [], ""
            for r in rows:
                if r["unit"] == unit and r["lib"] == lib:
                    x, names = regressors(unit, r["p"])
                    if x is not None:
                        pts.append((x, r["n2"], r["params"]))
            if not pts:
                continue
            k = len(pts[0][0])
            # a regressor that never varies is dropped (the model then
            # falls back to an assumption for it)
            keep = [j for j in range(k) if len({x[j] for x, _, _ in pts}) > 1]
            if len(pts) < len(keep) + 2 or not keep:
                print(f"| {unit} | {SHORT.get(lib, lib)} | {names} | – | – | {len(pts)} point(s): no fit |")
                continue
            c = solve([([x[j] for j in keep], y) for x, y, _ in pts])
            if c is None:
                print(f"| {unit} | {SHORT.get(lib, lib)} | {names} | – | – | singular |")
                continue
            per = ", ".join(f"{c[i + 1]:,.1f}" for i in range(len(keep)))
            if len(keep) < k:
                per += " (" + ", ".join(names.split(", ")[j] for j in range(k) if j not in keep) + ": not varied)"
            desc = []
            for x, y, ps in pts:
                fit = c[0] + sum(c[i + 1] * x[j] for i, j in enumerate(keep))
                desc.append(f"{ps.replace(',', ' ')}: {y:,.0f} ({(y - fit) / y * 100:+.1f} %)")
            print(f"| {unit} | {SHORT.get(lib, lib)} | {names} | {c[0]:,.0f} | {per} | {'; '.join(desc)} |")


main()
