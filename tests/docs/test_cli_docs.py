#!/usr/bin/python3
"""`nnc --help` and `nnc COMMAND --help` agree with docs/cli.md:
  - the usage synopsis at the top of cli.md is the `usage:` block of `nnc --help`;
  - each command's section documents exactly the options its --help lists;
  - the stages of `dump` (its --help, the docs' table, the compiler's list) are the same;
  - the environment variables of `nnc --help` are the docs' Environment table;
  - `nnc --version` prints the project version, `nnc help CMD` is `nnc CMD --help`.

    usage: test_cli_docs.py NNC_EXE ROOT
"""
import re
import subprocess
import sys

SECTIONS = {"compile": "## Compile ahead of time", "run": "## Run one entry",
            "check": "## Check a model", "dump": "## See the stages",
            "import": "## Write an ONNX model as .nn",
            "cache": "## The compile cache"}
failures = []


def nnc(*args):
    r = subprocess.run([sys.argv[1], *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def check(cond, msg):
    if not cond:
        failures.append(msg)


def help_of(cmd):
    rc, out, err = nnc("help", cmd) if cmd != "main" else nnc("--help")
    check(rc == 0, f"nnc help {cmd}: exit {rc}")
    return out


def help_options(text):
    """Options of a --help text: lines '  -o FILE', '  --weights W', '  --stage=STAGE'."""
    return {re.split(r"[ =]", m.group(1))[0] for m in re.finditer(r"^  (-[-\w]+(?:[= ]\S+)?)", text, re.M)}


def doc_section(doc, heading):
    start = doc.find(heading)
    if start < 0:
        failures.append(f"docs/cli.md has no section '{heading}'")
        return ""
    end = doc.find("\n## ", start + 1)
    return doc[start:end if end >= 0 else len(doc)]


def doc_options(section):
    """Options in the first column of the section's tables: | `--weights W` | ... |"""
    return {re.split(r"[ =]", m.group(1))[0] for m in re.finditer(r"^\| `(-[-\w]+[^`]*)` \|", section, re.M)}


def words(s):
    return " ".join(s.split())


def main():
    root = sys.argv[2]
    doc = open(f"{root}/docs/cli.md", encoding="utf-8").read()

    # the synopsis
    main_help = help_of("main")
    usage = main_help.split("\n\n")[0].replace("usage:", "", 1)
    synopsis = re.search(r"```\n(.*?)```", doc, re.S).group(1)
    check(words(usage) == words(synopsis),
          f"the synopsis of docs/cli.md differs from `nnc --help`:\n{synopsis}\nvs\n{usage}")

    # options per command
    for cmd, heading in SECTIONS.items():
        got, want = doc_options(doc_section(doc, heading)), help_options(help_of(cmd))
        check(got == want, f"{cmd}: options in `nnc help {cmd}` {sorted(want)} but in docs/cli.md "
                           f"'{heading}' {sorted(got)}")
        for opt in want:
            check(opt in usage or cmd == "dump" and opt == "--stage",
                  f"{cmd}: option {opt} is missing from the usage synopsis")

    # stages
    dump_help = help_of("dump")
    help_stages = re.findall(r"^ {2}(?:--stage=STAGE)? +(\w+) {2,}\S", dump_help, re.M)
    table = doc_section(doc, SECTIONS["dump"])
    doc_stages = re.findall(r"^\| `(\w+)` \|", table, re.M)
    rc, _, err = nnc("dump", "--stage=bogus", f"{root}/examples/realnvp.nn")
    check(rc == 2, f"dump --stage=bogus: exit {rc}, want 2")
    m = re.search(r"one of: ([\w, ]+)", err)
    compiler_stages = m.group(1).split(", ") if m else []
    check(help_stages == compiler_stages, f"dump --help stages {help_stages} vs the compiler's {compiler_stages}")
    check(doc_stages == compiler_stages, f"docs/cli.md stages {doc_stages} vs the compiler's {compiler_stages}")

    # environment
    env_help = re.findall(r"^  ([A-Z][A-Z_]+) ", main_help.split("Environment:")[1], re.M) if "Environment:" in main_help else []
    env_doc = re.findall(r"^\| `([A-Z][A-Z_]+)` \|", doc_section(doc, "## Environment"), re.M)
    check(env_help and sorted(env_help) == sorted(env_doc), f"environment: --help {env_help}, docs {env_doc}")

    # version and help aliases
    version = re.search(r"project\(nnc VERSION ([0-9.]+)", open(f"{root}/CMakeLists.txt").read()).group(1)
    rc, out, _ = nnc("--version")
    check(rc == 0 and out.strip() == f"nnc {version}", f"--version printed {out!r}, want 'nnc {version}'")
    for cmd in ("run", "check", "dump", "import", "cache"):
        check(nnc(cmd, "--help")[1] == help_of(cmd), f"`nnc {cmd} --help` differs from `nnc help {cmd}`")
    check(nnc("model.nn", "--help")[1] == help_of("compile"), "`nnc FILE.nn --help` differs from `nnc help compile`")
    rc, out, err = nnc()
    check(rc == 2 and err == main_help and not out, "`nnc` without arguments: usage to stderr, exit 2")

    for f in failures:
        print("FAIL:", f)
    print("cli docs: " + ("ok" if not failures else f"{len(failures)} problem(s)"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
