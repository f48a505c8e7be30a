#!/usr/bin/env python3
"""Independent check of the symbolic backward solver (issue 18) with SymPy.

Reads JSONL lines {"equation": "f(x) = A", "x": "N", "unique": true|false} as written by
tests/bootstrap/symbolic_data_test.cpp (f in the solver's print format: "1.5x", "x/2", "(x - 32)/3",
"x^2/100 + 2x", "120/x"), solves f(x) = A exactly with SymPy (rationals, no floating point), and
checks that x = N is a solution and that it is the only real one (or, when N > 0 and the equation
is not linear, the only positive one) exactly when "unique" is true. Prints "ok <count>" or the
mismatches, exit status 1 on any."""
import json
import sys

import sympy
from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                        rationalize, standard_transformations)

X = sympy.Symbol("x")
TRANSFORMS = standard_transformations + (implicit_multiplication_application, rationalize)


def parse(text):
    return parse_expr(text.replace("^", "**"), local_dict={"x": X}, transformations=TRANSFORMS)


def main():
    bad, count = [], 0
    for line in open(sys.argv[1]):
        row = json.loads(line)
        lhs, rhs = row["equation"].split(" = ")
        f, a = parse(lhs), parse(rhs)
        n = sympy.Rational(row["x"])
        if sympy.simplify(f.subs(X, n) - a) != 0:
            bad.append(f"{row['equation']}: x = {n} is not a solution")
            continue
        num, den = sympy.fraction(sympy.together(f - a))
        poly = sympy.Poly(sympy.expand(num), X)
        roots = [r for r in sympy.real_roots(poly) if sympy.simplify(den.subs(X, r)) != 0]
        distinct = set(roots)
        unique = len(distinct) == 1
        if not unique and n > 0 and poly.degree() > 1:
            unique = len([r for r in distinct if r > 0]) == 1
        if unique != row["unique"]:
            bad.append(f"{row['equation']}: x = {n}: SymPy says unique={unique}, solver "
                       f"{row['unique']} (real roots {sorted(distinct)})")
        count += 1
    for b in bad:
        print(b)
    print(f"ok {count}" if not bad else f"{len(bad)} mismatches of {count}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
