#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shape of the source tree, checked (docs/ARCHITECTURE.md):

1. lib/ is in layers, lowest first:
       base < protocol < model < clients < cluster < ops
   a file of lib/ includes headers of its own layer and lower ones only;
2. lib/ includes nothing from outside lib/ (but the build's nap-config.h);
3. a program's folder (cli/, generators/, helpers/PROGRAM/) includes from
   lib/ and from itself (helper programs also from helpers/common/), never
   from another program's folder;
4. no circle: among the modules of one folder (a module is FOO.c with
   FOO.h), A includes B and B includes A, directly or through others,
   never happens.

Usage: check-layers.py SOURCE_ROOT. Prints every offence; exit status 1
if there is one."""

import os
import re
import sys

LAYERS = ["base", "protocol", "model", "clients", "cluster", "ops"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
BUILD_HEADERS = {"nap-config.h"}


def sources(root, folder):
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith((".c", ".h")):
                yield os.path.join(dirpath, f)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def resolve(root, path, inc):
    """The file an #include "inc" of path names, relative to root: next to
    the including file first, then lib/ (libnap_dep's include directory)."""
    here = os.path.normpath(os.path.join(os.path.dirname(path), inc))
    if os.path.exists(here):
        return os.path.relpath(here, root)
    in_lib = os.path.join(root, "lib", inc)
    if os.path.exists(in_lib):
        return os.path.relpath(in_lib, root)
    return None  # generated (nap-config.h, embedded texts) or a system header


def layer_of(rel):
    parts = rel.split(os.sep)
    return parts[1] if len(parts) > 2 and parts[0] == "lib" else None


def program_of(rel):
    """The folder a file belongs to: lib, cli, generators, helpers/PROGRAM,
    tests, bench."""
    parts = rel.split(os.sep)
    if parts[0] == "helpers" and len(parts) > 2:
        return os.path.join(parts[0], parts[1])
    return parts[0]


def check_lib(root, errors):
    for path in sources(root, "lib"):
        rel = os.path.relpath(path, root)
        mine = layer_of(rel)
        if mine not in LAYERS:
            errors.append(f"{rel}: lib/{mine}/ is not a layer ({', '.join(LAYERS)})")
            continue
        for inc in includes(path):
            target = resolve(root, path, inc)
            if target is None:
                if inc not in BUILD_HEADERS and not inc.endswith(".varlink.h"):
                    errors.append(f"{rel}: includes \"{inc}\", which is not in lib/")
                continue
            theirs = layer_of(target)
            if theirs is None:
                errors.append(f"{rel}: includes {target}, outside lib/")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                errors.append(f"{rel}: {mine} includes {target} of the higher layer {theirs}")


def check_programs(root, errors):
    # Headers of the program folders, by name: an include found through an
    # include_directories() pointing into another program's folder.
    elsewhere = {}
    for folder in ["cli", "generators", "helpers"]:
        for path in sources(root, folder):
            elsewhere.setdefault(os.path.basename(path), os.path.relpath(path, root))
    for folder in ["cli", "generators", "helpers"]:
        for path in sources(root, folder):
            rel = os.path.relpath(path, root)
            mine = program_of(rel)
            for inc in includes(path):
                target = resolve(root, path, inc)
                if target is None:
                    if os.path.basename(inc) in elsewhere and program_of(elsewhere[os.path.basename(inc)]) != mine:
                        errors.append(f"{rel}: includes \"{inc}\" of {elsewhere[os.path.basename(inc)]}, another program's folder")
                    continue
                theirs = program_of(target)
                if theirs not in ("lib", mine) and not (mine.startswith("helpers/") and theirs == "helpers/common"):
                    errors.append(f"{rel}: includes {target} of another program's folder")


def module_graph(root, folder):
    """Edges module → module between the files of one folder."""
    graph = {}
    for path in sources(root, folder):
        rel = os.path.relpath(path, root)
        directory = os.path.dirname(rel)
        module = os.path.join(directory, os.path.splitext(os.path.basename(rel))[0])
        edges = graph.setdefault(module, set())
        for inc in includes(path):
            target = resolve(root, path, inc)
            if target is None or os.path.dirname(target) != directory:
                continue
            other = os.path.splitext(target)[0]
            if other != module:
                edges.add(other)
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def check_cycles(root, errors):
    folders = set()
    for top in ["lib", "cli", "generators", "helpers"]:
        for path in sources(root, top):
            folders.add(os.path.dirname(os.path.relpath(path, root)))
    for folder in sorted(folders):
        cycle = find_cycle(module_graph(root, folder))
        if cycle:
            errors.append("a circle of includes: " + " → ".join(cycle))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    errors = []
    check_lib(root, errors)
    check_programs(root, errors)
    check_cycles(root, errors)
    for e in errors:
        print(e)
    print(f"check-layers: {len(errors)} offence(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
