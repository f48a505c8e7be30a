#!/usr/bin/env python3
"""Reference MATH answer grader for bench/answer_bench (written for this project).

Two methods, both in the style commonly used to grade MATH answers in Python:

  string  normalise each answer as text (spaces, \\left/\\right, \\text{} units, \\dfrac,
          0.5 -> \\frac{1}{2}, ^\\circ, \\%, $, ...) and compare the strings.
  sympy   translate each side's LaTeX into a SymPy expression and decide equality by
          sympy.simplify(a - b) == 0, with a per-pair wall-clock timeout (counted as not equal).
          sympy.parsing.latex needs the antlr4 4.10 runtime, which Debian 12 does not ship
          (python3-antlr4 is 4.9), so the LaTeX is translated by a small regex/brace translator
          below and parsed with sympy.parsing.sympy_parser.parse_expr. Tuples/intervals compare
          element-wise, equations as lhs - rhs (up to sign). When either side cannot be
          translated the pair falls back to the string method.

Input: a JSONL file of pairs {"a": ..., "b": ...} (written by answer_bench so both sides see the
same list). Output: one JSON object with per-method pair counts, seconds, checks/s and verdict
strings ("1" equal, "0" not equal, one character per pair).

Run with Debian's interpreter (/usr/bin/python3), which has python3-sympy.
"""
import argparse
import json
import re
import signal
import sys
import time

# ----------------------------------------------------------------------------------------------
# (a) string normaliser
# ----------------------------------------------------------------------------------------------


def _brace_end(s, i):
    """Index of the '}' matching s[i] == '{', or -1."""
    depth = 0
    for j in range(i, len(s)):
        c = s[j]
        if c == '\\':
            continue
        if c == '{' and (j == 0 or s[j - 1] != '\\'):
            depth += 1
        elif c == '}' and (j == 0 or s[j - 1] != '\\'):
            depth -= 1
            if depth == 0:
                return j
    return -1


def _drop_trailing_units(s):
    """'5\\text{ inches}' -> '5'; a whole-answer \\text{B} is kept (it is the answer)."""
    m = re.search(r'\\(?:text|textbf|mbox|mathrm)\{[^{}]*\}\s*$', s)
    if m and m.start() > 0 and s[:m.start()].strip():
        head = s[:m.start()].rstrip()
        # keep "12\text{ and }13"-style connectives: only strip when the head ends a quantity
        if re.search(r'[0-9}\)\]a-zA-Z]$', head):
            return head
    return s


def _unwrap_text(s):
    return re.sub(r'\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}', r'\1', s)


def _fix_fracs(s):
    """\\frac12 -> \\frac{1}{2}, \\frac1{2} -> \\frac{1}{2}, \\frac{1}2 -> \\frac{1}{2}."""
    out = []
    parts = s.split('\\frac')
    out.append(parts[0])
    for p in parts[1:]:
        out.append('\\frac')
        if p.startswith('{'):
            end = _brace_end(p, 0)
            if end < 0:
                out.append(p)
                continue
            num, rest = p[:end + 1], p[end + 1:]
            if rest and rest[0] != '{':
                rest = '{' + rest[0] + '}' + rest[1:]
            out.append(num + rest)
        elif len(p) >= 2:
            num = '{' + p[0] + '}'
            rest = p[1:]
            if rest[0] != '{':
                rest = '{' + rest[0] + '}' + rest[1:]
            out.append(num + rest)
        else:
            out.append(p)
    return ''.join(out)


def _fix_sqrt(s):
    """\\sqrt3 -> \\sqrt{3}."""
    return re.sub(r'\\sqrt(\w)', r'\\sqrt{\1}', s)


def _slash_to_frac(s):
    m = re.fullmatch(r'(-?\d+)/(\d+)', s)
    if m:
        return '\\frac{%s}{%s}' % (m.group(1), m.group(2))
    return s


