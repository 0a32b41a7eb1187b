#!/usr/bin/env python3
"""Side-by-side timings: dib against diskimage-builder (DIB) 3.43, in one run on one machine.

Run as root from anywhere:  sudo python3 benchmarks/run.py [--only NAME[,NAME]] [--repeat N]

Every measurement is the wall-clock time (time.monotonic()) around one subprocess. Builds run one
at a time, DIB's and ours back to back. Each measurement is appended as one JSON line to
benchmarks/results/<date>.jsonl, and a Markdown table is printed at the end. The machine's load
average is printed and recorded before every measurement, because the machine may be shared.

Standard library only.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
DIBRUN = Path("/tmp/dibrun")
DIB_VENV = DIBRUN / "venv"

SCENARIOS = ["tar-cold", "vm-cold", "vm-warm-unchanged", "vm-warm-finalise-changed",
             "hook-unit-test", "element-test-warm", "element-suite", "ipa-cold",
             "ipa-warm-late-change",
             "cloud-cold", "registry-cache", "reproducible", "sbom-cost", "rootless"]

# goal per scenario: ("ratio", x) means ours <= x * DIB; ("seconds", s) means ours <= s
GOALS = {
    "tar-cold": ("ratio", 0.35),
    "vm-cold": ("ratio", 0.25),
    "vm-warm-unchanged": ("seconds", 3.0),
    "vm-warm-finalise-changed": ("seconds", 5.0),
    "hook-unit-test": ("seconds", 0.5),
    "element-test-warm": ("seconds", 10.0),
    "element-suite warm": ("seconds", 180.0),
    "ipa-cold": ("ratio", 0.5),
    "ipa-warm-late-change": ("seconds", 5.0),
    "cloud-cold": ("ratio", 0.5),
    "cloud-cold boot to login:": ("seconds", 30.0),
    "registry-cache warm registry": ("ratio", 0.1),
    "registry-cache warm registry (seconds)": ("seconds", 10.0),
    "registry-cache cold with push": ("ratio", 1.1),
    "reproducible": ("ratio", 1.05),
    "sbom-cost cold": ("ratio", 0.02),
    "sbom-cost warm": ("seconds", 0.3),
    "rootless cold": ("ratio", 1.15),
    "rootless warm": ("seconds", 5.0),
}
#: the ordinary user the rootless scenario builds as (created, then removed)
BENCH_USER = "dibbench"
IPA_ELEMENTS = ["ironic-python-agent-ramdisk", "debian-minimal"]
IPA_INPUTS = Path("/var/tmp/dib-functional/ipa-inputs")
CLOUD_ELEMENTS = ["debian", "vm", "cloud-init-datasources", "growroot", "devuser",
                  "enable-serial-console"]
# cloud-init-datasources insists on a list, in DIB as in ours
CLOUD_ENV = {"DIB_CLOUD_INIT_DATASOURCES": "NoCloud, ConfigDrive"}

STAMP_HOOK = """#!/bin/bash
# benchmark: a finalise.d hook whose content changes between runs
set -eu -o pipefail
echo "{stamp}" > /etc/bench-stamp
"""


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def log(msg: str) -> None:
    print(msg, flush=True)


def flush_writes() -> None:
    """Before a measured warm rebuild: the fill build just before it left
    gigabytes for the kernel to write back, which builds minutes apart never
    meet, and the rebuild's own writes would wait behind them."""
    os.sync()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dib_bench = Path(args.dib_bench).resolve()
        self.date = _dt.date.today().isoformat()
        self.run_id = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        results_dir = Path(args.results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        self.results_file = results_dir / f"{self.date}.jsonl"
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="dib-bench-", dir="/var/tmp"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.out = self.work / "out"
        self.out.mkdir(exist_ok=True)
        # one phase cache (and one download cache) shared by the vm scenarios of this run
        self.vm_cache = self.work / "cache-vm"
        self.vm_image_cache = self.work / "image-cache-vm"
        self.vm_filled = False
        self.rows: list[dict] = []
        #: (with, without) SOURCE_DATE_EPOCH seconds of each reproducible pair
        self.repro_pairs: list[tuple[float, float]] = []
        #: (rootless, root) seconds of each pair of cold builds
        self.rootless_pairs: list[tuple[float, float]] = []
        self.ours_env = dict(os.environ, DIB_RELEASE=os.environ.get("DIB_RELEASE", "bookworm"))

    # -- plumbing -----------------------------------------------------------------------------

    def timed(self, name: str, argv: list[str], env: dict | None = None,
              cwd: Path | None = None) -> tuple[float, int, Path]:
        """Run argv once; return (wall seconds, exit status, log path)."""
        logf = self.logs / f"{name}.log"
        la = loadavg()
        log(f"  [{time.strftime('%H:%M:%S')}] load {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}  "
            f"-> {name}: {' '.join(argv)}")
        with open(logf, "wb") as out:
            t0 = time.monotonic()
            proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT)
            secs = time.monotonic() - t0
        log(f"     {secs:8.1f} s  rc={proc.returncode}  log {logf}")
        self._last_load = la
        return secs, proc.returncode, logf

    def record(self, scenario: str, who: str, seconds: float | None, rc: int | None,
               **extra) -> dict:
        rec = {"run": self.run_id, "date": self.date, "scenario": scenario, "who": who,
               "seconds": None if seconds is None else round(seconds, 3), "rc": rc,
               "load_before": getattr(self, "_last_load", loadavg()),
               "host_cpus": os.cpu_count()}
        rec.update(extra)
        with open(self.results_file, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        return rec

    def ensure_dib(self) -> None:
        if (DIB_VENV / "bin" / "disk-image-create").exists():
            return
        setup = self.dib_bench / "setup.sh"
        log(f"DIB is not installed in {DIB_VENV}: running {setup}")
        subprocess.run(["bash", str(setup)], check=True)

    def dib_output(self, name: str, ext: str) -> Path:
        return DIBRUN / "out" / f"{name}.{ext}"

    def dib_build(self, name: str, args: list[str], shim: bool = False,
                  env: dict | None = None):
        """DIB through bench/dib/build.sh (or shimrun.sh); output in /tmp/dibrun/out/NAME.*"""
        for old in (DIBRUN / "out").glob(f"{name}.*") if (DIBRUN / "out").is_dir() else []:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        script = self.dib_bench / ("shimrun.sh" if shim else "build.sh")
        secs, rc, logf = self.timed(f"dib-{name}", ["bash", str(script), name, *args],
                                    env=dict(os.environ, **env) if env else None)
        # build.sh exits 0 whatever DIB did; its summary line has DIB's status.
        found = re.search(r"^rc=(\d+) ", logf.read_text(errors="replace"), re.M)
        if found and rc == 0:
            rc = int(found.group(1))
        return secs, rc, logf

    def ours_build(self, name: str, args: list[str], cache: Path | None,
                   image_cache: Path | None, env: dict | None = None,
                   output: str | None = None):
        """Our build; `output` is the -o name (default: name). Builds that should share
        cached phases must use the same output name: IMAGE_NAME is an input of the
        phases from finalise.d on, as hooks can read it."""
        report = self.logs / f"{name}.report.json"
        if report.exists():
            report.unlink()
        argv = ["disk-image-create", "-o", str(self.out / (output or name)),
                "--json-report", str(report),
                "--logfile", str(self.logs / f"{name}.build.log")]
        if cache is not None:
            argv += ["--cache-dir", str(cache)]
        if image_cache is not None:
            argv += ["--image-cache", str(image_cache)]
        argv += args
        secs, rc, logf = self.timed(f"ours-{name}", argv, env=env or self.ours_env)
        return secs, rc, logf, log_steps(report)

    def add_row(self, scenario: str, ours: float | None, dib: float | None, note: str = "",
                ours_ok: bool = True, dib_ok: bool = True, load=None) -> None:
        kind, goal = GOALS.get(scenario, (None, None))
        ratio = ours / dib if (ours and dib and ours_ok and dib_ok) else None
        if not ours_ok or ours is None:
            met = False
        elif kind == "ratio":
            met = None if ratio is None else ratio <= goal
        elif kind == "seconds":
            met = ours <= goal
        else:
            met = None
        goal_text = (f"≤ {goal}× DIB" if kind == "ratio" else f"≤ {goal:g} s") if kind else ""
        self.rows.append({"scenario": scenario, "ours": ours, "dib": dib, "ratio": ratio,
                          "goal": goal_text, "met": met, "note": note,
                          "ours_ok": ours_ok, "dib_ok": dib_ok,
                          "load": load if load is not None else self._last_load})

    # -- scenarios --------------------------------------------------------------------------

    def s_tar_cold(self, i: int) -> None:
        cache = Path(tempfile.mkdtemp(prefix="cache-tar-", dir=self.work))
        icache = Path(tempfile.mkdtemp(prefix="image-cache-tar-", dir=self.work))
        secs, rc, _, steps = self.ours_build(f"tar-cold-{i}", ["-t", "tar", "debian-minimal"],
                                             cache, icache)
        lo = self._last_load
        self.record("tar-cold", "ours", secs, rc, report=steps)
        dsecs, drc, dlog = self.dib_build(f"bench-tar-{i}", ["-t", "tar", "debian-minimal"])
        self.record("tar-cold", "dib", dsecs, drc, log=str(dlog))
        self.add_row("tar-cold", secs, dsecs, ours_ok=rc == 0, dib_ok=drc == 0, load=lo,
                     note="fresh --cache-dir and --image-cache for ours; DIB with its usual "
                          "~/.cache/image-create")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(icache, ignore_errors=True)
        for p in [self.out / f"tar-cold-{i}.tar", self.dib_output(f"bench-tar-{i}", "tar")]:
            if p.exists() and not self.args.keep:
                p.unlink()

    def s_vm_cold(self, i: int) -> None:
        shutil.rmtree(self.vm_cache, ignore_errors=True)
        shutil.rmtree(self.vm_image_cache, ignore_errors=True)
        self.vm_cache.mkdir(parents=True)
        self.vm_image_cache.mkdir(parents=True)
        name = f"vm-cold-{i}"
        secs, rc, _, steps = self.ours_build(name, ["debian-minimal", "vm"], self.vm_cache,
                                             self.vm_image_cache, output="vm")
        lo = self._last_load
        self.vm_filled = rc == 0
        self.record("vm-cold", "ours", secs, rc, report=steps)
        dname = f"bench-vm-{i}"
        dsecs, drc, dlog = self.dib_build(dname, ["debian-minimal", "vm"], shim=True)
        self.record("vm-cold", "dib", dsecs, drc, log=str(dlog))
        self.add_row("vm-cold", secs, dsecs, ours_ok=rc == 0, dib_ok=drc == 0, load=lo,
                     note="MBR qcow2; DIB with the kpartx/dmsetup shim")
        dimg = self.dib_output(dname, "qcow2")
        self.boot_both("vm-cold", i, self.out / "vm.qcow2" if rc == 0 else None,
                       dimg if drc == 0 else None)
        if not self.args.keep and dimg.exists():
            dimg.unlink()

    def boot_both(self, scenario: str, i: int, img: Path | None, dimg: Path | None) -> None:
        """Boot our image and DIB's (BIOS) and record the seconds to login:."""
        ours_boot = dib_boot = None
        if img is not None and img.exists():
            bsecs, brc, blog = self.timed(f"boot-ours-{scenario}-{i}", [
                "dib", "boot", str(img), "--firmware", "bios", "--json", "--timeout", "180",
                "--log", str(self.logs / f"boot-ours-{scenario}-{i}.console")])
            data = parse_json_out(blog)
            ours_boot = data.get("seconds") if data and brc == 0 else None
            self.record(f"{scenario}-boot", "ours", ours_boot, brc, wall=round(bsecs, 2),
                        size_bytes=img.stat().st_size, boot=data)
        if dimg is not None and dimg.exists():
            bsecs, brc, blog = self.timed(f"boot-dib-{scenario}-{i}", [
                sys.executable, str(self.dib_bench / "bootcheck.py"), str(dimg),
                str(self.logs / f"boot-dib-{scenario}-{i}.console"), "180"])
            data = parse_json_out(blog)
            if data and data.get("reached_login"):
                dib_boot = data["milestones_s"].get("login:")
            self.record(f"{scenario}-boot", "dib", dib_boot, brc, wall=round(bsecs, 2),
                        size_bytes=dimg.stat().st_size, boot=data)
        self.add_row(f"{scenario} boot to login:", ours_boot, dib_boot,
                     ours_ok=ours_boot is not None, dib_ok=dib_boot is not None,
                     note="BIOS, qemu TCG; ours `dib boot`, DIB's bootcheck.py")

    def s_cloud_cold(self, i: int) -> None:
        cache = Path(tempfile.mkdtemp(prefix="cache-cloud-", dir=self.work))
        icache = Path(tempfile.mkdtemp(prefix="image-cache-cloud-", dir=self.work))
        name = f"cloud-cold-{i}"
        secs, rc, _, steps = self.ours_build(name, CLOUD_ELEMENTS, cache, icache,
                                             env=dict(self.ours_env, **CLOUD_ENV))
        lo = self._last_load
        self.record("cloud-cold", "ours", secs, rc, report=steps)
        dname = f"bench-cloud-{i}"
        dsecs, drc, dlog = self.dib_build(dname, CLOUD_ELEMENTS, shim=True, env=CLOUD_ENV)
        self.record("cloud-cold", "dib", dsecs, drc, log=str(dlog))
        self.add_row("cloud-cold", secs, dsecs, ours_ok=rc == 0, dib_ok=drc == 0, load=lo,
                     note="`debian vm cloud-init-datasources growroot devuser "
                          "enable-serial-console`; fresh caches for ours; DIB with the "
                          "kpartx/dmsetup shim")
        dimg = self.dib_output(dname, "qcow2")
        self.boot_both("cloud-cold", i, self.out / f"{name}.qcow2" if rc == 0 else None,
                       dimg if drc == 0 else None)
        if not self.args.keep:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(icache, ignore_errors=True)
            for path in (dimg, self.out / f"{name}.qcow2"):
                path.unlink(missing_ok=True)

    def _fill_vm_cache(self) -> None:
        if self.vm_filled:
            return
        log("  (filling the vm phase cache first; not measured)")
        self.vm_cache.mkdir(parents=True, exist_ok=True)
        self.vm_image_cache.mkdir(parents=True, exist_ok=True)
        _, rc, _, _ = self.ours_build("vm-fill", ["debian-minimal", "vm"], self.vm_cache,
                                      self.vm_image_cache, output="vm")
        self.vm_filled = rc == 0

    def s_vm_warm_unchanged(self, i: int) -> None:
        self._fill_vm_cache()
        secs, rc, _, steps = self.ours_build(f"vm-warm-{i}", ["debian-minimal", "vm"],
                                             self.vm_cache, self.vm_image_cache, output="vm")
        lo = self._last_load
        self.record("vm-warm-unchanged", "ours", secs, rc, report=steps)
        if self.args.skip_dib:
            self.add_row("vm-warm-unchanged", secs, None, ours_ok=rc == 0, load=lo,
                         note="same cache dir and output name as the fill build; DIB skipped")
            return
        dname = f"bench-vm-warm-{i}"
        dsecs, drc, dlog = self.dib_build(dname, ["debian-minimal", "vm"], shim=True)
        self.record("vm-warm-unchanged", "dib", dsecs, drc, log=str(dlog),
                    note="DIB has no phase cache: a normal build with ~/.cache/image-create warm")
        self.add_row("vm-warm-unchanged", secs, dsecs, ours_ok=rc == 0, dib_ok=drc == 0,
                     load=lo, note="same cache dir as vm-cold; DIB: a second normal build")
        if not self.args.keep:
            for p in [self.dib_output(dname, "qcow2")]:
                if p.exists():
                    p.unlink()

    def s_vm_warm_finalise_changed(self, i: int) -> None:
        self._fill_vm_cache()
        elements = Path(tempfile.mkdtemp(prefix="elements-", dir=self.work))
        hook = elements / "bench-stamp" / "finalise.d" / "50-bench-stamp"
        hook.parent.mkdir(parents=True)
        (elements / "bench-stamp" / "README.rst").write_text(
            "bench-stamp\n===========\nBenchmark element: writes a stamp into /etc/bench-stamp.\n")
        env = dict(self.ours_env)
        env["ELEMENTS_PATH"] = ":".join(p for p in [str(elements),
                                                    os.environ.get("ELEMENTS_PATH", "")] if p)
        args = ["debian-minimal", "vm", "bench-stamp"]
        hook.write_text(STAMP_HOOK.format(stamp=f"fill {time.time()}"))
        hook.chmod(0o755)
        log("  (cold-filling with the first hook content; recorded, not the goal figure)")
        fsecs, frc, _, fsteps = self.ours_build(f"vm-stamp-fill-{i}", args, self.vm_cache,
                                                self.vm_image_cache, env=env, output="vm-stamp")
        self.record("vm-warm-finalise-changed-fill", "ours", fsecs, frc, report=fsteps)
        hook.write_text(STAMP_HOOK.format(stamp=f"changed {time.time()}"))
        flush_writes()
        secs, rc, _, steps = self.ours_build(f"vm-stamp-{i}", args, self.vm_cache,
                                             self.vm_image_cache, env=env, output="vm-stamp")
        self.record("vm-warm-finalise-changed", "ours", secs, rc, report=steps)
        self.add_row("vm-warm-finalise-changed", secs, None, ours_ok=rc == 0,
                     note=f"finalise.d hook changed; fill build took {fsecs:.1f} s")
        shutil.rmtree(elements, ignore_errors=True)

    def s_hook_unit_test(self, i: int) -> None:
        tests = "docs/examples/motd-banner/tests"
        secs, rc, logf = self.timed(f"hook-unit-test-{i}", [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
            "--durations-min=0", tests], cwd=REPO)
        text = logf.read_text(errors="replace")
        m = re.search(r"(\d+) passed", text)
        n = int(m.group(1)) if m else 0
        per_test: dict[str, float] = {}
        for dm in re.finditer(r"^([0-9.]+)s (setup|call|teardown)\s+(\S+)", text, re.M):
            per_test[dm.group(3)] = per_test.get(dm.group(3), 0.0) + float(dm.group(1))
        slowest = max(per_test.values()) if per_test else None
        per = secs / n if n else None
        # the goal figure: the slowest test's own time (setup+call+teardown, pytest
        # --durations); the wall time divided by the number of tests is recorded beside it
        self.record("hook-unit-test", "ours", slowest, rc, wall=round(secs, 3), tests=n,
                    wall_per_test=per, per_test=per_test)
        self.add_row("hook-unit-test", slowest, None, ours_ok=rc == 0 and n > 0,
                     note=f"slowest of {n} tests (pytest --durations); whole command "
                          f"{secs:.2f} s incl. interpreter and pytest start-up "
                          f"= {per or 0:.2f} s per test")

    def s_element_test_warm(self, i: int) -> None:
        probe = subprocess.run(["dib", "test", "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if probe.returncode != 0:
            log("  `dib test` is not available: skipped")
            self.record("element-test-warm", "ours", None, None, skipped="no `dib test`")
            self.rows.append({"scenario": "element-test-warm", "ours": None, "dib": None,
                              "ratio": None, "goal": "≤ 10 s", "met": None,
                              "note": "skipped: `dib test` not available",
                              "ours_ok": False, "dib_ok": True, "load": loadavg()})
            return
        element = self.args.test_element
        cache = self.vm_cache if self.vm_filled else Path(
            tempfile.mkdtemp(prefix="cache-test-", dir=self.work))
        cache.mkdir(parents=True, exist_ok=True)
        results = []
        for run in ("first", "warm"):
            jf = self.logs / f"element-test-{run}-{i}.json"
            secs, rc, _ = self.timed(f"element-test-{run}-{i}", [
                "dib", "test", element, "--cache-dir", str(cache), "--json", str(jf)],
                env=self.ours_env)
            cases = []
            try:
                data = json.loads(jf.read_text())
                cases = [{"id": r.get("id"), "outcome": r.get("outcome", r.get("status")),
                          "seconds": r.get("seconds")} for r in data.get("results", [])]
            except (OSError, ValueError):
                pass
            log(f"     cases: {cases}")
            self.record("element-test-warm" if run == "warm" else "element-test-first", "ours",
                        secs, rc, cases=cases, element=element, cache=str(cache))
            results.append((secs, rc, cases))
        secs, rc, cases = results[-1]
        per = max((c["seconds"] for c in cases if c["seconds"] is not None), default=None)
        self.add_row("element-test-warm", per, None, ours_ok=rc == 0 and per is not None,
                     note=f"`dib test {element}`, 2nd run, slowest case; whole command "
                          f"{secs:.1f} s (1st run {results[0][0]:.1f} s)")

    def s_element_suite(self, i: int) -> None:
        """Every shipped test-element (`dib test --all`, boot checks included)
        into an empty cache, then again on it; the cache's size after each."""
        cache = Path(tempfile.mkdtemp(prefix="cache-suite-", dir=self.work))
        runs = {}
        for run in ("cold", "warm"):
            if run == "warm":
                flush_writes()
            jf = self.logs / f"element-suite-{run}-{i}.json"
            secs, rc, _ = self.timed(f"element-suite-{run}-{i}", [
                "dib", "test", "--all", "--cache-dir", str(cache), "--json", str(jf)],
                env=self.ours_env)
            try:
                results = json.loads(jf.read_text()).get("results", [])
            except (OSError, ValueError):
                results = []
            size = _du(cache)
            self.record(f"element-suite {run}", "ours", secs, rc, cases=len(results),
                        cache_bytes=size, case_seconds=round(sum(
                            r.get("seconds") or 0 for r in results), 1))
            runs[run] = (secs, rc, len(results), size)
        secs, rc, cases, size = runs["warm"]
        cold_secs, cold_rc, _, cold_size = runs["cold"]
        self.add_row("element-suite warm", secs, None, ours_ok=rc == 0 and cold_rc == 0,
                     note=f"`dib test --all`, {cases} cases, on the cache the cold run "
                          f"({cold_secs:.0f} s) filled; cache {cold_size / 2**30:.1f} GiB "
                          f"after it, {size / 2**30:.1f} GiB after the warm run")

    # -- the Ironic deploy ramdisk ---------------------------------------------------------

    def ipa_env(self) -> dict[str, str]:
        """ELEMENTS_PATH and DIB_REPOLOCATION_* from tools/prepare-ipa-inputs (pinned PyPI
        releases of ironic-python-agent-builder and ironic-python-agent)."""
        out = subprocess.run([sys.executable, str(REPO / "tools" / "prepare-ipa-inputs"),
                              str(IPA_INPUTS)], check=True, capture_output=True, text=True)
        env_file = Path(out.stdout.strip().splitlines()[-1])
        return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line)

    def s_ipa_cold(self, i: int) -> None:
        inputs = self.ipa_env()
        self.ipa_cache = Path(tempfile.mkdtemp(prefix="cache-ipa-", dir=self.work))
        icache = Path(tempfile.mkdtemp(prefix="image-cache-ipa-", dir=self.work))
        env = dict(self.ours_env, **inputs)
        secs, rc, _, steps = self.ours_build(f"ipa-cold-{i}", IPA_ELEMENTS, self.ipa_cache,
                                             icache, env=env, output="ipa")
        lo = self._last_load
        ours_size = _size(self.out / "ipa.initramfs")
        self.record("ipa-cold", "ours", secs, rc, report=steps, initramfs_bytes=ours_size)
        # DIB cannot trust the host's CAs in its chroot: bench-host-ca does what
        # dib's --host-ca-bundle does, so both reach PyPI through the proxy.
        dib_env = dict(inputs)
        dib_env["ELEMENTS_PATH"] = f"{inputs['ELEMENTS_PATH']}:{HERE / 'elements'}"
        dname = f"bench-ipa-{i}"
        dsecs, drc, dlog = self.dib_build(dname, [*IPA_ELEMENTS, "bench-host-ca"],
                                          env=dib_env)
        dib_size = _size(self.dib_output(dname, "initramfs"))
        self.record("ipa-cold", "dib", dsecs, drc, log=str(dlog), initramfs_bytes=dib_size)
        self.add_row("ipa-cold", secs, dsecs, ours_ok=rc == 0, dib_ok=drc == 0, load=lo,
                     note="`ironic-python-agent-ramdisk debian-minimal`, builder 7.4.0 and "
                          "agent 13.0.0 from PyPI; fresh --cache-dir for ours")
        size_ratio = ours_size / dib_size if ours_size and dib_size else None
        self.rows.append({"scenario": "ipa initramfs size", "ours": None, "dib": None,
                          "ratio": size_ratio, "goal": "±5 % of DIB",
                          "met": None if size_ratio is None else abs(size_ratio - 1) <= 0.05,
                          "note": f"ours {_mib(ours_size)}, DIB {_mib(dib_size)}",
                          "ours_ok": True, "dib_ok": True, "load": lo})
        shutil.rmtree(icache, ignore_errors=True)

    def s_ipa_warm_late_change(self, i: int) -> None:
        inputs = self.ipa_env()
        cache = getattr(self, "ipa_cache", None) or Path(
            tempfile.mkdtemp(prefix="cache-ipa-", dir=self.work))
        elements = Path(tempfile.mkdtemp(prefix="elements-", dir=self.work))
        hook = elements / "bench-stamp" / "finalise.d" / "50-bench-stamp"
        hook.parent.mkdir(parents=True)
        (elements / "bench-stamp" / "README.rst").write_text(
            "bench-stamp\n===========\nBenchmark element: writes /etc/bench-stamp.\n")
        env = dict(self.ours_env, **inputs)
        env["ELEMENTS_PATH"] = f"{elements}:{inputs['ELEMENTS_PATH']}"
        args = [*IPA_ELEMENTS, "bench-stamp"]
        hook.write_text(STAMP_HOOK.format(stamp=f"fill {time.time()}"))
        hook.chmod(0o755)
        log("  (filling with the first hook content; recorded, not the goal figure)")
        fsecs, frc, _, fsteps = self.ours_build(f"ipa-stamp-fill-{i}", args, cache, None,
                                                env=env, output="ipa-stamp")
        self.record("ipa-warm-late-change-fill", "ours", fsecs, frc, report=fsteps)
        hook.write_text(STAMP_HOOK.format(stamp=f"changed {time.time()}"))
        flush_writes()
        secs, rc, _, steps = self.ours_build(f"ipa-stamp-{i}", args, cache, None, env=env,
                                             output="ipa-stamp")
        self.record("ipa-warm-late-change", "ours", secs, rc, report=steps)
        self.add_row("ipa-warm-late-change", secs, None, ours_ok=rc == 0,
                     note=f"finalise.d hook changed; fill build took {fsecs:.1f} s")
        shutil.rmtree(elements, ignore_errors=True)

    def s_registry_cache(self, i: int) -> None:
        """debian-minimal vm three times, each with a fresh local cache: pushing to an
        empty registry, without a registry, then pulling from the registry; and DIB's
        cold build of the same elements for the ratio."""
        registry = start_registry(self.work / f"registry-{i}")
        try:
            remote = ["--cache-remote", f"oci://{registry.host}/dib/phases"]
            runs = {}
            # Each build is a fresh machine: its caches are empty, at the same
            # paths (as the defaults would be; the manifests element records
            # DIB_ENV, which names them, so other paths would change cleanup.d),
            # and nothing of an earlier build is beside the image.
            cache = self.work / f"cache-registry-{i}"
            icache = self.work / f"image-cache-registry-{i}"
            # pushing before the plain build: a warmer page cache cannot favour it
            for label, extra in (("pushing", remote), ("no registry", []),
                                 ("pulling", remote)):
                for path in (cache, icache):
                    shutil.rmtree(path, ignore_errors=True)
                    path.mkdir()
                for old in self.out.glob("registry-vm.*"):
                    if old.is_dir():
                        shutil.rmtree(old)
                    else:
                        old.unlink()
                name = f"registry-{label.split()[0]}-{i}"
                secs, rc, _, steps = self.ours_build(name, [*extra, "debian-minimal", "vm"],
                                                     cache, icache, output="registry-vm")
                runs[label] = (secs, rc, self._last_load)
                self.record("registry-cache", f"ours {label}", secs, rc, report=steps,
                            transfers=step_transfers(self.logs / f"{name}.report.json"))
                shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(icache, ignore_errors=True)
        finally:
            registry.stop()
        dsecs, drc, dlog = self.dib_build(f"bench-registry-{i}", ["debian-minimal", "vm"],
                                          shim=True)
        self.record("registry-cache", "dib", dsecs, drc, log=str(dlog))
        plain, pushing, pulling = (runs[k] for k in ("no registry", "pushing", "pulling"))
        self.add_row("registry-cache warm registry", pulling[0], dsecs, load=pulling[2],
                     ours_ok=pulling[1] == 0, dib_ok=drc == 0,
                     note="`debian-minimal vm`, fresh local cache, every phase in a registry "
                          "on 127.0.0.1; DIB cold")
        self.add_row("registry-cache warm registry (seconds)", pulling[0], None,
                     load=pulling[2], ours_ok=pulling[1] == 0, note="the same build")
        self.add_row("registry-cache cold with push", pushing[0], plain[0], load=pushing[2],
                     ours_ok=pushing[1] == 0, dib_ok=plain[1] == 0,
                     note="ours/ours: pushing every phase to an empty registry against no "
                          "registry, both with fresh local caches")
        dimg = self.dib_output(f"bench-registry-{i}", "qcow2")
        if not self.args.keep and dimg.exists():
            dimg.unlink()

    def s_reproducible(self, i: int) -> None:
        """debian-minimal vm (tar, raw, qcow2) cold with SOURCE_DATE_EPOCH against the same
        build cold without it: what the clamped times, the settled ext4 and FAT times
        and the in-order qcow2 cost."""
        runs = {}
        pair = [("with SOURCE_DATE_EPOCH", {"SOURCE_DATE_EPOCH": "1700000000"}),
                ("without", {})]
        # The first build of a pair ran faster here, whichever it was (the
        # second's bootstrap took seconds longer): the order alternates, so
        # the median of an even number of pairs favours neither.
        for label, env in (pair if i % 2 else pair[::-1]):
            cache = Path(tempfile.mkdtemp(prefix="cache-repro-", dir=self.work))
            icache = Path(tempfile.mkdtemp(prefix="image-cache-repro-", dir=self.work))
            name = f"reproducible-{label.split()[0]}-{i}"
            secs, rc, _, steps = self.ours_build(
                name, ["-t", "tar,raw,qcow2", "debian-minimal", "vm"], cache, icache,
                env=dict(self.ours_env, **env), output="repro-vm")
            runs[label] = (secs, rc, self._last_load)
            self.record("reproducible", f"ours {label}", secs, rc, report=steps)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(icache, ignore_errors=True)
        if not self.args.keep:
            for old in self.out.glob("repro-vm.*"):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        repro, plain = runs["with SOURCE_DATE_EPOCH"], runs["without"]
        self.add_row("reproducible", repro[0], plain[0], load=repro[2],
                     ours_ok=repro[1] == 0, dib_ok=plain[1] == 0,
                     note="ours/ours: `debian-minimal vm` -t tar,raw,qcow2 cold with "
                          "SOURCE_DATE_EPOCH against cold without")
        if repro[1] == 0 and plain[1] == 0:
            self.repro_pairs.append((repro[0], plain[0]))
        if i == self.args.repeat and len(self.repro_pairs) > 1:
            # Two cold builds differ by seconds of mirror and load noise
            # alone; the median of several pairs is what the goal is read from.
            withs, withouts = zip(*self.repro_pairs)
            self.add_row("reproducible", statistics.median(withs),
                         statistics.median(withouts),
                         note=f"median of {len(self.repro_pairs)} pairs of the rows above")

    def s_sbom_cost(self, i: int) -> None:
        """What the SBOM and provenance steps cost in a cold build of debian-minimal vm
        and in a warm rebuild of it, from the builds' own step timings."""
        cache = Path(tempfile.mkdtemp(prefix="cache-sbom-", dir=self.work))
        icache = Path(tempfile.mkdtemp(prefix="image-cache-sbom-", dir=self.work))
        for label in ("cold", "warm"):
            name = f"sbom-{label}-{i}"
            secs, rc, _, steps = self.ours_build(name, ["debian-minimal", "vm"], cache, icache,
                                                 output="sbom-vm")
            spent = sum(s["seconds"] for s in (steps or {}).get("steps", [])
                        if s["name"] in ("sbom", "provenance"))
            self.record(f"sbom-cost {label}", "ours", secs, rc, report=steps,
                        sbom_and_provenance_seconds=round(spent, 3))
            if label == "cold":
                self.add_row("sbom-cost cold", spent, secs, ours_ok=rc == 0,
                             note="ours/ours: the sbom and provenance steps against the whole "
                                  "cold `debian-minimal vm` build they are part of")
            else:
                self.add_row("sbom-cost warm", spent, None, ours_ok=rc == 0,
                             note=f"the same steps in the warm rebuild ({secs:.1f} s in all)")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(icache, ignore_errors=True)

    def s_rootless(self, i: int) -> None:
        """debian-minimal vm cold as an ordinary user with subordinate ids against the same
        build as root (the order alternates between repeats), then the user's warm rebuild
        with one finalise.d hook changed."""
        with bench_user() as user:
            # not under the work directory: only root may enter that
            home = Path(tempfile.mkdtemp(prefix="dib-bench-rootless-", dir="/var/tmp"))
            (home / "out").mkdir()
            for owned in (home, home / "out"):
                os.chown(owned, user.pw_uid, user.pw_gid)
            elements = home / "elements"
            hook = elements / "bench-stamp" / "finalise.d" / "50-bench-stamp"
            hook.parent.mkdir(parents=True)
            (elements / "bench-stamp" / "README.rst").write_text(
                "bench-stamp\n===========\nBenchmark element: writes /etc/bench-stamp.\n")
            hook.write_text(STAMP_HOOK.format(stamp=f"fill {time.time()}"))
            hook.chmod(0o755)
            args = ["debian-minimal", "vm", "bench-stamp"]
            env = dict(self.ours_env, ELEMENTS_PATH=str(elements))
            runs = {}
            for label in (("rootless", "root") if i % 2 else ("root", "rootless")):
                cache = home / f"cache-{label}"
                if label == "root":
                    runs[label] = self.ours_build(f"rootless-root-{i}", args, cache, None,
                                                  env=env, output=f"root-{i}")
                else:
                    runs[label] = self.user_build(user, home, f"rootless-cold-{i}", args, cache)
                self.record("rootless cold", f"ours {label}", runs[label][0], runs[label][1],
                            report=runs[label][3])
            lo = self._last_load
            self.add_row("rootless cold", runs["rootless"][0], runs["root"][0], load=lo,
                         ours_ok=runs["rootless"][1] == 0, dib_ok=runs["root"][1] == 0,
                         note="ours/ours: cold `debian-minimal vm` as an ordinary user against "
                              "the same build as root")
            if runs["rootless"][1] == 0 and runs["root"][1] == 0:
                self.rootless_pairs.append((runs["rootless"][0], runs["root"][0]))
            if i == self.args.repeat and len(self.rootless_pairs) > 1:
                rootless, root = zip(*self.rootless_pairs)
                self.add_row("rootless cold", statistics.median(rootless),
                             statistics.median(root),
                             note=f"median of {len(self.rootless_pairs)} pairs of the rows above")
            hook.write_text(STAMP_HOOK.format(stamp=f"changed {time.time()}"))
            flush_writes()
            secs, rc, _, steps = self.user_build(user, home, f"rootless-warm-{i}", args,
                                                 home / "cache-rootless")
            self.record("rootless warm", "ours rootless", secs, rc, report=steps)
            self.add_row("rootless warm", secs, None, ours_ok=rc == 0,
                         note="the user's rebuild with the finalise.d hook changed")
            shutil.rmtree(home, ignore_errors=True)

    def user_build(self, user, home: Path, name: str, args: list[str], cache: Path):
        """Our build as ``user``, in a clean environment that finds this checkout."""
        report = home / f"{name}.report.json"
        path = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "PYTHONPATH": path, "HOME": str(home), "LANG": "C.UTF-8",
               "DIB_RELEASE": self.ours_env["DIB_RELEASE"],
               "ELEMENTS_PATH": str(home / "elements")}
        argv = ["runuser", "-u", user.pw_name, "--", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()),
                "/usr/bin/python3", "-m", "dib.cli.dic", "-o", str(home / "out" / "image"),
                "--json-report", str(report), "--cache-dir", str(cache), *args]
        secs, rc, logf = self.timed(f"ours-{name}", argv, cwd=home)
        return secs, rc, logf, log_steps(report)

    # -- driver ----------------------------------------------------------------------------

    def run(self, names: list[str]) -> None:
        if any(n in ("tar-cold", "vm-cold", "vm-warm-unchanged", "ipa-cold", "cloud-cold",
                     "registry-cache") for n in names):
            self.ensure_dib()
        log(f"work dir {self.work}; results -> {self.results_file}")
        for i in range(1, self.args.repeat + 1):
            for name in SCENARIOS:
                if name not in names:
                    continue
                la = loadavg()
                log(f"== {name} (#{i})  load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
                getattr(self, "s_" + name.replace("-", "_"))(i)
        print(self.table())

    def table(self) -> str:
        def f(v, unit=" s"):
            return "—" if v is None else f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}"
        lines = [f"\nRun {self.run_id} ({os.cpu_count()} CPUs); results in {self.results_file}\n",
                 "| scenario | load (1 min) | ours | DIB | ours/DIB | goal | met | note |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            ours = f(r["ours"]) if r["ours_ok"] else f"FAILED ({f(r['ours'])})"
            dib = f(r["dib"]) if r["dib_ok"] else "FAILED"
            ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"
            met = {True: "yes", False: "no", None: "—"}[r["met"]]
            lines.append(f"| {r['scenario']} | {r['load'][0]:.2f} | {ours} | {dib} | {ratio} | "
                         f"{r['goal']} | {met} | {r['note']} |")
        return "\n".join(lines)


@contextlib.contextmanager
def bench_user():
    """An ordinary user with 65536 subordinate uids and gids past every range
    in use; removed (with its id ranges) afterwards."""
    try:
        pwd.getpwnam(BENCH_USER)
        subprocess.run(["userdel", BENCH_USER], check=True)     # left by a killed run
    except KeyError:
        pass
    # usermod wants the id files to exist; a host without them has none after
    absent = [Path(p) for p in ("/etc/subuid", "/etc/subgid") if not os.path.exists(p)]
    for path in absent:
        path.touch(mode=0o644)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "--user-group",
                    BENCH_USER], check=True)
    try:
        ends = [int(start) + int(count) for path in ("/etc/subuid", "/etc/subgid")
                if os.path.exists(path)
                for _, start, count in (line.strip().split(":")
                                        for line in open(path) if line.count(":") == 2)]
        first = max([100000, *ends])
        subprocess.run(["usermod", "--add-subuids", f"{first}-{first + 65535}",
                        "--add-subgids", f"{first}-{first + 65535}", BENCH_USER], check=True)
        yield pwd.getpwnam(BENCH_USER)
    finally:
        subprocess.run(["userdel", BENCH_USER], check=True)
        for path in absent:
            if not path.read_text().strip():
                path.unlink()
                Path(f"{path}-").unlink(missing_ok=True)     # usermod's backup


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _du(path: Path) -> int:
    """Bytes a directory takes on disk, each hard-linked file once (du)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 and out.stdout else 0


def _mib(size: int | None) -> str:
    return "—" if size is None else f"{size / (1 << 20):.1f} MiB"


def parse_json_out(path: Path) -> dict | None:
    """The JSON object printed by a command (possibly after other output)."""
    text = path.read_text(errors="replace")
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    return None


def start_registry(root: Path):
    """The registry the functional tests use (Debian's docker-registry on a free
    loopback port, storage under ``root``), started."""
    sys.path.insert(0, str(REPO / "tests" / "functional"))
    from functional_support import LocalRegistry
    registry = LocalRegistry(root)
    registry.start()
    return registry


def step_transfers(path: Path) -> list[dict]:
    """Bytes and seconds each step pulled from or pushed to the registry."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [{"name": s["name"], "pulled": s.get("pulled"), "pushed": s.get("pushed")}
            for s in data.get("steps", []) if s.get("pulled") or s.get("pushed")]


