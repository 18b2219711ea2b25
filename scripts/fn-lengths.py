#!/usr/bin/env python3
"""The longest Rust functions and files under a folder (issue 11's "functions fit on a screen").

Usage: scripts/fn-lengths.py [FOLDER] [TOP]   (default: planner/src 15)

A function's length is its lines from `fn` to its matching closing brace; comments and string
literals are blanked first so their braces do not count. Functions inside `#[cfg(test)] mod`
blocks are left out. Prints the TOP longest functions, how many are over 80 lines, and the TOP
longest files.
"""
import re, sys, os

def strip(src):
    # replace comments and string/char literals with spaces, keep newlines
    out = []; i = 0; n = len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif src.startswith('/*', i):
            depth = 0; j = i
            while j < n:
                if src.startswith('/*', j): depth += 1; j += 2
                elif src.startswith('*/', j):
                    depth -= 1; j += 2
                    if depth == 0: break
                else: j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif c == 'r' and re.match(r'r#*"', src[i:i+10]) and (i == 0 or not (src[i-1].isalnum() or src[i-1]=='_')):
            m = re.match(r'r(#*)"', src[i:]); hashes = m.group(1)
            end = src.find('"' + hashes, i + len(m.group(0)))
            j = end + 1 + len(hashes)
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j])); i = j
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if m:
                out.append(' ' * len(m.group(0))); i += len(m.group(0))
            else:
                out.append(c); i += 1
        else:
            out.append(c); i += 1
    return ''.join(out)

def fns(path):
    src = open(path).read(); s = strip(src)
    lines = s.split('\n')
    # find test mods: '#[cfg(test)]' followed by mod
    test_ranges = []
    for m in re.finditer(r'#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{', s):
        start = m.end() - 1; end = match(s, start)
        test_ranges.append((s.count('\n', 0, m.start()) + 1, s.count('\n', 0, end) + 1))
    res = []
    for m in re.finditer(r'\bfn\s+(\w+)', s):
        # find body open brace: first '{' or ';' at paren depth 0 after the name
        j = m.end(); depth = 0
        while j < len(s):
            ch = s[j]
            if ch in '(<[': depth += 1
            elif ch in ')>]': depth -= 1
            elif ch == '-' and s[j+1] == '>': j += 2; continue
            elif ch == '=' and s[j+1] == '>': j += 2; continue
            if ch == ';' and depth <= 0: j = -1; break
            if ch == '{' and depth <= 0: break
            j += 1
        if j < 0: continue
        end = match(s, j)
        l0 = s.count('\n', 0, m.start()) + 1; l1 = s.count('\n', 0, end) + 1
        in_test = any(a <= l0 <= b for a, b in test_ranges)
        res.append((l1 - l0 + 1, path, l0, m.group(1), in_test))
    return res

def match(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == '{': depth += 1
        elif s[j] == '}':
            depth -= 1
            if depth == 0: return j
    return len(s)

def main():
    root = sys.argv[1] if len(sys.argv) > 1 else 'planner/src'
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    allf = []
    files = []
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith('.rs'):
                p = os.path.join(d, f); allf += fns(p)
                files.append((sum(1 for _ in open(p)), p))
    allf = [x for x in allf if not x[4]]
    allf.sort(reverse=True)
    print("== functions (outside #[cfg(test)] mods) ==")
    for n, p, l, name, _ in allf[:top]:
        print(f"{n:5} {p}:{l} {name}")
    print(f"over 80: {sum(1 for x in allf if x[0] > 80)}")
    print("== files ==")
    for n, p in sorted(files, reverse=True)[:top]:
        print(f"{n:5} {p}")

if __name__ == "__main__":
    main()