_DECIMAL_FRACS = {'0.5': '\\frac{1}{2}', '0.25': '\\frac{1}{4}', '0.75': '\\frac{3}{4}',
                  '0.2': '\\frac{1}{5}', '0.1': '\\frac{1}{10}'}


def normalise(s):
    s = s.strip()
    s = s.replace('\n', '').replace('\\!', '').replace('\\,', '').replace('\\;', '')
    s = s.replace('\\\\', '\\')
    s = s.replace('\\dfrac', '\\frac').replace('\\tfrac', '\\frac')
    s = s.replace('\\left', '').replace('\\right', '')
    s = s.replace('^{\\circ}', '').replace('^\\circ', '').replace('\\circ', '')
    s = s.replace('\\$', '').replace('$', '')
    s = s.replace('\\%', '').replace('%', '')
    s = _drop_trailing_units(s)
    s = _unwrap_text(s)
    # thousands separators written as "85,\!184" (\! already gone) -> 85184
    if re.fullmatch(r'-?\d{1,3}(,\d{3})+(\.\d+)?', s):
        s = s.replace(',', '')
    s = s.replace(' .', ' 0.').replace('{.', '{0.')
    if s.startswith('.'):
        s = '0' + s
    # "x = 5" / "k=5": keep the right-hand side when the left is a short variable name
    m = re.fullmatch(r'\s*[a-zA-Z]\w?\s*=\s*(.+)', s)
    if m:
        s = m.group(1)
    s = _fix_sqrt(s)
    s = s.replace(' ', '')
    s = _fix_fracs(s)
    s = _DECIMAL_FRACS.get(s, s)
    s = _slash_to_frac(s)
    return s


def string_equal(a, b):
    try:
        return normalise(a) == normalise(b)
    except Exception:
        return a == b


# ----------------------------------------------------------------------------------------------
# (b) sympy equivalence
# ----------------------------------------------------------------------------------------------

import sympy  # noqa: E402
from sympy.parsing.sympy_parser import (  # noqa: E402
    convert_xor, implicit_multiplication_application, parse_expr, standard_transformations)

_TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)


class Untranslatable(Exception):
    pass


def _group(s, i):
    """Reads one TeX argument at s[i:] ({...} or a single token); returns (text, next index)."""
    while i < len(s) and s[i] == ' ':
        i += 1
    if i >= len(s):
        raise Untranslatable('missing argument')
    if s[i] == '{':
        end = _brace_end(s, i)
        if end < 0:
            raise Untranslatable('unbalanced braces')
        return s[i + 1:end], end + 1
    if s[i] == '\\':
        m = re.match(r'\\[a-zA-Z]+', s[i:])
        if m:
            return m.group(0), i + len(m.group(0))
    return s[i], i + 1


_SIMPLE = [
    (r'\\(?:d|t)?frac', None), (r'\\left', ''), (r'\\right', ''), (r'\\!', ''), (r'\\,', ''),
    (r'\\;', ''), (r'\\ ', ''), (r'\\cdot', '*'), (r'\\times', '*'), (r'\\div', '/'),
    (r'\\pi', ' pi '), (r'\\infty', ' oo '), (r'\\infinity', ' oo '), (r'\\%', ''), (r'\\\$', ''),
    (r'\$', ''), (r'\^\{?\\circ\}?', ''), (r'\\circ', ''), (r'\\le(?:q)?', '<='),
    (r'\\ge(?:q)?', '>='), (r'\\ln', ' log'), (r'\\log', ' log'), (r'\\sin', ' sin'),
    (r'\\cos', ' cos'), (r'\\tan', ' tan'),
    (r'\\sec', ' sec'), (r'\\csc', ' csc'), (r'\\cot', ' cot'), (r'\\exp', ' exp'),
    (r'\\alpha', ' alpha '), (r'\\beta', ' beta '), (r'\\theta', ' theta '), (r'\\phi', ' phi '),
]