def log_steps(report: Path) -> dict | None:
    """The build report's summary, its steps' seconds logged on one line."""
    steps = summarise_report(report)
    if steps:
        log("     steps: " + ", ".join(
            f"{s['name']} {s['seconds']:.1f}{'(hit)' if s['cached'] else ''}"
            for s in steps["steps"]))
    return steps


def summarise_report(path: Path) -> dict | None:
    """Per-step seconds and cache hits, plus the slowest hooks, from --json-report."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    steps = [{"name": s["name"], "seconds": round(s["seconds"], 2), "cached": s["cached"]}
             for s in data.get("steps", [])]
    hooks = sorted((h for h in data.get("hooks", []) if h.get("seconds") is not None),
                   key=lambda h: h["seconds"], reverse=True)[:8]
    return {"total": round(data.get("seconds", 0.0), 2), "steps": steps,
            "slowest_hooks": [{"hook": f"{h.get('phase')}.d/{h.get('hook')}",
                               "element": h.get("element"),
                               "seconds": round(h["seconds"], 2)} for h in hooks]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", help="comma list of scenarios: " + ", ".join(SCENARIOS))
    p.add_argument("--repeat", type=int, default=1, help="run each scenario N times")
    p.add_argument("--dib-bench", default=str(REPO.parent / "shared" / "bench" / "dib"),
                   help="directory of DIB's bench scripts (default: ../shared/bench/dib "
                        "from the repository root)")
    p.add_argument("--results-dir", default=str(HERE / "results"))
    p.add_argument("--workdir", help="work directory (default: a new /var/tmp/dib-bench-*)")
    p.add_argument("--test-element", default="install-bin",
                   help="element for element-test-warm (default install-bin)")
    p.add_argument("--keep", action="store_true", help="keep images and caches")
    p.add_argument("--skip-dib", action="store_true",
                   help="vm-warm-unchanged: measure ours only (tar-cold and vm-cold always "
                        "run DIB)")
    args = p.parse_args(argv)
    names = SCENARIOS if not args.only else [n.strip() for n in args.only.split(",")]
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario(s) {', '.join(bad)}; choose from {', '.join(SCENARIOS)}")
    if os.geteuid() != 0:
        p.error("run as root (the builds need it)")
    bench = Bench(args)
    try:
        bench.run(names)
    finally:
        if not args.keep:
            for d in bench.work.glob("cache-*"):
                shutil.rmtree(d, ignore_errors=True)
            for d in bench.work.glob("image-cache-*"):
                shutil.rmtree(d, ignore_errors=True)
            for item in bench.out.glob("*"):
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
