#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs nap-generator on one test case and checks what it wrote.

A case is a directory (tests/generator/cases/NAME/):
  instances/   the manifests (copied into a temporary Instances= directory;
               a missing instances/ means a missing Instances= directory)
  nap.conf     optional; @INSTANCES@ is replaced by that directory. Without
               it: [Nap] Instances=@INSTANCES@, Root=/srv/nap-test-root.
  scope        optional: "user" or "system", passed as $SYSTEMD_SCOPE
  ASSERT       the assertions, one per line, "## assert-NAME ARGS" (shell
               quoting), "## !assert-NAME ARGS" negates:
    assert-exit N
    assert-stderr-contains TEXT
    assert-key-is FILE SECTION KEY VALUE...   every value of KEY, in order
    assert-key-contains FILE SECTION KEY TEXT  some value contains TEXT
    assert-argv FILE ARG...                   ExecStart= unquoted as systemd
                                              would: exactly this argv
    assert-symlink LINK TARGET
    assert-exposure-at-most UNIT N            systemd-analyze security
FILE and LINK are relative to the output directory. Every file and symlink
in the output must be named by a positive assertion, and each instance
unit the output defines must pass `systemd-analyze verify`.

A golden case (tests/generator/golden/NAME/) has the same inputs and an
expected/ tree, compared with `diff -u -r` after the temporary Instances=
path is replaced by @INSTANCES@ (as systemd's test-fstab-generator does).
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile


class Failure(Exception):
    pass


def parse_unit(path):
    """{(section, key): [values]} with systemd's line rules (comments,
    continuation lines ending in a backslash)."""
    values = {}
    section = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" not in line or section is None:
            raise Failure(f"{path}: not a unit file line: {line!r}")
        key, value = line.split("=", 1)
        values.setdefault((section, key.strip()), []).append(value.strip())
    return values


C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
             "v": "\v", "\\": "\\", '"': '"', "'": "'", "s": " "}


def systemd_words(value):
    """Splits like extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE),
    written independently of the generator's quoting code."""
    words, i, n = [], 0, len(value)
    while True:
        while i < n and value[i] in " \t\n":
            i += 1
        if i >= n:
            return words
        word, quote = "", None
        while i < n and (quote or value[i] not in " \t\n"):
            c = value[i]
            if c == "\\" and quote != "'":
                e = value[i + 1]
                if e not in C_ESCAPES:
                    raise Failure(f"unsupported escape \\{e} in {value!r}")
                word += C_ESCAPES[e]
                i += 2
                continue
            if quote and c == quote:
                quote = None
            elif not quote and c in "'\"":
                quote = c
            else:
                word += c
            i += 1
        if quote:
            raise Failure(f"unterminated quote in {value!r}")
        words.append(word)


def exec_argv(value):
    """The argv a process gets from ExecStart=VALUE: prefixes, then
    specifiers (%% only) and $$ per word."""
    words = systemd_words(value)
    first = words[0]
    at = False
    while first and first[0] in "-@:+!":
        at = at or first[0] == "@"
        first = first[1:]
    words[0] = first
    if at:
        words = words[1:]  # "@PATH ARGV0 ...": argv starts at the second word
    out = []
    for w in words:
        if "%" in w.replace("%%", ""):
            raise Failure(f"unescaped specifier in {w!r}")
        if "$" in w.replace("$$", ""):
            raise Failure(f"unescaped $ in {w!r}")
        out.append(w.replace("%%", "%").replace("$$", "$"))
    return out


class Case:
    def __init__(self, args, casedir, tmp):
        self.args = args
        self.casedir = casedir
        self.tmp = tmp
        self.instances = os.path.join(tmp, "instances")
        self.out = os.path.join(tmp, "out")
        self.scope = None

    def prepare(self):
        src = os.path.join(self.casedir, "instances")
        if os.path.isdir(src):
            shutil.copytree(src, self.instances, symlinks=True)
        conf = os.path.join(self.casedir, "nap.conf")
        text = "[Nap]\nRoot=/srv/nap-test-root\nInstances=@INSTANCES@\n"
        if os.path.exists(conf):
            with open(conf, encoding="utf-8") as f:
                text = f.read()
        with open(os.path.join(self.tmp, "nap.conf"), "w", encoding="utf-8") as f:
            f.write(text.replace("@INSTANCES@", self.instances))
        scope = os.path.join(self.casedir, "scope")
        if os.path.exists(scope):
            with open(scope, encoding="utf-8") as f:
                self.scope = f.read().strip()
        for d in ("out", "early", "late", "xdg"):
            os.mkdir(os.path.join(self.tmp, d))

    def env(self):
        env = dict(os.environ)
        env["NAP_CONFIG"] = os.path.join(self.tmp, "nap.conf")
        env["XDG_RUNTIME_DIR"] = os.path.join(self.tmp, "xdg")
        env.pop("SYSTEMD_SCOPE", None)
        if self.scope:
            env["SYSTEMD_SCOPE"] = self.scope
        return env

    def run_generator(self):
        cmd = [self.args.generator, "--no-kmsg-log", self.out,
               os.path.join(self.tmp, "early"), os.path.join(self.tmp, "late")]
        vglog = os.path.join(self.tmp, "valgrind.log")
        if self.args.valgrind:
            cmd = ["valgrind", "--leak-check=full", "--error-exitcode=1",
                   "--log-file=" + vglog] + cmd
        p = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=300)
        if self.args.valgrind:
            # The generator itself exits 1 for a skipped manifest, so the
            # exit code alone cannot tell; valgrind's summary can.
            with open(vglog, encoding="utf-8") as f:
                log = f.read()
            if "ERROR SUMMARY: 0 errors" not in log:
                raise Failure("valgrind found errors:\n" + log)
        self.rc, self.stderr = p.returncode, p.stderr
        sys.stderr.write(p.stderr)
        for d in ("early", "late"):
            if os.listdir(os.path.join(self.tmp, d)):
                raise Failure(f"generator wrote into the {d} directory")

    def output_files(self):
        found = set()
        for root, dirs, files in os.walk(self.out):
            for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                found.add(os.path.relpath(os.path.join(root, name), self.out))
        return found


