#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs nap-generator on one test case and checks what it wrote.

A case is a directory (tests/generator/cases/NAME/):
  instances/   the manifests (copied into a temporary Instances= directory;
               a missing instances/ means a missing Instances= directory)
  nap.conf     optional; @INSTANCES@ is replaced by that directory. Without
               it: [Nap] Instances=@INSTANCES@, Root=/srv/nap-test-root.
  scope        optional: "user" or "system", passed as $SYSTEMD_SCOPE
  env          optional: more environment for the generator, KEY=VALUE
               lines
  executables  optional: paths of stub programs to create (one a line), for
               programs the output names that must exist for verify
  ASSERT       the assertions, one per line, "## assert-NAME ARGS" (shell
               quoting), "## !assert-NAME ARGS" negates:
    assert-exit N
    assert-stderr-contains TEXT
    assert-key-is FILE SECTION KEY VALUE...   every value of KEY, in order
    assert-key-contains FILE SECTION KEY TEXT  some value contains TEXT
    assert-keys-are FILE SECTION KEY...        the section has exactly these
                                              keys, in this order (of first
                                              appearance): nothing unasserted
    assert-argv FILE ARG...                   ExecStart= unquoted as systemd
                                              would: exactly this argv
    assert-environment FILE NAME=VALUE...     every Environment= assignment,
                                              unquoted as systemd would
                                              (%% only): exactly these
    assert-instance-argv UNIT ARG...          the same for an instance
                                              (NAME@I.service): its template
                                              and drop-ins, %i expanded
    assert-symlink LINK TARGET
    assert-exposure-at-most UNIT N            systemd-analyze security
FILE and LINK are relative to the output directory. In ASSERT, env,
executables and the manifests, @TMP@ is the case's temporary directory (Instances= is
@TMP@/instances, the configuration @TMP@/nap.conf) and @NAP_DISCOVERY@ the
default nap-discovery path (--discovery-default). Every file and symlink
in the output must be named by a positive assertion, and each instance
unit the output defines, or that such an instance Wants= and the output
defines a template for, must pass `systemd-analyze verify` (where only the
default nap-discovery and podman (--podman) may be missing: neither is
installed at test time, and no container engine runs here).

