#!/usr/bin/env python3
"""Checks the shape of src/: the top-level modules form no cycle, and nothing outside
src/commands/ (and src/main.rs) prints.

  scripts/check-layers.py [SRC]     check SRC (default: src/ of this repository)
  scripts/check-layers.py --self-test

Edges come from the `crate::` paths of the shipped code: `use crate::a::b`, `use crate::{a, b}`,
`crate::a::f()` in an expression. A file under src/X/ or src/X.rs belongs to the top-level module
X; an edge X -> Y is recorded when code of X names `crate::Y`. Test code is left out: a
`#[cfg(test)]` item (an inline `mod tests { ... }`, or `mod tests;` whose file is then skipped,
also when `#[path = "x_tests.rs"]` names it) and
files that only tests compile. Comments and string literals are blanked first, so a path in a doc
comment or a message is not an edge.

Printing means `print!`, `println!`, `eprint!`, `eprintln!`, `dbg!`, or writing to
`std::io::stdout()` / `stderr()`: the summary, the plan and the metrics are values that
src/commands/ renders. Logging through `tracing` is not printing.

Exit 0 when both hold; 1 with one line per cycle and per print site otherwise.
"""
import os
import re
import sys
import tempfile

PRINT = re.compile(r"\b(?:e?print(?:ln)?|dbg)!\s*\(|\bio::(?:stdout|stderr)\s*\(|\bstd::io::(?:stdout|stderr)\s*\(")
CRATE_PATH = re.compile(r"\bcrate::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
ROOT_FILES = {"lib.rs", "main.rs"}
TEST_PATH_MOD = re.compile(
    r'#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]\s*#\s*\[\s*path\s*=\s*"([^"]+)"\s*\]'
    r'|#\s*\[\s*path\s*=\s*"([^"]+)"\s*\]\s*#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]'
)
PRINT_ALLOWED = ("commands", "main.rs")


def blank(src):
    """The source with comments, string and char literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            # a char literal ('a', '\n', '\u{..}'), not a lifetime ('a in <'a>)
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", src[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(src, open_at):
    depth = 0
    for j in range(open_at, len(src)):
        if src[j] == "{":
            depth += 1
        elif src[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(src) - 1


def strip_test_items(src):
    """Removes `#[cfg(test)]` items; returns (code, names of `mod x;` declared test-only)."""
    test_mods = set()
    while True:
        m = re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", src)
        if not m:
            return src, test_mods
        rest = src[m.end():]
        decl = re.match(r"\s*(?:#\s*\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", rest)
        if decl:
            test_mods.add(decl.group(1))
            end = m.end() + decl.end()
        else:
            # the item ends at its first top-level `;` or at the brace matching its first `{`
            semi, brace = rest.find(";"), rest.find("{")
            if brace >= 0 and (semi < 0 or brace < semi):
                end = m.end() + matching_brace(rest, brace) + 1
            else:
                end = m.end() + (semi + 1 if semi >= 0 else len(rest))
        src = src[: m.start()] + re.sub(r"[^\n]", " ", src[m.start():end]) + src[end:]


def module_files(src_dir):
    """(path, top-level module or None for lib.rs/main.rs) of every shipped .rs file."""
    skipped = set()
    files = []
    for dirpath, _, names in sorted(os.walk(src_dir)):
        for name in sorted(names):
            if name.endswith(".rs"):
                files.append(os.path.join(dirpath, name))
    code = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        stripped, test_mods = strip_test_items(blank(raw))
        code[path] = stripped
        base = os.path.dirname(path)
        # `#[cfg(test)] #[path = "x_tests.rs"] mod tests;`: the file named, beside this one
        for m in TEST_PATH_MOD.finditer(raw):
            skipped.add(os.path.normpath(os.path.join(base, m.group(1) or m.group(2))))
        stem = os.path.splitext(os.path.basename(path))[0]
        # where this file's `mod x;` children live
        own_dir = base if stem in ("mod", "lib", "main") else os.path.join(base, stem)
        for t in test_mods:
            skipped.add(os.path.join(own_dir, t + ".rs"))
            skipped.add(os.path.join(own_dir, t, "mod.rs"))
            skipped.add(os.path.join(own_dir, t))
    result = []
    for path in files:
        if path in skipped or any(path.startswith(s + os.sep) for s in skipped):
            continue
        rel = os.path.relpath(path, src_dir)
        top = rel.split(os.sep)[0]
        module = None if rel in ROOT_FILES else os.path.splitext(top)[0]
        result.append((path, rel, module, code[path]))
    return result


def edges_and_prints(src_dir):
    edges, prints = {}, []
    for path, rel, module, code in module_files(src_dir):
        if module is not None:
            for m in CRATE_PATH.finditer(code):
                names = m.group(1)
                # in a group `crate::{a::X, b}`, the first segment of each path is the module
                paths = names.strip("{}").split(",") if names.startswith("{") else [names]
                targets = [re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", p) for p in paths]
                targets = [t.group(1) for t in targets if t]
                for t in targets:
                    if t not in ("self", "super", module):
                        line = code.count("\n", 0, m.start()) + 1
                        edges.setdefault(module, {}).setdefault(t, f"{rel}:{line}")
        if not (rel.startswith(PRINT_ALLOWED[0] + os.sep) or rel == PRINT_ALLOWED[1]):
            for m in PRINT.finditer(code):
                line = code.count("\n", 0, m.start()) + 1
                prints.append(f"{rel}:{line}: prints ({m.group(0).strip()}) outside src/commands/")
    return edges, prints


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    nodes = set(edges) | {t for ts in edges.values() for t in ts}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check(src_dir):
    edges, prints = edges_and_prints(src_dir)
    problems = []
    for comp in cycles(edges):
        members = set(comp)
        where = [f"{a} -> {b} ({edges[a][b]})" for a in comp for b in sorted(edges.get(a, {})) if b in members]
        problems.append(f"cycle among top-level modules {{{', '.join(comp)}}}: " + "; ".join(where))
    problems.extend(prints)
    return problems


def self_test():
    cases = [
        ("no cycle, no print", {"a.rs": "use crate::b::X;\n", "b.rs": "pub struct X;\n"}, 0),
        ("a cycle", {"a.rs": "use crate::b::X;\npub struct Y;\n", "b/mod.rs": "use crate::{a::Y, c};\npub struct X;\n", "c.rs": ""}, 1),
        ("a cycle through an expression path", {"a.rs": "fn f() { crate::b::g() }\n", "b.rs": "pub fn g() { let _ = crate::a::f; }\n"}, 1),
        ("a path in a comment or a string is no edge", {"a.rs": "use crate::b::X;\n", "b.rs": "// crate::a\nconst S: &str = \"crate::a\";\n"}, 0),
        ("test code is no edge", {"a.rs": "use crate::b::X;\n#[cfg(test)]\nmod tests { use crate::a; }\n", "b.rs": "#[cfg(test)]\nmod tests;\n", "b/tests.rs": "use crate::a::Z;\n"}, 0),
        ("a #[path] test module is test code", {"a.rs": "use crate::b::X;\n", "b.rs": "#[cfg(test)]\n#[path = \"b_tests.rs\"]\nmod tests;\n", "b_tests.rs": "use crate::a::Z;\nfn f() { println!(\"x\"); }\n"}, 0),
        ("a #[path] module outside tests is shipped code", {"a.rs": "use crate::b::X;\n", "b.rs": "#[path = \"b_more.rs\"]\nmod more;\n", "b_more.rs": "fn f() { println!(\"x\"); }\n"}, 1),
        ("printing outside commands", {"a.rs": "fn f() { println!(\"x\"); }\n"}, 1),
        ("writing to stdout outside commands", {"a.rs": "fn f() { let _ = std::io::stdout(); }\n"}, 1),
        ("printing in commands and in tests", {"commands/run.rs": "fn f() { println!(\"x\"); }\n", "a.rs": "#[cfg(test)]\nmod t { fn g() { eprintln!(\"y\"); } }\n"}, 0),
    ]
    failed = 0
    for name, tree, want in cases:
        with tempfile.TemporaryDirectory() as d:
            for rel, text in tree.items():
                p = os.path.join(d, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write(text)
            got = 1 if check(d) else 0
        status = "ok" if got == want else "FAILED"
        failed += got != want
        print(f"self-test {name}: {status}")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    src_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    src_dir = os.path.normpath(src_dir)
    problems = check(src_dir)
    for p in problems:
        print(f"check-layers: {p}")
    if problems:
        return 1
    print(f"check-layers: {src_dir}: no cycle among top-level modules, nothing prints outside src/commands/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
