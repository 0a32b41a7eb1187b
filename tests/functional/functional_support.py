"""What functional tests share: real builds as root against the host's mirror."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One cache for the whole run (and across runs on a developer's machine):
# the first test pays for the bootstrap, the others reuse it.
CACHE_DIR = Path(os.environ.get("DIB_TEST_CACHE_DIR", "/var/tmp/dib-functional/cache"))


def missing_for_builds() -> str | None:
    if os.geteuid() != 0:
        return "builds need root"
    for tool in ("mmdebstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tools/install-host-deps)"
    return None


needs_build_host = pytest.mark.skipif(missing_for_builds() is not None,
                                      reason=missing_for_builds() or "")
needs_registry = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                    reason="docker-registry is not installed "
                                           "(tools/install-host-deps)")


def mountinfo() -> set[str]:
    with open("/proc/self/mountinfo") as handle:
        return {line.split()[4] for line in handle}


@dataclass
class BuildResult:
    returncode: int
    output: str
    image: Path
    report: dict

    def step(self, name: str) -> dict:
        return next(s for s in self.report["steps"] if s["name"] == name)


@dataclass
class RunningBuild:
    proc: subprocess.Popen
    image: Path
    report: Path

    def finish(self, timeout: float = 900) -> BuildResult:
        try:
            output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            output, _ = self.proc.communicate()
            raise AssertionError(f"build still running after {timeout} s:\n{output[-3000:]}")
        data = json.loads(self.report.read_text()) if self.report.exists() else {}
        return BuildResult(self.proc.returncode, output, self.image, data)


class Builds:
    """Runs disk-image-create as a user would, in a scratch directory."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.workdir = scratch / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.elements = scratch / "elements"
        self.elements.mkdir(exist_ok=True)

    def run(self, *args: str, name: str = "image", env: dict | None = None,
            cache: bool = True, timeout: float = 900, ramdisk: bool = False,
            cache_dir: Path = CACHE_DIR) -> BuildResult:
        return self.start(*args, name=name, env=env, cache=cache,
                          ramdisk=ramdisk, cache_dir=cache_dir).finish(timeout)

    def start(self, *args: str, name: str = "image", env: dict | None = None,
              cache: bool = True, ramdisk: bool = False,
              cache_dir: Path = CACHE_DIR) -> "RunningBuild":
        """A build running in the background; ``finish()`` waits for it.
        With ``ramdisk``, as ramdisk-image-create."""
        image = self.scratch / name
        report = self.scratch / f"{name}.report.json"
        report.unlink(missing_ok=True)
        program = ["-c", "import sys; from dib.cli.dic import ramdisk_image_create; "
                         "sys.exit(ramdisk_image_create())"] if ramdisk else ["-m", "dib.cli.dic"]
        argv = [sys.executable, *program, "-o", str(image),
                "--workdir", str(self.workdir), "--json-report", str(report),
                "--cache-dir", str(cache_dir), *([] if cache else ["--no-cache"]), *args]
        full_env = dict(os.environ, ELEMENTS_PATH=str(self.elements), PYTHONPATH=str(ROOT))
        full_env.update(env or {})
        proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=self.scratch,
                                start_new_session=True)
        return RunningBuild(proc, image, report)

    def element(self, name: str, files: dict[str, str], executable: tuple[str, ...] = ()
                ) -> Path:
        """Write an element; files named in ``executable`` (or under a phase
        directory) get the executable bit."""
        root = self.elements / name
        if root.exists():
            shutil.rmtree(root)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            phase_dir = rel.split("/")[0]
            if rel in executable or (phase_dir.endswith(".d") and phase_dir != "environment.d"):
                path.chmod(0o755)
        return root

    def leaked_mounts(self, before: set[str]) -> list[str]:
        """Mounts that appeared since ``before`` and belong to our builds (other
        work on a shared machine may mount things of its own meanwhile)."""
        return sorted(m for m in mountinfo() - before
                      if "dib-build-" in m or m.startswith(str(self.scratch)))

    def workspaces(self) -> list[Path]:
        return sorted(self.workdir.glob("dib-build-*"))


def read_tar_member(tar: Path, name: str) -> bytes | None:
    with tarfile.open(tar) as archive:
        try:
            member = archive.extractfile(name)
        except KeyError:
            return None
        return member.read() if member else None


class LocalRegistry:
    """The distribution registry (Debian's docker-registry) serving a
    temporary directory on a free loopback port, started from a config of
    our own (not the packaged service)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = root / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.config = root / "config.yml"
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, repository: str = "dib/phases") -> str:
        return f"oci://{self.host}/{repository}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.root / "registry.log", "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("docker-registry exited:\n" +
                                     (self.root / "registry.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"docker-registry did not answer /v2/ within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get_json(self, path: str) -> dict:
        request = urllib.request.Request(
            f"http://{self.host}/v2/{path}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def blob_file(self, digest: str) -> Path:
        """Where the registry's filesystem storage keeps a blob's bytes."""
        algorithm, hexdigest = digest.split(":", 1)
        return (self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] /
                hexdigest / "data")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