A golden case (tests/generator/golden/NAME/) has the same inputs and an
expected/ tree, compared with `diff -u -r` after the temporary Instances=
path is replaced by @INSTANCES@ (as systemd's test-fstab-generator does),
then the temporary directory by @TMP@ and the default nap-discovery by
@NAP_DISCOVERY@.
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


def expand_specifiers(word, instance):
    """%% everywhere, %i where the unit is an instance; any other
    specifier is a failure (the generator writes no others)."""
    def one(m):
        if m.group(1) == "%":
            return "%"
        if m.group(1) == "i" and instance is not None:
            return instance
        raise Failure(f"unexpected specifier %{m.group(1)} in {word!r}")
    return re.sub(r"%(.?)", one, word)


def exec_argv(value, instance=None):
    """The argv a process gets from ExecStart=VALUE: prefixes, then
    specifiers (%% only, and %i given the instance) and $$ per word."""
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
        if "$" in w.replace("$$", ""):
            raise Failure(f"unescaped $ in {w!r}")
        out.append(expand_specifiers(w, instance).replace("$$", "$"))
    return out


def section_keys(path, section):
    """The keys of SECTION in the file, each once, in order of first
    appearance."""
    keys = []
    for (sec, key) in parse_unit(path):
        if sec == section and key not in keys:
            keys.append(key)
    return keys


def unit_files(out, unit):
    """The files systemd loads for UNIT from OUT: the unit file, or for an
    instance its template, then the drop-ins in order."""
    name = unit
    if re.fullmatch(r"[^@]+@[^.]+\.service", unit) and not os.path.exists(os.path.join(out, unit)):
        name = re.sub(r"@[^.]+\.", "@.", unit)
    files = [name] if os.path.isfile(os.path.join(out, name)) else []
    for d in (name + ".d", unit + ".d") if name != unit else (unit + ".d",):
        if os.path.isdir(os.path.join(out, d)):
            files += [os.path.join(d, f) for f in sorted(os.listdir(os.path.join(out, d)))
                      if f.endswith(".conf")]
    return files


def unit_values(out, unit):
    """{(section, key): [values]} over the files of UNIT, in load order."""
    values = {}
    for f in unit_files(out, unit):
        for k, v in parse_unit(os.path.join(out, f)).items():
            values.setdefault(k, []).extend(v)
    return values


def instance_of(unit):
    m = re.fullmatch(r"[^@]+@([^.]+)\.service", unit)
    return m.group(1) if m else None


class Case:
    def __init__(self, args, casedir, tmp):
        self.args = args
        self.casedir = casedir
        self.tmp = tmp
        self.instances = os.path.join(tmp, "instances")
        self.out = os.path.join(tmp, "out")
        self.scope = None
        self.extra_env = {}

    def subst(self, text):
        text = text.replace("@TMP@", self.tmp)
        if "@NAP_DISCOVERY@" in text:
            if not self.args.discovery_default:
                raise Failure("@NAP_DISCOVERY@ needs --discovery-default")
            text = text.replace("@NAP_DISCOVERY@", self.args.discovery_default)
        return text

    def read_lines(self, name):
        path = os.path.join(self.casedir, name)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [self.subst(l.rstrip("\n")) for l in f if l.strip()]

    def prepare(self):
        src = os.path.join(self.casedir, "instances")
        if os.path.isdir(src):
            shutil.copytree(src, self.instances, symlinks=True)
            for name in os.listdir(self.instances):
                path = os.path.join(self.instances, name)
                if name.endswith(".json") and os.path.isfile(path) and not os.path.islink(path):
                    with open(path, encoding="utf-8", errors="surrogateescape") as f:
                        text = f.read()
                    if "@TMP@" in text:
                        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                            f.write(text.replace("@TMP@", self.tmp))
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
        for line in self.read_lines("env"):
            key, value = line.split("=", 1)
            self.extra_env[key] = value
        for path in self.read_lines("executables"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(path, 0o755)

    def env(self):
        env = dict(os.environ)
        env["NAP_CONFIG"] = os.path.join(self.tmp, "nap.conf")
        env["XDG_RUNTIME_DIR"] = os.path.join(self.tmp, "xdg")
        env.pop("SYSTEMD_SCOPE", None)
        if self.scope:
            env["SYSTEMD_SCOPE"] = self.scope
        env.pop("NAP_DISCOVERY_BINARY", None)
        env.update(self.extra_env)
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
    if name == "assert-environment":
        path = os.path.join(out, args[0])
        named.add(args[0])
        if not os.path.isfile(path):
            return False, f"{args[0]} does not exist"
        got = [expand_specifiers(w, None) for v in parse_unit(path).get(("Service", "Environment"), [])
               for w in systemd_words(v)]
        return got == args[1:], f"Environment= gives {got!r}"
    if name == "assert-keys-are":
        path = os.path.join(out, args[0])
        named.add(args[0])
        if not os.path.isfile(path):
            return False, f"{args[0]} does not exist"
        got = section_keys(path, args[1])
        return got == args[2:], f"[{args[1]}] has keys {got!r}"
    if name == "assert-instance-argv":
        files = unit_files(out, args[0])
        named.update(files)
        got = unit_values(out, args[0]).get(("Service", "ExecStart"), [])
        argv = exec_argv(got[-1], instance_of(args[0])) if got else None
        return argv == args[1:], f"ExecStart= of {args[0]} ({', '.join(files)}) gives argv {argv!r}"
    if name == "assert-symlink":
        named.add(args[0])
        path = os.path.join(out, args[0])
        got = os.readlink(path) if os.path.islink(path) else None
        return got == args[1], f"{args[0]} -> {got!r}"
    if name == "assert-exposure-at-most":
        named.update(unit_files(out, args[0]))
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


def wanted_instances(case, units):
    """Instances the units Wants= whose template the output defines (the
    discovery sidecars), %i expanded."""
    found = set()
    for unit in units:
        for value in unit_values(case.out, unit).get(("Unit", "Wants"), []):
            for w in value.split():
                w = expand_specifiers(w, instance_of(unit))
                template = re.sub(r"@[^.]+\.", "@.", w)
                if template != w and os.path.isfile(os.path.join(case.out, template)):
                    found.add(w)
    return found


def verify_output_ok(case, unit, p):
    """Clean, or failing only because programs the test cannot install are
    missing: the default nap-discovery, and podman (no container engine
    runs on the test machines). Each such line is exactly systemd's
    message for a missing command; anything else fails."""
    if p.returncode == 0 and not p.stderr.strip() and not p.stdout.strip():
        return True
    programs = [x for x in (case.args.discovery_default, case.args.podman)
                if x and not os.path.exists(x)]
    allowed = {f"{unit}: Command {x} is not executable: No such file or directory": x for x in programs}
    lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    if p.returncode == 1 and lines and all(l in allowed for l in lines):
        missing = sorted({allowed[l] for l in lines})
        print(f"verify {unit}: ok but for the missing {', '.join(missing)}")
        return True
    return False


def verify(case):
    """Every unit the output defines, as systemd would load it: template
    plus drop-in, instantiated by name; and the sidecars those want. A
    drop-in for a unit the output does not define (nap-node.service's) is
    not a unit of its own."""
    units = set()
    for f in os.listdir(case.out):
        if f.endswith(".service.d") and "@" in f:
            units.add(f[:-2])
        elif f.endswith(".service") and "@." not in f:
            units.add(f)
    units |= wanted_instances(case, units)
    for unit in sorted(units):
        cmd = ["systemd-analyze", "--generators=false", "--no-pager", "verify"]
        if case.scope == "user":
            cmd.insert(1, "--user")
        p = subprocess.run(cmd + [os.path.join(case.out, unit)], env=case.env(),
                           capture_output=True, text=True)
        if not verify_output_ok(case, unit, p):
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
        words = [case.subst(w) for w in shlex.split(line[3:])]
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
                text = text.replace(case.instances, "@INSTANCES@").replace(case.tmp, "@TMP@")
                if args.discovery_default:
                    text = text.replace(args.discovery_default, "@NAP_DISCOVERY@")
                f.write(text)
    p = subprocess.run(["diff", "-u", "-r", "--no-dereference",
                        os.path.join(casedir, "expected"), case.out])
    if p.returncode != 0:
        raise Failure("output differs from expected/ (above)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--golden", action="store_true")
    ap.add_argument("--discovery-default",
                    help="the path nap-discovery is installed at (NAP_LIBEXECDIR/nap-discovery)")
    ap.add_argument("--podman", default="/usr/bin/podman",
                    help="the podman the units run (NAP_PODMAN_BINARY); may be missing")
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