def latex_to_sympy_text(s):
    """Translates a MATH answer in LaTeX into text for parse_expr; raises Untranslatable."""
    s = s.strip()
    s = _drop_trailing_units(s)
    if re.search(r'\\text|\\mbox|\\mathrm|\\textbf|\\begin|\\cup|\\cap|\\pm|\\mp|\\in\b|'
                 r'\\emptyset|\\mathbb|\\overline|\\angle|\\triangle|_', s):
        raise Untranslatable('construct outside the translator')
    if re.fullmatch(r'-?\d{1,3}(,\\!?\d{3})+(\.\d+)?', s):
        s = s.replace('\\!', '').replace(',', '')
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if s.startswith('\\frac', i) or s.startswith('\\dfrac', i) or s.startswith('\\tfrac', i):
            i += 5 if s.startswith('\\frac', i) else 6
            num, i = _group(s, i)
            den, i = _group(s, i)
            out.append('((%s)/(%s))' % (latex_to_sympy_text(num), latex_to_sympy_text(den)))
            continue
        if s.startswith('\\sqrt', i):
            i += 5
            root = None
            if i < len(s) and s[i] == '[':
                end = s.find(']', i)
                if end < 0:
                    raise Untranslatable('unbalanced [')
                root = s[i + 1:end]
                i = end + 1
            arg, i = _group(s, i)
            if root is None:
                out.append('sqrt(%s)' % latex_to_sympy_text(arg))
            else:
                out.append('((%s)**(1/(%s)))' % (latex_to_sympy_text(arg),
                                                 latex_to_sympy_text(root)))
            continue
        if c == '^':
            arg, i = _group(s, i + 1)
            out.append('**(%s)' % latex_to_sympy_text(arg))
            continue
        if c == '\\':
            for pat, rep in _SIMPLE:
                m = re.match(pat, s[i:])
                if m and rep is not None:
                    out.append(rep)
                    i += len(m.group(0))
                    break
            else:
                raise Untranslatable('unknown command %s' % s[i:i + 12])
            continue
        if c == '{':
            end = _brace_end(s, i)
            if end < 0:
                raise Untranslatable('unbalanced braces')
            out.append('(%s)' % latex_to_sympy_text(s[i + 1:end]))
            i = end + 1
            continue
        if c == '%' or c == '$':
            i += 1
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def _split_top(s, sep):
    parts, depth, cur = [], 0, []
    for c in s:
        if c in '([{':
            depth += 1
        elif c in ')]}':
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append(''.join(cur))
    return parts


def to_sympy(latex):
    """Returns ('tuple', [exprs]) / ('tuple()', [exprs]) (bracketed, brackets kept) / ('eq', expr) /
    ('expr', expr); raises on failure."""
    text = latex_to_sympy_text(latex)
    t = text.strip()
    if len(t) >= 2 and t[0] in '([' and t[-1] in ')]' and ',' in t:
        inner = _split_top(t[1:-1], ',')
        if len(inner) > 1:
            return 'tuple' + t[0] + t[-1], [parse_expr(x, transformations=_TRANSFORMS)
                                             for x in inner]
    if ',' in t:
        items = _split_top(t, ',')
        if len(items) > 1:
            return 'tuple', [parse_expr(x, transformations=_TRANSFORMS) for x in items]
    if '=' in t and '<=' not in t and '>=' not in t:
        sides = t.split('=')
        if len(sides) != 2:
            raise Untranslatable('chained equation')
        lhs = parse_expr(sides[0], transformations=_TRANSFORMS)
        rhs = parse_expr(sides[1], transformations=_TRANSFORMS)
        if isinstance(lhs, sympy.Symbol) and not rhs.free_symbols:
            return 'expr', rhs  # "x = 5" means 5
        return 'eq', lhs - rhs
    return 'expr', parse_expr(t, transformations=_TRANSFORMS)


