"""Dump CPython's own line numbers for a few functions, for LineTableTests.

For every code object (nested ones too) it records co_linetable (hex),
co_firstlineno and, for every instruction offset in code units, the line
CPython itself gives: co_positions() has one entry per code unit (3.11+);
3.10, whose co_linetable has another layout (PEP 626), answers through
co_lines(). Run with each supported Python; the output merges into
linetables.json:

    for v in 3.10 3.11 3.12 3.13; do python$v make_linetables.py; done
"""

import json
import os
import sys

SOURCE = '''
def loops(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        while total < i:
            total += 1
    return total


def multi_line(a, b,
               c=3):
    value = (a +
             b *
             c)
    return call(value,
                [a, b,
                 c],
                key=lambda x: (
                    x + 1))


def comprehensions(rows):
    squares = [x * x for x in rows if x % 2]
    table = {k: v
             for k, v in zip(rows, squares)}
    gen = (r for r in rows)
    return squares, table, sum(gen)


def exceptions(path):
    try:
        handle = open(path)
    except FileNotFoundError as error:
        print("missing", error)
        return None
    except (PermissionError,
            IsADirectoryError):
        raise
    else:
        return handle.read()
    finally:
        print("done")


class Shape:
    def area(self):
        with open(__file__) as f:
            data = f.read()
        return len(
            data
        )

    async def fetch(self, session):
        async with session.get("u") as response:
            return await response.text()


def far_lines():
    x = 1
''' + "\n" * 300 + '''    y = x + 1
    return y
'''


def code_objects(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from code_objects(const)


def main():
    version = "%d.%d" % sys.version_info[:2]
    module = compile(SOURCE, "fixture.py", "exec")
    cases = []
    for code in code_objects(module):
        # co_lines(): ranges of byte offsets with a line each.
        ranges = list(code.co_lines())
        if hasattr(code, "co_positions"):
            lines = [position[0] for position in code.co_positions()]
        else:
            lines = [None] * (len(code.co_code) // 2)
            for start, end, line in ranges:
                lines[start // 2:end // 2] = [line] * (end // 2 - start // 2)
        for start, end, line in ranges:
            for offset in range(start // 2, end // 2):
                assert lines[offset] == line, (code.co_name, offset, lines[offset], line)
        cases.append({
            "python": version,
            "qualname": getattr(code, "co_qualname", code.co_name),
            "first_line": code.co_firstlineno,
            "linetable": code.co_linetable.hex(),
            "lines": lines,
        })
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linetables.json")
    existing = []
    if os.path.exists(path):
        with open(path) as f:
            existing = [case for case in json.load(f) if case["python"] != version]
    with open(path, "w") as f:
        json.dump(existing + cases, f, indent=1)
        f.write("\n")
    print("%s: %d code objects" % (version, len(cases)))


if __name__ == "__main__":
    main()
