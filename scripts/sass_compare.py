#!/usr/bin/env python3
"""Compare the GPU machine code (SASS) of the CUDA kernels between a git revision and the working
tree, kernel by kernel, on a machine without a GPU.

A change that leaves every kernel's SASS identical cannot change what the GPU does, so GPU test
and benchmark results of the revision carry over to it (a refactor, a comment, a host-side change
in a .cu file). Each translation unit is compiled to a cubin with the build's own nvcc command
(from BUILD/compile_commands.json; configure the build first) for the revision (a temporary git
worktree) and for the working tree, disassembled with cuobjdump (with nvdisasm, fetched from PyPI into
.deps/ on first use: the CUDA 13 toolkit here has neither), and the functions compared after the
per-file hash of anonymous namespaces and the column alignment are normalized. Instruction encodings are compared too, so a
different register allocation or schedule counts as a difference.

  scripts/sass_compare.py [--base REV] [--build DIR] [TU ...]

TU: source paths under src/ (default: every src/cuda/kernels/*.cu; the CUTLASS GEMM TUs take
minutes each, name them to include them). Exit status 0 when every kernel is identical, 1 when any
differs, 2 on error.
"""
import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# cuobjdump -sass of a cubin runs nvdisasm: both from PyPI, into one folder.
TOOL_WHEELS = (("nvidia-cuda-cuobjdump", "cuobjdump"), ("nvidia-cuda-nvdisasm", "nvdisasm"))
TOOL_VERSION = "13.5.37"
ANON = re.compile(r"_GLOBAL__N__[0-9a-f]+_[0-9]+_[A-Za-z0-9_]+_cu_[0-9a-f]+")


def die(msg):
    print(f"sass_compare: {msg}", file=sys.stderr)
    sys.exit(2)


def cuobjdump():
    """Path of cuobjdump (with nvdisasm beside it): the toolkit's if it has both, else the PyPI
    wheels' under .deps/."""
    if all(os.access(f"/usr/local/cuda/bin/{t}", os.X_OK) for _, t in TOOL_WHEELS):
        return "/usr/local/cuda/bin/cuobjdump"
    dest = os.path.join(ROOT, ".deps", "cuobjdump-" + TOOL_VERSION)
    wheels = os.path.join(ROOT, ".deps", "wheels")
    for name, tool in TOOL_WHEELS:
        exe = os.path.join(dest, tool)
        if os.access(exe, os.X_OK):
            continue
        os.makedirs(wheels, exist_ok=True)
        pattern = os.path.join(wheels, f"{name.replace('-', '_')}-{TOOL_VERSION}-*.whl")
        if not glob.glob(pattern):
            print(f"sass_compare: downloading {name}=={TOOL_VERSION} from PyPI", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--only-binary=:all:", "-d", wheels, f"{name}=={TOOL_VERSION}"])
        found = glob.glob(pattern)
        if not found:
            die(f"could not download {name}=={TOOL_VERSION}")
        os.makedirs(dest, exist_ok=True)
        with zipfile.ZipFile(found[0]) as z:
            member = next((m for m in z.namelist() if m.endswith("/bin/" + tool)), None)
            if member is None:
                die(f"{found[0]} has no bin/{tool}")
            with z.open(member) as src, open(exe + ".part", "wb") as dst:
                dst.write(src.read())
        os.chmod(exe + ".part", 0o755)
        os.replace(exe + ".part", exe)
    return os.path.join(dest, "cuobjdump")


def cubin_command(entry, src_root, tu, out):
    """The build's compile command of `tu`, rewritten to make a cubin from the tree at src_root."""
    args = shlex.split(entry["command"])
    res, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-c", "-o"):
            skip = a == "-o"
            continue
        if a.startswith("-MD") or a.startswith("-MF") or a.startswith("-MT"):
            continue
        if os.path.abspath(a) == os.path.join(ROOT, tu):
            continue
        for d in ("include", "src"):  # the tree's own headers; .deps/ stays the checkout's
            a = re.sub(rf"^(-I|-isystem=?)?{re.escape(ROOT)}/{d}\b", rf"\g<1>{src_root}/{d}", a)
        res.append(a)
    return res + ["-cubin", os.path.join(src_root, tu), "-o", out]


def functions(tool, cubin):
    """{function name: its SASS text} of a cubin."""
    env = dict(os.environ, NVDISASM_PATH=os.path.dirname(tool))
    p = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        die(f"cuobjdump -sass {cubin}: {p.stderr.strip()}")
    text = p.stdout
    funcs, name, body = {}, None, []
    for line in text.splitlines():
        if "identifier =" in line:
            continue
        line = " ".join(ANON.sub("ANON", line).split())  # columns are aligned per file
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            if name:
                funcs[name] = "\n".join(body)
            name, body = m.group(1), []
        elif name:
            body.append(line)
    if name:
        funcs[name] = "\n".join(body)
    return funcs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare against (HEAD)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="configured CUDA build")
    ap.add_argument("tus", nargs="*", help="translation units (paths under the repository)")
    a = ap.parse_args()
    cc = os.path.join(a.build, "compile_commands.json")
    if not os.path.isfile(cc):
        die(f"{cc} not found: configure a CUDA build (cmake -S . -B build -G Ninja ...) first")
    entries = {os.path.relpath(e["file"], ROOT): e for e in json.load(open(cc))}
    tus = a.tus or sorted(os.path.relpath(p, ROOT)
                          for p in glob.glob(os.path.join(ROOT, "src/cuda/kernels/*.cu")))
    for tu in tus:
        if tu not in entries:
            die(f"{tu}: not in {cc} (a .cu file of the CUDA build?)")
    tool = cuobjdump()
    with tempfile.TemporaryDirectory(prefix="sass_compare.") as tmp:
        wt = os.path.join(tmp, "base")
        r = subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--quiet", wt,
                            a.base], capture_output=True, text=True)
        if r.returncode != 0:
            die(f"git worktree add {a.base}: {r.stderr.strip()}")
        try:
            def build(job):
                tree, tu = job
                out = os.path.join(tmp, ("base_" if tree == wt else "work_") +
                                   tu.replace("/", "_") + ".cubin")
                if not os.path.exists(os.path.join(tree, tu)):
                    return job, None, "missing"
                p = subprocess.run(cubin_command(entries[tu], tree, tu, out),
                                   capture_output=True, text=True)
                return job, out if p.returncode == 0 else None, p.stderr[-2000:]

            jobs = [(t, tu) for tu in tus for t in (wt, ROOT)]
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                results = {job: (out, err) for job, out, err in pool.map(build, jobs)}
            differ = False
            for tu in tus:
                (b, berr), (w, werr) = results[(wt, tu)], results[(ROOT, tu)]
                if b is None or w is None:
                    differ = True
                    print(f"{tu}: not comparable ({'base' if b is None else 'work'}: "
                          f"{(berr if b is None else werr).strip().splitlines()[-1:]})")
                    continue
                fb, fw = functions(tool, b), functions(tool, w)
                changed = sorted(n for n in fb.keys() & fw.keys() if fb[n] != fw[n])
                gone, new = sorted(fb.keys() - fw.keys()), sorted(fw.keys() - fb.keys())
                if not (changed or gone or new):
                    print(f"{tu}: identical ({len(fb)} kernels)")
                    continue
                differ = True
                print(f"{tu}: {len(changed)} of {len(fb)} kernels differ, {len(gone)} removed, "
                      f"{len(new)} added")
                for n in changed:
                    print(f"  differs: {n}")
                for n in gone:
                    print(f"  removed: {n}")
                for n in new:
                    print(f"  added:   {n}")
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", wt],
                           capture_output=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