def _same(x, y):
    # structural equality first: oo - oo is nan, and identical sides need no simplify
    return x == y or sympy.simplify(x - y) == 0


def sympy_equal(a, b):
    """True/False, or None when either side cannot be translated/parsed."""
    try:
        ka, ea = to_sympy(a)
        kb, eb = to_sympy(b)
    except Exception:
        return None
    if ka != kb:
        return False
    if ka.startswith('tuple'):
        return len(ea) == len(eb) and all(_same(x, y) for x, y in zip(ea, eb))
    if ka == 'eq':
        return _same(ea, eb) or _same(ea, -eb)
    return _same(ea, eb)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def sympy_check(a, b, timeout_s):
    """Returns (equal: bool, how: 'sympy'|'string-fallback'|'timeout'|'error')."""
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        r = sympy_equal(a, b)
        how = 'sympy'
        if r is None:
            r, how = string_equal(a, b), 'string-fallback'
    except _Timeout:
        return False, 'timeout'
    except Exception:
        return False, 'error'
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return bool(r), how


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pairs', required=True, help='JSONL file of {"a":..., "b":...}')
    ap.add_argument('--sympy-limit', type=int, default=500,
                    help='time the sympy method on the first N pairs only (0 = all)')
    ap.add_argument('--timeout', type=float, default=1.0, help='sympy seconds per pair')
    ap.add_argument('--out', help='write the JSON result here (default: stdout)')
    args = ap.parse_args()

    pairs = []
    with open(args.pairs, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                pairs.append((r['a'], r['b']))

    signal.signal(signal.SIGALRM, _on_alarm)

    t0 = time.perf_counter()
    sv = ['1' if string_equal(a, b) else '0' for a, b in pairs]
    t_string = time.perf_counter() - t0

    n_sym = len(pairs) if args.sympy_limit <= 0 else min(args.sympy_limit, len(pairs))
    hows = {}
    yv = []
    # time split by identical vs different strings, so a caller can compare like with like
    split = {'identical': [0, 0.0], 'different': [0, 0.0]}
    t0 = time.perf_counter()
    for k, (a, b) in enumerate(pairs[:n_sym]):
        t1 = time.perf_counter()
        eq, how = sympy_check(a, b, args.timeout)
        dt = time.perf_counter() - t1
        part = split['identical' if a == b else 'different']
        part[0] += 1
        part[1] += dt
        yv.append('1' if eq else '0')
        hows[how] = hows.get(how, 0) + 1
        if sys.stderr.isatty() and (k + 1) % 50 == 0:
            print('\rsympy reference: %d/%d' % (k + 1, n_sym), end='', file=sys.stderr)
    t_sympy = time.perf_counter() - t0
    if sys.stderr.isatty():
        print(file=sys.stderr)

    res = {
        'pairs': len(pairs),
        'string': {'pairs': len(pairs), 'seconds': t_string,
                   'checks_per_s': len(pairs) / t_string if t_string > 0 else None,
                   'equal': sv.count('1'), 'verdicts': ''.join(sv)},
        'sympy': {'pairs': n_sym, 'subset': n_sym < len(pairs),
                  'note': ('timed on the first %d of %d pairs' % (n_sym, len(pairs))
                           if n_sym < len(pairs) else 'all pairs'),
                  'seconds': t_sympy, 'checks_per_s': n_sym / t_sympy if t_sympy > 0 else None,
                  'by_kind': {k: {'pairs': v[0], 'seconds': v[1],
                                  'checks_per_s': v[0] / v[1] if v[1] > 0 else None}
                              for k, v in split.items()},
                  'timeout_s': args.timeout, 'equal': yv.count('1'), 'decided_by': hows,
                  'verdicts': ''.join(yv)},
        'sympy_version': sympy.__version__,
        'python': sys.version.split()[0],
    }
    text = json.dumps(res)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    else:
        print(text)


if __name__ == '__main__':
    main()