def check_assertion(case, name, args, named):
    out = case.out
    if name == "assert-exit":
        return case.rc == int(args[0]), f"exit status {case.rc}"
    if name == "assert-stderr-contains":
        return " ".join(args) in case.stderr, "see the generator's stderr above"
    if name in ("assert-key-is", "assert-key-contains", "assert-argv"):
        path = os.path.join(out, args[0])
        named.add(args[0])
        if not os.path.isfile(path):
            return False, f"{args[0]} does not exist"
        values = parse_unit(path)
        if name == "assert-argv":
            got = values.get(("Service", "ExecStart"), [])
            argv = exec_argv(got[-1]) if got else None
            return argv == args[1:], f"ExecStart= gives argv {argv!r}"
        got = values.get((args[1], args[2]), [])
        if name == "assert-key-is":
            return got == args[3:], f"{args[1]}.{args[2]} = {got!r}"
        return any(args[3] in v for v in got), f"{args[1]}.{args[2]} = {got!r}"
    if name == "assert-symlink":
        named.add(args[0])
        path = os.path.join(out, args[0])
        got = os.readlink(path) if os.path.islink(path) else None
        return got == args[1], f"{args[0]} -> {got!r}"
    if name == "assert-exposure-at-most":
        named.add(args[0] + ".d/50-nap-instance.conf")
        level = exposure(case, args[0])
        print(f"exposure of {args[0]}: {level}")
        return level <= float(args[1]), f"exposure {level}"
    raise Failure(f"unknown assertion {name}")


def exposure(case, unit):
    cmd = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    if case.scope == "user":
        cmd.append("--user")
    p = subprocess.run(cmd + [os.path.join(case.out, unit)], env=case.env(),
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
    if not m:
        raise Failure(f"systemd-analyze security failed:\n{p.stdout}{p.stderr}")
    return float(m.group(1))


def verify(case):
    """Every unit the output defines, as systemd would load it: template
    plus drop-in, instantiated by name."""
    units = set()
    for f in os.listdir(case.out):
        if f.endswith(".service.d"):
            units.add(f[:-2])
        elif f.endswith(".service") and "@." not in f:
            units.add(f)
    for unit in sorted(units):
        cmd = ["systemd-analyze", "--generators=false", "--no-pager", "verify"]
        if case.scope == "user":
            cmd.insert(1, "--user")
        p = subprocess.run(cmd + [os.path.join(case.out, unit)], env=case.env(),
                           capture_output=True, text=True)
        if p.returncode != 0 or p.stderr.strip() or p.stdout.strip():
            raise Failure(f"systemd-analyze verify {unit} (exit {p.returncode}):\n{p.stdout}{p.stderr}")


def run_case(args, casedir, tmp):
    case = Case(args, casedir, tmp)
    case.prepare()
    case.run_generator()
    named, failures = set(), []
    with open(os.path.join(casedir, "ASSERT"), encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.startswith("## ")]
    if not lines:
        raise Failure("case has no assertions")
    for line in lines:
        words = shlex.split(line[3:])
        negate = words[0].startswith("!")
        name = words[0].lstrip("!")
        ok, detail = check_assertion(case, name, words[1:], set() if negate else named)
        if ok == negate:
            failures.append(f"{line}: failed ({detail})")
    unexpected = case.output_files() - named
    if unexpected:
        failures.append("unexpected output files: " + ", ".join(sorted(unexpected)))
    if failures:
        raise Failure("\n".join(failures))
    verify(case)


def run_golden(args, casedir, tmp):
    case = Case(args, casedir, tmp)
    case.prepare()
    case.run_generator()
    verify(case)
    for root, dirs, files in os.walk(case.out):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(case.instances, "@INSTANCES@"))
    p = subprocess.run(["diff", "-u", "-r", "--no-dereference",
                        os.path.join(casedir, "expected"), case.out])
    if p.returncode != 0:
        raise Failure("output differs from expected/ (above)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--golden", action="store_true")
    ap.add_argument("case")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nap-gen-test.") as tmp:
        try:
            (run_golden if args.golden else run_case)(args, os.path.abspath(args.case), tmp)
        except Failure as e:
            print(f"FAIL {args.case}:\n{e}", file=sys.stderr)
            return 1
    print(f"PASS {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
