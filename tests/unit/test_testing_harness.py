"""dib.testing: fixtures, stub commands and the hook sandbox.

Written with testtools so it runs under pytest and ``python -m testtools.run``.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import fixtures
import testtools

from dib.elements.phases import HOOK_PHASES
from dib.testing import (FakeTargetRoot, HarnessError, HookTestCase, StubCommands,
                         load_python_hook, run_hook)

BASH_HEAD = "#!/bin/bash\nset -eu\nset -o pipefail\n"


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    tool = shutil.which("bwrap")
    if tool is None:
        return False
    proc = subprocess.run([tool, "--ro-bind", "/", "/", "--unshare-all", "true"],
                          capture_output=True)
    return proc.returncode == 0


def needs_bwrap(test):
    return testtools.skipUnless(bwrap_works(), "bubblewrap (bwrap) cannot run here")(test)


class ElementFactory(fixtures.Fixture):
    """Write throwaway elements: ``make('demo', {'install.d/50-x': body})``."""

    def _setUp(self) -> None:
        self.dir = Path(self.useFixture(fixtures.TempDir()).path)

    def make(self, name: str, files: dict[str, str], *,
             executable=(*(p.directory for p in HOOK_PHASES), "bin")) -> Path:
        element = self.dir / name
        for rel, body in files.items():
            path = element / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(body))
            path.chmod(0o755 if path.parent.name in executable else 0o644)
        return element


class TestStubCommands(testtools.TestCase):

    def test_records_argv_stdin_env_and_exit_code(self):
        stubs = self.useFixture(StubCommands({"apt-get": {"exit_code": 3, "stdout": "out\n",
                                                          "stderr": "err\n"}}))
        env = stubs.env({"PATH": "/usr/bin:/bin", "MARK": "m1"})
        proc = subprocess.run(["apt-get", "install", "-y", "foo bar"], input="some input",
                              env=env, capture_output=True, text=True)
        self.assertEqual((3, "out\n", "err\n"), (proc.returncode, proc.stdout, proc.stderr))
        (call,) = stubs.calls("apt-get")
        self.assertEqual(["apt-get", "install", "-y", "foo bar"], call.argv)
        self.assertEqual(["install", "-y", "foo bar"], call.args)
        self.assertEqual("some input", call.stdin)
        self.assertEqual("m1", call.env["MARK"])
        self.assertEqual([], stubs.calls("dpkg"))

    def test_default_set_and_reconfigure(self):
        stubs = self.useFixture(StubCommands())
        self.assertIn("systemctl", stubs.names)
        self.assertIn("install-packages", stubs.names)
        env = stubs.env({"PATH": "/usr/bin:/bin"})
        self.assertEqual(0, subprocess.run(["systemctl", "enable", "x"], env=env).returncode)
        stubs.add("systemctl", exit_code=1)
        self.assertEqual(1, subprocess.run(["systemctl", "enable", "y"], env=env).returncode)
        self.assertEqual([["enable", "x"], ["enable", "y"]],
                         [c.args for c in stubs.calls("systemctl")])
        stubs.reset()
        self.assertEqual([], stubs.calls())

    def test_script_body(self):
        stubs = self.useFixture(StubCommands([]))
        out = Path(self.useFixture(fixtures.TempDir()).path) / "seen"
        stubs.add("dpkg-query", script=f'echo "$@" > {out}; cat > {out}.stdin; exit 4')
        proc = subprocess.run(["dpkg-query", "-W", "x"], input="in", text=True,
                              env=stubs.env({"PATH": "/usr/bin:/bin"}))
        self.assertEqual(4, proc.returncode)
        self.assertEqual("-W x\n", out.read_text())
        self.assertEqual("in", Path(f"{out}.stdin").read_text())

    def test_patch_path(self):
        stubs = self.useFixture(StubCommands(["useradd"], patch_path=True))
        self.assertEqual(str(stubs.bin_dir / "useradd"), shutil.which("useradd"))

    def test_invalid_names_are_refused(self):
        for bad in ("apt get", "/usr/bin/apt-get", "-x", "", "a/b"):
            error = self.assertRaises(HarnessError, StubCommands, [bad])
            self.assertIn(repr(bad), str(error))
        stubs = self.useFixture(StubCommands([]))
        self.assertRaises(HarnessError, stubs.add, "bad name")

    def test_require_real(self):
        StubCommands(["sh"], require_real=True)
        name = "no-such-command-" + uuid.uuid4().hex[:8]
        error = self.assertRaises(HarnessError, StubCommands, [name], require_real=True)
        self.assertIn(name, str(error))
        self.assertIn("no such command", str(error))


class TestFakeTargetRoot(testtools.TestCase):

    def test_layout_and_helpers(self):
        root = self.useFixture(FakeTargetRoot(files={"/etc/hostname": "box\n"}))
        for name in ("etc", "usr/bin", "tmp", "var/lib/dpkg"):
            self.assertTrue(root.join(name).is_dir(), name)
        self.assertEqual("usr/bin", os.readlink(root.join("bin")))
        self.assertEqual("box\n", root.read("etc/hostname"))
        root.write("/etc/motd", "hi\n", mode=0o600)
        self.assertEqual(0o600, root.mode("/etc/motd"))
        self.assertTrue(root.exists("/etc/motd"))
        root.add_dpkg_package("figlet", "2.2.5")
        self.assertIn("Package: figlet", root.read("var/lib/dpkg/status"))

    def test_removed_on_cleanup(self):
        with FakeTargetRoot() as root:
            path = root.path
            root.write("/etc/x", "y")
        self.assertFalse(path.exists())


class TestRunHook(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.elements = self.useFixture(ElementFactory())
        self.root = self.useFixture(FakeTargetRoot())
        self.stubs = self.useFixture(StubCommands())

    @needs_bwrap
    def test_chroot_hook_writes_only_the_fake_root(self):
        name = f"dib-harness-{uuid.uuid4().hex[:8]}"
        element = self.elements.make("writer", {"install.d/50-write": BASH_HEAD + f"""
            echo written > /etc/{name}
            mkdir -p /var/lib/{name}
            touch /var/lib/{name}/state
            """})
        before = self.root.snapshot()
        result = run_hook(element, "install", "50-write", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("written\n", self.root.read(f"/etc/{name}"))
        self.assertFalse(os.path.exists(f"/etc/{name}"))
        self.assertFalse(os.path.exists(f"/var/lib/{name}"))
        after = self.root.snapshot()
        added = sorted(set(after) - set(before))
        self.assertEqual([f"/etc/{name}", f"/var/lib/{name}", f"/var/lib/{name}/state"],
                         added)
        self.assertEqual(set(), set(before) - set(after))

    @needs_bwrap
    def test_host_hook_reads_another_element_kept_under_tmp(self):
        # Element trees in /tmp or /var/tmp (a checkout there, a test's own
        # elements) stay readable although the sandbox gives hooks a private
        # /tmp, as a real build's extra-data.d reads other elements' files.
        other = self.elements.make("other", {"data/blacklist.conf": "blacklist x\n"})
        reader = self.elements.make("reader", {"extra-data.d/50-copy": BASH_HEAD + f"""
            mkdir -p "$TARGET_ROOT/etc"
            cp {other}/data/blacklist.conf "$TARGET_ROOT/etc/copied.conf"
            """})
        self.assertTrue(str(other).startswith(("/tmp/", "/var/tmp/")), other)
        result = run_hook(reader, "extra-data", "50-copy", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("blacklist x\n", self.root.read("/etc/copied.conf"))

    @needs_bwrap
    def test_host_usr_is_read_only(self):
        element = self.elements.make("usr", {"install.d/50-usr": BASH_HEAD + """
            touch /usr/bin/should-not-exist
            """})
        result = run_hook(element, "install", "50-usr", root=self.root, stubs=self.stubs)
        self.assertNotEqual(0, result.exit_code)
        self.assertFalse(os.path.exists("/usr/bin/should-not-exist"))

    @needs_bwrap
    def test_environment_d_is_sourced_in_sort_n_order(self):
        element = self.elements.make("envd", {
            "environment.d/10-second.bash": "export ORDER=\"${ORDER:-}:10\"\n",
            "environment.d/9-first": "export ORDER=\"${ORDER:-}:9\"\n",
            "environment.d/skip~me": "export ORDER=bad\n",
            "environment.d/11-not-exported": "LOCAL_ONLY=1\n",
            "install.d/50-show": BASH_HEAD + """
                echo "order=$ORDER local=${LOCAL_ONLY:-unset}" > /etc/order
                """})
        result = run_hook(element, "install", "50-show", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("order=:9:10 local=unset\n", self.root.read("/etc/order"))

    @needs_bwrap
    def test_dib_environment(self):
        element = self.elements.make("envs", {"install.d/50-env": BASH_HEAD + """
            env > /etc/hook-env
            """})
        result = run_hook(element, "install", "50-env", root=self.root, stubs=self.stubs,
                          env={"DIB_RELEASE": "trixie", "DIB_FOO": "bar"})
        self.assertEqual(0, result.exit_code, result.output)
        env = dict(line.split("=", 1) for line in self.root.read("/etc/hook-env").splitlines())
        self.assertEqual("envs", env["IMAGE_ELEMENT"])
        self.assertEqual("trixie", env["DIB_RELEASE"])
        self.assertEqual("bar", env["DIB_FOO"])
        self.assertEqual("debian", env["DISTRO_NAME"])
        self.assertEqual("0", env["DIB_DEBUG_TRACE"])
        self.assertEqual("/tmp/in_target.d", env["TMP_HOOKS_PATH"])
        self.assertTrue(env["PATH"].startswith("/.dib-testing/bin:"))
        self.assertIn("ARCH", env)
        self.assertNotIn("TARGET_ROOT", env)

    @needs_bwrap
    def test_stub_exit_status_fails_the_hook(self):
        self.stubs.add("apt-get", exit_code=100, stderr="E: no network\n")
        element = self.elements.make("apt", {"pre-install.d/10-apt": BASH_HEAD + """
            echo "before"
            apt-get update
            echo "not reached" > /etc/reached
            """})
        result = run_hook(element, "pre-install", "10-apt", root=self.root, stubs=self.stubs)
        self.assertEqual(100, result.exit_code)
        self.assertIn("E: no network", result.output)
        self.assertFalse(self.root.exists("/etc/reached"))
        self.assertEqual([["apt-get", "update"]], [c.argv for c in result.calls])

    def test_host_phase_sees_target_root(self):
        element = self.elements.make("hosty", {"root.d/10-root": BASH_HEAD + """
            echo "$IMAGE_ELEMENT" > "$TARGET_ROOT/etc/from-root-d"
            [ "$TMP_MOUNT_PATH" = "$TARGET_ROOT" ]
            sudo chroot "$TARGET_ROOT" true
            """})
        result = run_hook(element, "root", "10-root", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("hosty\n", self.root.read("/etc/from-root-d"))
        (call,) = result.calls_to("sudo")
        self.assertEqual(["chroot", str(self.root.path), "true"], call.args)

    @needs_bwrap
    def test_host_phase_cannot_write_the_host(self):
        name = f"dib-harness-{uuid.uuid4().hex[:8]}"
        element = self.elements.make("hostw", {"cleanup.d/10-x": BASH_HEAD + f"""
            touch /etc/{name}
            """})
        result = run_hook(element, "cleanup", "10-x", root=self.root, stubs=self.stubs)
        self.assertNotEqual(0, result.exit_code)
        self.assertFalse(os.path.exists(f"/etc/{name}"))

    @needs_bwrap
    def test_timeout(self):
        element = self.elements.make("slow", {"install.d/50-slow": BASH_HEAD + """
            sleep 30
            """})
        start = time.monotonic()
        result = run_hook(element, "install", "50-slow", root=self.root, stubs=self.stubs,
                          timeout=0.5)
        self.assertLess(time.monotonic() - start, 5)
        self.assertTrue(result.timed_out)
        self.assertEqual(124, result.exit_code)
        self.assertIn("hook timed out after 0.5 s", result.output)

    @needs_bwrap
    def test_python_hook_runs_in_sandbox(self):
        element = self.elements.make("py", {"install.d/50-py": """\
            #!/usr/bin/env python3
            import os, subprocess
            with open("/etc/py-hook", "w") as f:
                f.write(os.environ["IMAGE_ELEMENT"] + "\\n")
            subprocess.run(["systemctl", "enable", "py.service"], check=True)
            """})
        result = run_hook(element, "install", "50-py", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("py\n", self.root.read("/etc/py-hook"))
        self.assertEqual([["systemctl", "enable", "py.service"]],
                         [c.argv for c in result.calls])

    def test_only_the_named_hook_runs_and_output_ends_with_its_own(self):
        element = self.elements.make("pair", {
            "root.d/10-first": BASH_HEAD + 'echo first >> "$TARGET_ROOT/ran"\n',
            "root.d/20-second": BASH_HEAD + 'echo second >> "$TARGET_ROOT/ran"\n'
                                            'echo "last words"\n'})
        result = run_hook(element, "root", "20-second", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertEqual("second\n", self.root.read("/ran"))
        self.assertTrue(result.output.endswith("last words\n"), result.output)
        self.assertNotIn("PROFILING", result.output)

    def test_environment_d_can_be_left_out(self):
        element = self.elements.make("noenv", {
            "environment.d/10-x": "export FROM_ENV_D=yes\n",
            "root.d/10-show": BASH_HEAD + 'echo "${FROM_ENV_D:-no}" > "$TARGET_ROOT/env"\n'})
        run_hook(element, "root", "10-show", root=self.root, stubs=self.stubs)
        self.assertEqual("yes\n", self.root.read("/env"))
        run_hook(element, "root", "10-show", root=self.root, stubs=self.stubs,
                 source_environment=False)
        self.assertEqual("no\n", self.root.read("/env"))

    def test_install_type_hook_runs_through_its_link(self):
        element = self.elements.make("typed", {
            "root.d/typed-source-install/40-x": BASH_HEAD
            + 'echo "$(basename "$(dirname "$0")")" > "$TARGET_ROOT/dir"\n'})
        (element / "root.d/typed-source-install/40-x").chmod(0o755)
        result = run_hook(element, "root", "typed-source-install/40-x", root=self.root,
                          stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        # As in a build, where install-types links it into the phase directory.
        self.assertEqual("root.d\n", self.root.read("/dir"))

    def test_a_hook_that_never_ran_is_an_error_not_a_pass(self):
        # A stub standing in for dib-run-parts' own find hides every hook from it.
        self.stubs.add("find")
        element = self.elements.make("hidden", {"root.d/10-x": BASH_HEAD})
        error = self.assertRaises(HarnessError, run_hook, element, "root", "10-x",
                                  root=self.root, stubs=self.stubs)
        self.assertIn("without running", str(error))

    def test_bad_requests_are_clear_errors(self):
        element = self.elements.make("bad", {"install.d/50-x": BASH_HEAD,
                                             "install.d/60-noexec.sh": "echo\n"})
        (element / "install.d/60-noexec.sh").chmod(0o644)
        error = self.assertRaises(HarnessError, run_hook, element, "install", "99-missing",
                                  root=self.root)
        self.assertIn("no hook install.d/99-missing", str(error))
        error = self.assertRaises(HarnessError, run_hook, element, "install", "60-noexec.sh",
                                  root=self.root)
        self.assertIn("not executable", str(error))
        self.assertRaises(HarnessError, run_hook, element, "nonsense", "50-x", root=self.root)
        self.assertRaises(HarnessError, run_hook, "no-such-element-anywhere", "install",
                          "50-x", root=self.root)

    def test_missing_bwrap_names_the_package(self):
        element = self.elements.make("nobw", {"install.d/50-x": BASH_HEAD})
        self.useFixture(fixtures.MonkeyPatch(
            "dib.testing.hooks.bwrap_path", lambda: None))
        error = self.assertRaises(HarnessError, run_hook, element, "install", "50-x",
                                  root=self.root)
        self.assertIn("bubblewrap", str(error))
        self.assertIn("apt-get install bubblewrap", str(error))

    def test_host_phase_without_bwrap_still_runs(self):
        element = self.elements.make("nobw2", {"root.d/10-x": BASH_HEAD + """
            touch "$TARGET_ROOT/etc/ok"
            """})
        self.useFixture(fixtures.MonkeyPatch(
            "dib.testing.hooks.bwrap_path", lambda: None))
        result = run_hook(element, "root", "10-x", root=self.root, stubs=self.stubs)
        self.assertEqual(0, result.exit_code, result.output)
        self.assertTrue(self.root.exists("/etc/ok"))


class TestLoadPythonHook(testtools.TestCase):

    def test_imports_extensionless_file(self):
        directory = Path(self.useFixture(fixtures.TempDir()).path)
        hook = directory / "50-python-hook"
        hook.write_text("#!/usr/bin/env python3\nimport sys\n\n"
                        "def packages(env):\n    return sorted(env.get('PKGS', '').split())\n\n"
                        "if __name__ == '__main__':\n    sys.exit(99)\n")
        module = load_python_hook(hook)
        self.assertEqual(["a", "b"], module.packages({"PKGS": "b a"}))

    def test_syntax_error_is_clear(self):
        directory = Path(self.useFixture(fixtures.TempDir()).path)
        hook = directory / "50-broken"
        hook.write_text("def (:\n")
        error = self.assertRaises(HarnessError, load_python_hook, hook)
        self.assertIn("line 1", str(error))


class TestRealisticHook(HookTestCase):
    """A hook as an element author would write it, tested through HookTestCase."""

    def setUp(self):
        super().setUp()
        factory = self.useFixture(ElementFactory())
        self.element = factory.make("webby", {
            "README.rst": "webby\n=====\n",
            "environment.d/10-webby.bash": "export WEBBY_SERVICE=${WEBBY_SERVICE:-bar}\n",
            "install.d/50-webby": BASH_HEAD + """
                if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then
                    set -x
                fi
                install-packages foo
                systemctl enable "$WEBBY_SERVICE"
                install -d -m 0755 /etc/webby
                printf 'service=%s\\n' "$WEBBY_SERVICE" > /etc/webby/webby.conf
                chmod 0640 /etc/webby/webby.conf
                """,
        })

    @needs_bwrap
    def test_installs_and_enables(self):
        start = time.monotonic()
        result = self.run_hook("install", "50-webby")
        elapsed = time.monotonic() - start
        self.assertHookSucceeded(result)
        self.assertCalled("install-packages", "foo", exact=True)
        self.assertCalled("systemctl", "enable", "bar")
        self.assertCallOrder("install-packages", "systemctl")
        self.assertNotCalled("apt-get")
        self.assertFileContains("/etc/webby/webby.conf", "service=bar")
        self.assertFileMode("/etc/webby/webby.conf", "0640")
        self.assertLess(elapsed, 2.0)   # typically well under 0.2 s

    @needs_bwrap
    def test_environment_override(self):
        self.run_hook("install", "50-webby", env={"WEBBY_SERVICE": "baz"})
        self.assertHookSucceeded()
        self.assertCalled("systemctl", "enable", "baz")
        self.assertFileContains("/etc/webby/webby.conf", regex=r"^service=baz$")

    @needs_bwrap
    def test_failure_is_reported(self):
        self.stubs.add("install-packages", exit_code=1, stderr="Unable to locate foo\n")
        result = self.run_hook("install", "50-webby")
        self.assertHookFailed(result, exit_code=1)
        self.assertOutputContains("Unable to locate foo")
        self.assertNotCalled("systemctl")
        self.assertFileAbsent("/etc/webby")

    def test_assertion_messages(self):
        error = self.assertRaises(self.failureException, self.assertCalled, "systemctl",
                                  "enable", "x")
        self.assertIn("never called", str(error))


class TestGuideExample(testtools.TestCase):
    """docs/examples/motd-banner: lint-clean, its hook tests pass, its expect.yaml loads."""

    example = Path(__file__).resolve().parents[2] / "docs/examples/motd-banner"

    def setUp(self):
        super().setUp()
        if not self.example.is_dir():
            self.skipTest("the guide's example element is not in this tree")

    def test_lint_clean(self):
        from dib.testing.lint import lint
        report = lint([str(self.example)], environ={})
        self.assertEqual([], [f.text() for f in report.findings])

    @needs_bwrap
    def test_its_hook_tests_pass(self):
        import unittest
        suite = unittest.defaultTestLoader.discover(str(self.example / "tests"),
                                                    top_level_dir=str(self.example / "tests"))
        result = unittest.TestResult()
        suite.run(result)
        self.assertEqual(5, result.testsRun)
        self.assertEqual([], [str(e) for e in result.errors + result.failures])

    def test_expectations_load(self):
        from dib.testing.expect import load_expectations
        spec = load_expectations(self.example / "test-elements/basic")
        self.assertIn("figlet", spec["packages_installed"])


def test_boot_check_gives_the_guest_the_host_cores_up_to_four(tmp_path):
    from dib.testing.boot import qemu_argv
    argv = qemu_argv(tmp_path / "disk.qcow2", firmware="bios")
    cpus = int(argv[argv.index("-smp") + 1])
    assert 1 <= cpus <= min(4, len(os.sched_getaffinity(0)))
    assert argv[argv.index("-drive") + 1].endswith("format=qcow2,if=virtio")
