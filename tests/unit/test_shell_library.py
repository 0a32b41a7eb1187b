"""DIB's shell library ($_LIB): each function run the way a hook runs it.

Every test writes a one-hook element whose hook sources the library files it
needs from ``$_LIB`` and runs a few lines, then checks what they did to the
fake root and which commands they called. ``dib.testing`` gives the hook
exactly the ``$_LIB`` a build gives, so these test the shipped files.
Host-phase hooks (post-root) see the fake root as TARGET_ROOT; image-phase
hooks (post-install) see it as ``/``.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
from pathlib import Path

import fixtures

from dib.testing import HookResult, HookTestCase

REPO = Path(__file__).resolve().parents[2]
RUN_PARTS = REPO / "hooks" / "dib-run-parts"
PREAMBLE = "#!/bin/bash\nset -eu\nset -o pipefail\n"


def newc_members(data: bytes) -> dict[str, dict]:
    """Name -> {mode, uid, gid, data} of a "newc" cpio archive."""
    out: dict[str, dict] = {}
    pos = 0
    while True:
        header = data[pos:pos + 110]
        assert header[:6] == b"070701", header[:6]
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, uid, gid, size, namesize = fields[1], fields[2], fields[3], fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = {"mode": mode, "uid": uid, "gid": gid, "data": body}


class LibraryTestCase(HookTestCase):
    stub_commands = ("mount", "umount", "chroot", "sudo", "sync")

    def run_lib(self, body: str, *, libs: tuple[str, ...] = ("common-functions",),
                phase: str = "post-root", env: dict[str, str] | None = None,
                files: dict[str, str] | None = None) -> HookResult:
        """Run ``body`` in a hook of a throwaway element after sourcing
        ``libs`` from $_LIB; ``files`` are more files of that element."""
        element = Path(self.useFixture(fixtures.TempDir()).path) / "lib-test"
        hook = element / f"{phase}.d" / "10-snippet"
        hook.parent.mkdir(parents=True)
        (element / "README.rst").write_text("lib-test\n")
        sources = "".join(f'source "$_LIB/{name}"\n' for name in libs)
        hook.write_text(PREAMBLE + sources + body + "\n")
        hook.chmod(0o755)
        for rel, text in (files or {}).items():
            path = element / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if path.parent.name.endswith(".d"):
                path.chmod(0o755)
        # Where a build puts it: bin/ beside $_LIB (a path of the checkout
        # may be hidden in the sandbox, which has a /tmp of its own).
        (element / "bin").mkdir(exist_ok=True)
        shutil.copy2(RUN_PARTS, element / "bin" / "dib-run-parts")
        return self.run_hook(element, phase, "10-snippet", env=env)

    def values(self, result: HookResult) -> dict[str, str]:
        """KEY=VALUE lines the snippet printed."""
        self.assertHookSucceeded(result)
        return dict(re.findall(r"^([A-Z_a-z0-9]+)=(.*)$", result.output, re.M))

    def tree(self, rel: str) -> Path:
        return self.root.join(rel)


# -- the defaults files -------------------------------------------------------

class TestDefaults(LibraryTestCase):

    def test_common_defaults(self):
        result = self.run_lib('echo "ARCH=$ARCH"; echo "CK=$DIB_CHECKSUM"; '
                              'echo "TMPFS=$DIB_NO_TMPFS/$DIB_MIN_TMPFS"; echo "PATH=$PATH"',
                              libs=("common-defaults",),
                              env={"PATH": "/usr/bin:/bin", "ARCH": ""})
        got = self.values(result)
        # Debian's name for the machine, not uname's.
        expected = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
        if expected:
            self.assertEqual(got["ARCH"], expected)
        self.assertTrue(got["ARCH"])
        self.assertEqual(got["CK"], "0")
        self.assertEqual(got["TMPFS"], "0/2")
        self.assertEqual(got["PATH"].split(":")[:2], ["/usr/bin", "/bin"])
        for sbin in ("/sbin", "/usr/sbin", "/usr/local/sbin"):
            self.assertIn(sbin, got["PATH"].split(":"))

    def test_common_defaults_keep_what_the_caller_set(self):
        result = self.run_lib('echo "ARCH=$ARCH"; echo "CK=$DIB_CHECKSUM"',
                              libs=("common-defaults",),
                              env={"ARCH": "arm64", "DIB_CHECKSUM": "sha256"})
        self.assertEqual(self.values(result), {"ARCH": "arm64", "CK": "sha256"})

    def test_img_defaults(self):
        result = self.run_lib('echo "FS=$FS_TYPE"; echo "TYPE=$IMAGE_TYPE"; '
                              'echo "NAME=$IMAGE_NAME"; echo "CK=$DIB_CHECKSUM"',
                              libs=("img-defaults",), env={"IMAGE_NAME": ""})
        self.assertEqual(self.values(result),
                         {"FS": "ext4", "TYPE": "qcow2", "NAME": "image", "CK": "0"})

    def test_ramdisk_defaults(self):
        result = self.run_lib('echo "TMPFS=$DIB_NO_TMPFS/$DIB_MIN_TMPFS"; '
                              'echo "EL=$RAMDISK_ELEMENT"; echo "MOD=$MODULE_ROOT"; '
                              'echo "UDEV=$LIB_UDEV_ROOT"; echo "ARCH=$ARCH"',
                              libs=("ramdisk-defaults",),
                              env={"DIB_MODULE_ROOT": "/opt/k", "RAMDISK_ELEMENT": "dracut-ramdisk"})
        got = self.values(result)
        self.assertEqual(got["TMPFS"], "1/1")
        self.assertEqual(got["EL"], "dracut-ramdisk")
        self.assertEqual(got["MOD"], "/opt/k")
        self.assertEqual(got["UDEV"], "")
        self.assertTrue(got["ARCH"])


# -- common-functions ---------------------------------------------------------

class TestCommonFunctions(LibraryTestCase):

    def test_die(self):
        result = self.run_lib('die "the thing is broken"; echo "NOT=reached"')
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("ERROR: the thing is broken", result.output)
        self.assertNotIn("NOT=reached", result.output)

    def test_tmpfs_check(self):
        body = ('tmpfs_check && echo "A=yes" || echo "A=no"\n'
                'DIB_MIN_TMPFS=0 tmpfs_check && echo "B=yes" || echo "B=no"\n'
                'DIB_MIN_TMPFS=0 DIB_NO_TMPFS=1 tmpfs_check && echo "C=yes" || echo "C=no"\n'
                'DIB_MIN_TMPFS=1000000 tmpfs_check 0 && echo "D=yes" || echo "D=no"\n')
        result = self.run_lib(body, env={"DIB_NO_TMPFS": "0"})
        got = self.values(result)
        self.assertEqual((got["B"], got["C"], got["D"]), ("yes", "no", "no"))
        # A (2 GiB minimum) depends on this machine's RAM; its warning is
        # printed only when it says no.
        self.assertEqual(got["A"] == "no", "Not enough RAM to use tmpfs" in result.output)

    def test_tmpfs_check_says_why_not(self):
        result = self.run_lib("tmpfs_check || true",
                              env={"DIB_NO_TMPFS": "0", "DIB_MIN_TMPFS": "1000000"})
        self.assertHookSucceeded(result)
        self.assertIn("WARNING: Not enough RAM to use tmpfs", result.output)

    def test_mk_build_dir_and_its_cleanup_on_exit(self):
        scratch = self.tree("/scratch")
        scratch.mkdir()
        body = ('mk_build_dir\n'
                'for v in TMP_BUILD_DIR TMP_IMAGE_DIR TMP_HOOKS_PATH OUT_IMAGE_PATH '
                'TMP_IMAGE_PATH; do echo "$v=${!v}"; done\n'
                'env | grep -q "^TMP_BUILD_DIR=" && echo "EXPORTED=1"\n'
                'test -d "$TMP_BUILD_DIR" && test -d "$TMP_IMAGE_DIR" && echo "MADE=1"\n'
                'touch "$TMP_BUILD_DIR/file"\n')
        result = self.run_lib(body, env={"TMP_DIR": str(scratch), "DIB_NO_TMPFS": "1"})
        got = self.values(result)
        build, image = Path(got["TMP_BUILD_DIR"]), Path(got["TMP_IMAGE_DIR"])
        self.assertEqual(build.parent, scratch)
        self.assertTrue(build.name.startswith("dib_build."))
        self.assertTrue(image.name.startswith("dib_image."))
        self.assertEqual(got["TMP_HOOKS_PATH"], f"{build}/hooks")
        self.assertEqual(got["TMP_IMAGE_PATH"], f"{image}/image")
        self.assertEqual(got["OUT_IMAGE_PATH"], got["TMP_IMAGE_PATH"])
        self.assertEqual((got["EXPORTED"], got["MADE"]), ("1", "1"))
        # The EXIT trap removed both when the hook ended.
        self.assertEqual(os.listdir(scratch), [])
        self.assertNotCalled("mount")

    def test_mk_build_dir_on_tmpfs_when_allowed(self):
        scratch = self.tree("/scratch")
        scratch.mkdir()
        result = self.run_lib('mk_build_dir; echo "B=$TMP_BUILD_DIR"; echo "I=$TMP_IMAGE_DIR"',
                              env={"TMP_DIR": str(scratch), "DIB_NO_TMPFS": "0",
                                   "DIB_MIN_TMPFS": "0"})
        got = self.values(result)
        self.assertCalled("mount", "-t", "tmpfs", "tmpfs", got["B"], exact=True)
        self.assertCalled("mount", "-t", "tmpfs", "tmpfs", got["I"], exact=True)

    def test_trap_cleanup_keeps_the_exit_status(self):
        scratch = self.tree("/scratch")
        scratch.mkdir()
        result = self.run_lib("mk_build_dir\nexit 3", env={"TMP_DIR": str(scratch)})
        self.assertHookFailed(result, exit_code=3)
        self.assertEqual(os.listdir(scratch), [])

    def test_save_image_moves_the_image_and_writes_checksums(self):
        out = self.tree("/out")
        out.mkdir()
        body = ('mk_build_dir\n'
                'echo "disk bytes" > "$OUT_IMAGE_PATH"\n'
                f'save_image {out}/disk.img\n')
        result = self.run_lib(body, env={"TMP_DIR": str(self.root.path), "DIB_CHECKSUM": "1"})
        self.assertHookSucceeded(result)
        self.assertEqual((out / "disk.img").read_text(), "disk bytes\n")
        digest = hashlib.sha256(b"disk bytes\n").hexdigest()
        self.assertEqual((out / "disk.img.sha256").read_text(), f"{digest}  disk.img\n")
        md5 = hashlib.md5(b"disk bytes\n").hexdigest()
        self.assertEqual((out / "disk.img.md5").read_text(), f"{md5}  disk.img\n")
        self.assertIn(f"Image file {out}/disk.img created", result.output)

    def test_finish_image_keeps_an_older_image(self):
        out = self.tree("/out")
        out.mkdir()
        (out / "disk.img").write_text("old\n")
        (out / "disk.img.md5").write_text("old sum\n")
        body = ('mk_build_dir\necho new > "$OUT_IMAGE_PATH"\n'
                f'finish_image {out}/disk.img\n')
        result = self.run_lib(body, env={"TMP_DIR": str(self.root.path)})
        self.assertHookSucceeded(result)
        self.assertEqual((out / "disk.img").read_text(), "new\n")
        kept = sorted(p.name for p in out.iterdir() if p.name != "disk.img")
        self.assertEqual(len(kept), 2, kept)
        self.assertRegex(kept[0], r"^disk-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d\.img$")
        self.assertEqual(kept[1], kept[0] + ".md5")
        self.assertEqual((out / kept[0]).read_text(), "old\n")
        # DIB_CHECKSUM is 0: no new checksum.
        self.assertFalse((out / "disk.img.md5").exists())

    def test_finish_image_overwrites_when_asked(self):
        out = self.tree("/out")
        out.mkdir()
        (out / "disk.img").write_text("old\n")
        body = f'mk_build_dir\necho new > "$OUT_IMAGE_PATH"\nfinish_image {out}/disk.img\n'
        result = self.run_lib(body, env={"TMP_DIR": str(self.root.path),
                                         "OVERWRITE_OLD_IMAGE": "1", "DIB_CHECKSUM": "sha256"})
        self.assertHookSucceeded(result)
        self.assertEqual(sorted(os.listdir(out)), ["disk.img", "disk.img.sha256"])

    def test_finish_image_without_an_image_is_an_error(self):
        result = self.run_lib("OUT_IMAGE_PATH=/nonexistent finish_image /tmp/x.img")
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("finish_image: OUT_IMAGE_PATH (/nonexistent) is not a file", result.output)

    def test_check_break(self):
        body = ('check_break before-install echo "RAN=before-install"\n'
                'check_break after-finalise echo "RAN=after-finalise"\n'
                'check_break after-install echo "RAN=after-install"\n')
        result = self.run_lib(body, env={"break": "after-finalise,before-install"})
        self.assertHookSucceeded(result)
        ran = re.findall(r"^RAN=(.*)$", result.output, re.M)
        self.assertEqual(ran, ["before-install", "after-finalise"])
        self.assertIn("At stage before-install", result.output)

    def test_check_element(self):
        result = self.run_lib('check_element && echo "OK=1"\n'
                              'TMP_HOOKS_PATH=/nonexistent check_element')
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("OK=1", result.output)
        self.assertIn("check_element: TMP_HOOKS_PATH (/nonexistent) is not a directory",
                      result.output)

    def test_run_d_runs_a_phase_directory(self):
        files = {"custom.d/20-second": '#!/bin/bash\necho "second in $TARGET_ROOT"\n',
                 "custom.d/10-first": '#!/bin/bash\necho first > "$TARGET_ROOT/first"\n'}
        log = self.tree("/run.log")
        result = self.run_lib(f'run_d custom {log}\nrun_d nothing-here\necho "DONE=1"',
                              files=files)
        self.assertHookSucceeded(result)
        self.assertEqual(self.root.read("/first"), "first\n")
        self.assertIn(f"second in {self.root.path}", log.read_text())
        self.assertIn("DONE=1", result.output)

    def test_run_d_fails_with_its_hooks(self):
        files = {"custom.d/10-fails": "#!/bin/bash\necho about to fail\nexit 4\n"}
        log = self.tree("/run.log")
        result = self.run_lib(f'run_d custom {log} || echo "STATUS=$?"', files=files)
        self.assertEqual(self.values(result)["STATUS"], "4")
        self.assertIn("about to fail", log.read_text())

    def test_eval_run_d(self):
        files = {"custom.d/10-say": "#!/bin/bash\necho 'export PICKED=yes'\necho 'other=no'\n"}
        result = self.run_lib('eval_run_d custom "export PICKED"\n'
                              'echo "GOT=$PICKED"; echo "OTHER=${other:-unset}"', files=files)
        self.assertEqual(self.values(result)["GOT"], "yes")
        self.assertEqual(self.values(result)["OTHER"], "unset")

    def test_unmount_dir(self):
        # The sandbox binds the fake root at its own path: a mount below its parent.
        parent = str(Path(self.root.path).parent)
        result = self.run_lib(f"unmount_dir {parent}")
        self.assertHookSucceeded(result)
        self.assertCalled("umount", "-fl", str(self.root.path), exact=True)

    def test_unmount_dir_leaves_block_device_mounts(self):
        parent = str(Path(self.root.path).parent)
        result = self.run_lib(f"unmount_dir {parent}",
                              env={"DIB_MOUNTPOINTS": f"/boot|/{Path(self.root.path).name}"})
        self.assertHookSucceeded(result)
        self.assertNotCalled("umount", "-fl", str(self.root.path))
        self.assertIn(f"{self.root.path} managed by block device; skipping", result.output)

    def test_unmount_dir_of_a_missing_directory(self):
        result = self.run_lib("unmount_dir /nonexistent")
        self.assertHookSucceeded(result)
        self.assertIn("/nonexistent is not a directory", result.output)

    def test_mount_proc_dev_sys(self):
        result = self.run_lib("mount_proc_dev_sys")
        self.assertHookSucceeded(result)
        root = str(self.root.path)
        self.assertCalled("mount", "-t", "proc", "none", f"{root}/proc", exact=True)
        self.assertCalled("mount", "--bind", "/dev", f"{root}/dev", exact=True)
        self.assertCalled("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620",
                          "devpts", f"{root}/dev/pts", exact=True)
        self.assertCalled("mount", "-o", "ro", "-t", "sysfs", "none", f"{root}/sys", exact=True)

    def test_cleanup_dirs(self):
        build, image = self.tree("/b"), self.tree("/i")
        (build / "mnt").mkdir(parents=True)
        image.mkdir()
        result = self.run_lib("cleanup_build_dir\ncleanup_image_dir\ntrap - EXIT",
                              env={"TMP_BUILD_DIR": str(build), "TMP_IMAGE_DIR": str(image)})
        self.assertHookSucceeded(result)
        self.assertFalse(build.exists())
        self.assertFalse(image.exists())


# -- img-functions ------------------------------------------------------------

def add_kernels(root, boot: dict[str, str], release: str = "etc/debian_version") -> None:
    root.write(f"/{release}", "12.0\n")
    for name, text in boot.items():
        root.write(f"/boot/{name}", text)


class TestSelectBootKernelInitrd(LibraryTestCase):
    SHOW = ('select_boot_kernel_initrd "$TARGET_ROOT"\n'
            'echo "BOOTDIR=$BOOTDIR"; echo "KERNEL=$KERNEL"; echo "RAMDISK=$RAMDISK"')

    def select(self, env=None) -> dict[str, str]:
        return self.values(self.run_lib(self.SHOW, libs=("img-functions",), env=env))

    def test_debian_newest_kernel_and_its_initrd(self):
        add_kernels(self.root, {"vmlinuz-6.1.0-9-amd64": "k9", "vmlinuz-6.1.0-10-amd64": "k10",
                                "initrd.img-6.1.0-9-amd64": "i9",
                                "initrd.img-6.1.0-10-amd64": "i10", "config-6.1.0-10-amd64": ""})
        got = self.select()
        self.assertEqual(got["BOOTDIR"], f"{self.root.path}/boot")
        self.assertEqual(got["KERNEL"], "vmlinuz-6.1.0-10-amd64")
        self.assertEqual(got["RAMDISK"], "initrd.img-6.1.0-10-amd64")

    def test_ubuntu_generic_kernel_first(self):
        add_kernels(self.root, {"vmlinuz-5.15.0-91-generic": "", "vmlinuz-6.0.0-1-custom": "",
                                "initrd.img-5.15.0-91-generic": "",
                                "initrd.img-6.0.0-1-custom": ""})
        got = self.select()
        self.assertEqual((got["KERNEL"], got["RAMDISK"]),
                         ("vmlinuz-5.15.0-91-generic", "initrd.img-5.15.0-91-generic"))

    def test_patterns_choose(self):
        add_kernels(self.root, {"vmlinuz-6.1.0-10-amd64": "", "initrd.img-6.1.0-10-amd64": "",
                                "my-kernel-1.2": "", "my-kernel-1.10": "",
                                "my-initrd-1.2": "", "my-initrd-1.10": ""})
        got = self.select({"DIB_BAREMETAL_KERNEL_PATTERN": "my-kernel-*",
                           "DIB_BAREMETAL_INITRD_PATTERN": "my-initrd-*"})
        self.assertEqual((got["KERNEL"], got["RAMDISK"]), ("my-kernel-1.10", "my-initrd-1.10"))

    def test_one_pattern_alone_has_no_effect(self):
        add_kernels(self.root, {"vmlinuz-6.1.0-10-amd64": "", "initrd.img-6.1.0-10-amd64": "",
                                "my-kernel-1.2": ""})
        got = self.select({"DIB_BAREMETAL_KERNEL_PATTERN": "my-kernel-*"})
        self.assertEqual(got["KERNEL"], "vmlinuz-6.1.0-10-amd64")

    def test_patterns_matching_nothing_are_an_error(self):
        add_kernels(self.root, {"vmlinuz-6.1.0-10-amd64": "", "initrd.img-6.1.0-10-amd64": ""})
        result = self.run_lib(self.SHOW, libs=("img-functions",),
                              env={"DIB_BAREMETAL_KERNEL_PATTERN": "nope-*",
                                   "DIB_BAREMETAL_INITRD_PATTERN": "initrd*"})
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("DIB_BAREMETAL_KERNEL_PATTERN=nope-*", result.output)
        self.assertIn("no kernel found in", result.output)

    def test_redhat_prefers_pae_and_skips_debug(self):
        add_kernels(self.root, {"vmlinuz-5.14.0-1.el9.x86_64": "",
                                "vmlinuz-5.14.0-2.el9.x86_64+debug": "",
                                "vmlinuz-5.14.0-1.el9.PAE": "",
                                "initramfs-5.14.0-1.el9.PAE.img": "",
                                "initramfs-5.14.0-1.el9.x86_64.img": ""},
                    release="etc/redhat-release")
        got = self.select()
        self.assertEqual((got["KERNEL"], got["RAMDISK"]),
                         ("vmlinuz-5.14.0-1.el9.PAE", "initramfs-5.14.0-1.el9.PAE.img"))

    def test_opensuse_follows_the_links(self):
        add_kernels(self.root, {"vmlinuz-6.4.0-1-default": "", "initrd-6.4.0-1-default": ""},
                    release="etc/SuSE-release")
        os.symlink("vmlinuz-6.4.0-1-default", self.root.join("/boot/vmlinuz"))
        os.symlink("initrd-6.4.0-1-default", self.root.join("/boot/initrd"))
        got = self.select()
        self.assertEqual((got["KERNEL"], got["RAMDISK"]),
                         ("vmlinuz-6.4.0-1-default", "initrd-6.4.0-1-default"))

    def test_gentoo(self):
        add_kernels(self.root, {"vmlinuz-6.6.1-gentoo": "", "initramfs-6.6.1-gentoo.img": ""},
                    release="etc/gentoo-release")
        got = self.select()
        self.assertEqual((got["KERNEL"], got["RAMDISK"]),
                         ("vmlinuz-6.6.1-gentoo", "initramfs-6.6.1-gentoo.img"))

    def test_no_kernel_is_a_clear_error(self):
        add_kernels(self.root, {"grub/grub.cfg": ""})
        result = self.run_lib(self.SHOW, libs=("img-functions",))
        self.assertHookFailed(result, exit_code=1)
        self.assertIn(f"select_boot_kernel_initrd: no kernel found in {self.root.path}/boot",
                      result.output)
        self.assertIn("install a kernel in the image", result.output)

    def test_no_boot_dir_is_a_clear_error(self):
        self.root.write("/etc/debian_version", "12\n")
        shutil.rmtree(self.root.join("/boot"), ignore_errors=True)
        result = self.run_lib(self.SHOW, libs=("img-functions",))
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("/boot does not exist, so the image has no kernel", result.output)

    def test_kernel_without_initrd_is_an_error(self):
        add_kernels(self.root, {"vmlinuz-6.1.0-10-amd64": ""})
        result = self.run_lib(self.SHOW, libs=("img-functions",))
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("kernel vmlinuz-6.1.0-10-amd64 found", result.output)
        self.assertIn("no initial ramdisk", result.output)

    def test_unknown_os_is_an_error(self):
        self.root.write("/boot/vmlinuz-1", "")
        result = self.run_lib(self.SHOW, libs=("img-functions",))
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("unable to detect the operating system", result.output)


class TestImgFunctions(LibraryTestCase):
    LIBS = ("common-functions", "img-functions")

    def test_run_in_target(self):
        result = self.run_lib('run_in_target "echo hello; id"', libs=self.LIBS,
                              env={"TMP_MOUNT_PATH": str(self.root.path), "TMPDIR": "/var/tmp"})
        self.assertHookSucceeded(result)
        call = self.stubs.calls("chroot")[0]
        self.assertEqual(call.args[:6], [str(self.root.path), "env", "-u", "TMPDIR",
                                         "-u", "VIRTUAL_ENV"])
        self.assertIn("HOME=/root", call.args)
        self.assertEqual(call.args[-3:], ["sh", "-c", "echo hello; id"])
        path = next(a for a in call.args if a.startswith("PATH="))
        self.assertIn(":/usr/sbin:", path)

    def test_do_extra_package_install(self):
        env = {"TMP_MOUNT_PATH": str(self.root.path), "INSTALL_PACKAGES": "vim curl"}
        self.assertHookSucceeded(self.run_lib("do_extra_package_install", libs=self.LIBS,
                                              env=env))
        self.assertEqual(self.stubs.calls("chroot")[0].args[-1], "install-packages vim curl")
        env["INSTALL_PACKAGES"] = ""
        self.assertHookSucceeded(self.run_lib("do_extra_package_install", libs=self.LIBS,
                                              env=env))
        self.assertNotCalled("chroot")

    def test_unmount_image_runs_the_extra_steps(self):
        marker = self.tree("/detached")
        result = self.run_lib("unmount_image", libs=self.LIBS,
                              env={"TMP_BUILD_DIR": str(self.tree("/nobuild")),
                                   "EXTRA_DETACH": f"touch {marker}",
                                   "EXTRA_UNMOUNT": f"touch {marker}-2"})
        self.assertHookSucceeded(result)
        self.assertTrue(marker.exists())
        self.assertTrue(Path(f"{marker}-2").exists())
        self.assertCalled("sync")

    def test_cleanup_removes_the_build(self):
        scratch = self.tree("/scratch")
        scratch.mkdir()
        result = self.run_lib('mk_build_dir\nmkdir "$TMP_BUILD_DIR/mnt"\ncleanup\n'
                              'ls -A "$TMP_DIR" | wc -l | sed "s/^/LEFT=/"',
                              libs=self.LIBS, env={"TMP_DIR": str(scratch)})
        self.assertEqual(self.values(result)["LEFT"], "0")

    def test_finalise_base(self):
        self.root.write("/etc/resolv.conf", "nameserver 10.0.0.1\n")
        self.root.write("/etc/resolv.conf.ORIG", "# the image's own\n")
        self.root.write("/tmp/leftover/file", "x")
        self.root.write("/var/log/apt/history.log", "lots\n")
        self.root.write("/root/build.log", "x")
        self.root.write("/root/keep.txt", "x")
        files = {"cleanup.d/10-mark": '#!/bin/bash\ntouch "$TARGET_ROOT/cleanup-ran"\n'}
        result = self.run_lib("finalise_base", libs=self.LIBS, files=files,
                              env={"TMP_MOUNT_PATH": str(self.root.path)})
        self.assertHookSucceeded(result)
        self.assertFileExists("/cleanup-ran")
        self.assertEqual(self.root.read("/etc/resolv.conf"), "# the image's own\n")
        self.assertFileAbsent("/etc/resolv.conf.ORIG")
        self.assertEqual(os.listdir(self.tree("/tmp")), [])
        self.assertEqual(self.root.read("/var/log/apt/history.log"), "")
        self.assertFileAbsent("/root/build.log")
        self.assertFileExists("/root/keep.txt")

    def test_finalise_base_keeps_a_resolv_conf_link(self):
        self.root.write("/etc/resolv.conf.ORIG", "old\n")
        os.symlink("/run/systemd/resolve/stub-resolv.conf", self.root.join("/etc/resolv.conf"))
        result = self.run_lib("finalise_base", libs=self.LIBS,
                              env={"TMP_MOUNT_PATH": str(self.root.path)})
        self.assertHookSucceeded(result)
        self.assertTrue(self.root.join("/etc/resolv.conf").is_symlink())
        self.assertFileAbsent("/etc/resolv.conf.ORIG")


# -- ramdisk-functions --------------------------------------------------------

BUSYBOX_LIST = "sh\nls\ncat\nlsmod\nmodprobe\nwget\nreboot\nshutdown\nip\n"


class TestRamdiskFunctions(LibraryTestCase):
    LIBS = ("ramdisk-defaults", "common-functions", "ramdisk-functions")
    stub_commands = {"busybox": {"stdout": BUSYBOX_LIST}, "udevadm": None,
                     "mytool": None, "ip": None}

    def in_image(self, body: str, *, env=None, files=None) -> HookResult:
        merged = {"TMP_MOUNT_PATH": "/tmp/rd", "BUSYBOX": "busybox"}
        merged.update(env or {})
        return self.run_lib(body, libs=self.LIBS, phase="post-install", env=merged,
                            files=files)

    def test_fullpath(self):
        result = self.in_image('cd /etc\necho "REL=$(fullpath conf/x)"\n'
                               'echo "ABS=$(fullpath /srv/y)"')
        self.assertEqual(self.values(result), {"REL": "/etc/conf/x", "ABS": "/srv/y"})

    def test_create_ramdisk_base(self):
        for rules in ("50-firmware.rules", "60-persistent-storage.rules", "80-drivers.rules",
                      "99-other.rules"):
            self.root.write(f"/udev/lib/udev/rules.d/{rules}", f"# {rules}\n")
        self.root.write("/etc/modprobe.d/local.conf", "options foo bar=1\n")
        result = self.in_image("create_ramdisk_base", env={"LIB_UDEV": "/udev/lib/udev"})
        self.assertHookSucceeded(result)
        for directory in ("bin", "lib/modules", "etc/udev", "lib/udev/rules.d", "var/lib/dhcp",
                          "var/run"):
            self.assertTrue(self.tree(f"/tmp/rd/{directory}").is_dir(), directory)
        self.assertEqual(os.readlink(self.tree("/tmp/rd/sbin")), "bin")
        self.assertEqual(sorted(os.listdir(self.tree("/tmp/rd/lib/udev/rules.d"))),
                         ["50-firmware.rules", "60-persistent-storage.rules",
                          "80-drivers.rules"])
        self.assertFileContains("/tmp/rd/etc/udev/udev.conf", 'udev_rules="/lib/udev/rules.d"')
        self.assertFileContains("/tmp/rd/etc/modprobe.d/local.conf", "options foo bar=1")
        self.assertFileContains("/tmp/rd/etc/modprobe.d/blacklist-dib-ramdisk.conf",
                                "blacklist evbug")
        self.assertFileExists("/tmp/rd/etc/fstab")

    def test_copy_required_libs(self):
        bash = shutil.which("bash")
        result = self.in_image(f"mkdir -p /tmp/rd/lib\ncopy_required_libs {bash}\n"
                               "copy_required_libs /usr/bin/ldd")
        self.assertHookSucceeded(result)
        libs = os.listdir(self.tree("/tmp/rd/lib"))
        self.assertIn("libc.so.6", libs)
        if os.uname().machine == "x86_64":
            loader = self.tree("/tmp/rd/lib64/ld-linux-x86-64.so.2")
            self.assertEqual(os.readlink(loader), "/lib/ld-linux-x86-64.so.2")
            self.assertIn("ld-linux-x86-64.so.2", libs)
        for name in libs:
            path = self.tree(f"/tmp/rd/lib/{name}")
            self.assertTrue(path.is_file() and not path.is_symlink(), name)

    def test_busybox_list(self):
        result = self.in_image('busybox_list | tr "\\n" " " | sed "s/^/LIST=/"; echo')
        self.assertEqual(self.values(result)["LIST"].split(), BUSYBOX_LIST.split())

    def test_busybox_list_of_an_old_busybox(self):
        self.stubs.add("busybox", script='[ "$1" = --list ] && exit 1\n'
                       'printf "BusyBox v1.17\\nCurrently defined functions:\\n'
                       '\\t[, ash, cat, ls,\\n\\tsh\\n"')
        result = self.in_image('busybox_list | tr "\\n" " " | sed "s/^/LIST=/"; echo')
        self.assertEqual(self.values(result)["LIST"].split(), ["[", "ash", "cat", "ls", "sh"])

    def module_tree(self, version="6.1.0-test"):
        base = f"/kernel/lib/modules/{version}"
        self.root.write(f"{base}/modules.dep", "kernel/drivers/net/e1000.ko:\n")
        self.root.write(f"{base}/kernel/drivers/net/e1000.ko", "net")
        self.root.write(f"{base}/kernel/drivers/video/fbdev/vesafb.ko", "fb")
        self.root.write(f"{base}/kernel/drivers/video/fbdev/core/fb_sys_fops.ko", "fops")
        self.root.write("/kernel/lib/firmware/e1000/fw.bin", "fw")
        return {"KERNEL_VERSION": version, "MODULE_DIR": f"/kernel/lib/modules/{version}",
                "FIRMWARE_DIR": "/kernel/lib/firmware", "LIB_UDEV": "/nonexistent"}

    def test_populate_lib(self):
        self.root.write("/etc/dib_binary_deps", "mytool ip\n")
        env = self.module_tree()
        result = self.in_image("mkdir -p /tmp/rd/bin /tmp/rd/lib\npopulate_lib", env=env)
        self.assertHookSucceeded(result)
        binaries = set(os.listdir(self.tree("/tmp/rd/bin")))
        # busybox, bash, udevadm and the binary-deps; not what busybox has,
        # except ip.
        self.assertTrue({"busybox", "bash", "udevadm", "mytool", "ip"} <= binaries, binaries)
        self.assertFalse({"lsmod", "modprobe", "wget", "reboot", "shutdown"} & binaries)
        self.assertIn("libc.so.6", os.listdir(self.tree("/tmp/rd/lib")))
        modules = "/tmp/rd/lib/modules/6.1.0-test"
        self.assertFileContains(f"{modules}/modules.dep", "e1000.ko")
        self.assertFileExists(f"{modules}/kernel/drivers/net/e1000.ko")
        self.assertFileAbsent(f"{modules}/kernel/drivers/video/fbdev/vesafb.ko")
        self.assertFileExists(f"{modules}/kernel/drivers/video/fbdev/core/fb_sys_fops.ko")
        self.assertFileContains("/tmp/rd/lib/firmware/e1000/fw.bin", "fw")

    def test_populate_lib_missing_binary(self):
        self.root.write("/etc/dib_binary_deps", "mytool no-such-tool\n")
        result = self.in_image("mkdir -p /tmp/rd/bin /tmp/rd/lib\npopulate_lib",
                               env=self.module_tree())
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("populate_lib: no-such-tool is not found in PATH", result.output)

    def test_populate_lib_missing_modules(self):
        env = self.module_tree()
        env["MODULE_DIR"] = "/kernel/lib/modules/9.9"
        result = self.in_image("mkdir -p /tmp/rd/bin /tmp/rd/lib\npopulate_lib", env=env)
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("populate_lib: no kernel modules in /kernel/lib/modules/9.9",
                      result.output)

    def test_populate_busybox(self):
        self.root.write("/tmp/rd/bin/cat", "real cat")
        result = self.in_image("populate_busybox")
        self.assertHookSucceeded(result)
        self.assertEqual(os.readlink(self.tree("/tmp/rd/bin/sh")), "busybox")
        self.assertEqual(os.readlink(self.tree("/tmp/rd/bin/ip")), "busybox")
        self.assertEqual(self.root.read("/tmp/rd/bin/cat"), "real cat")
        self.assertIn("skip cat", result.output)

    def test_populate_init(self):
        self.root.write("/scripts/init", "#!/bin/bash\necho start\n")
        self.root.write("/scripts/init-end", "echo end\n")
        self.root.write("/scripts/d/init-func", "f() { :; }\n")
        self.root.write("/scripts/d/extra-func", "g() { :; }\n")
        self.root.write("/tmp/rd/.keep", "")
        files = {"init.d/20-second": "echo second\n", "init.d/10-first": "echo first\n"}
        result = self.in_image("populate_init", files=files,
                               env={"INIT": "/scripts/init", "FUNCTIONS_D": "/scripts/d"})
        self.assertHookSucceeded(result)
        init = self.root.read("/tmp/rd/init")
        self.assertEqual(init, "#!/bin/bash\necho start\n"
                               "\n# init fragment from 10-first\necho first\n"
                               "\n# init fragment from 20-second\necho second\n"
                               "echo end\n")
        self.assertFileMode("/tmp/rd/init", "0755")
        self.assertEqual(self.root.read("/tmp/rd/init-func"), "f() { :; }\n")
        self.assertFileExists("/tmp/rd/extra-func")

    def test_populate_udev(self):
        files = {"udev.d/70-my.rules": 'KERNEL=="sd*", SYMLINK+="mine"\n'}
        result = self.in_image("populate_udev", files=files)
        self.assertHookSucceeded(result)
        self.assertFileContains("/tmp/rd/lib/udev/rules.d/70-my.rules", 'SYMLINK+="mine"')

    def test_finalise_image(self):
        self.root.write("/tmp/rd/init", "#!/bin/bash\n", mode=0o755)
        self.root.write("/tmp/rd/bin/tool", "tool")
        os.symlink("bin", self.root.join("/tmp/rd/sbin"))
        result = self.in_image("finalise_image", env={"TMP_IMAGE_PATH": "/tmp/out.cpio.gz"})
        self.assertHookSucceeded(result)
        members = newc_members(gzip.decompress(self.tree("/tmp/out.cpio.gz").read_bytes()))
        self.assertTrue({"init", "bin", "bin/tool", "sbin"} <= set(members), members.keys())
        self.assertEqual(members["init"]["data"], b"#!/bin/bash\n")
        self.assertEqual(stat.S_IMODE(members["init"]["mode"]), 0o755)
        self.assertTrue(stat.S_ISLNK(members["sbin"]["mode"]))
        self.assertEqual({(m["uid"], m["gid"]) for m in members.values()}, {(0, 0)})

    def test_finalise_image_with_another_compressor(self):
        self.root.write("/tmp/rd/init", "x")
        result = self.in_image("finalise_image", env={"TMP_IMAGE_PATH": "/tmp/out.cpio",
                                                      "DIB_RAMDISK_COMPRESS_CMD": "cat"})
        self.assertHookSucceeded(result)
        self.assertIn("init", newc_members(self.tree("/tmp/out.cpio").read_bytes()))

    def test_find_kernel_version(self):
        for version in ("6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-30-amd64"):
            self.root.write(f"/boot/vmlinuz-{version}", "")
        self.root.write("/boot/config-6.1.0-11-amd64", "")
        result = self.in_image('echo "V=$(find_kernel_version)"')
        self.assertEqual(self.values(result)["V"], "6.1.0-10-amd64")

    def test_find_kernel_version_without_a_kernel(self):
        self.root.mkdir("/boot")
        result = self.in_image("find_kernel_version")
        self.assertHookFailed(result, exit_code=1)
        self.assertIn("find_kernel_version: unable to find a suitable kernel", result.output)


# -- scripts/d/init-func: the ramdisk's /init functions ------------------------

class TestInitFunctions(LibraryTestCase):
    stub_commands = {"ip": {"stdout": (
        "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT "
        "link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        "2: eth0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT "
        "link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff\n"
        "3: ib0: <BROADCAST,MULTICAST> mtu 2044 qdisc noop state DOWN mode DEFAULT "
        "link/infiniband 80:00:02:08:fe:80:00:00:00:00:00:00:f4:52:14:03:00:3a:16:b1 "
        "brd 00:ff\n")}}

    def run_init_func(self, body: str, env=None) -> HookResult:
        return self.run_lib('source "$_LIB/scripts/d/init-func"\n' + body, libs=(), env=env)

    def test_kernel_parameters(self):
        self.root.write("/cmdline", "console=ttyS0 BOOTIF=01-52-54-00-12-34-56 troubleshoot "
                                    "ip=10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0\n")
        body = (f'echo "BOOTIF=$(find_parameter_from_file BOOTIF {self.root.path}/cmdline)"\n'
                f'echo "IP=$(find_parameter_from_file ip {self.root.path}/cmdline)"\n'
                f'echo "T=[$(find_parameter_from_file troubleshoot {self.root.path}/cmdline)]"\n'
                f'find_parameter_from_file nope {self.root.path}/cmdline || echo "NOPE=$?"\n')
        got = self.values(self.run_init_func(body))
        self.assertEqual(got, {"BOOTIF": "01-52-54-00-12-34-56",
                               "IP": "10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0",
                               "T": "[]", "NOPE": "1"})

    def test_device_names(self):
        body = ('echo "A=$(whole_disk_name sda3)"; echo "B=$(whole_disk_name /dev/vdb12)"\n'
                'echo "C=$(whole_disk_name /dev/cciss/c0d0p2)"\n'
                'echo "D=$(whole_disk_name /dev/cciss/c0d1)"\n'
                'whole_disk_name /dev/nvme0n1p1 || echo "E=unknown"\n'
                'echo "F=$(partition_name sda 2)"; echo "G=$(partition_name /dev/cciss/c0d0 1)"\n'
                'echo "H=$(strip_dev /dev/sda)"; echo "I=$(prepend_dev sda)"\n'
                'echo "J=$(prepend_dev /dev/sdb)"\n')
        got = self.values(self.run_init_func(body))
        self.assertEqual(got, {"A": "/dev/sda", "B": "/dev/vdb", "C": "/dev/cciss/c0d0",
                               "D": "/dev/cciss/c0d1", "E": "unknown", "F": "/dev/sda2",
                               "G": "/dev/cciss/c0d0p1", "H": "sda", "I": "/dev/sda",
                               "J": "/dev/sdb"})

    def test_find_interface(self):
        body = ('echo "ETH=$(find_interface 52:54:00:12:34:56)"\n'
                'echo "IB=$(find_interface F4:52:14:3A:16:B1)"\n'
                'find_interface 00:11:22:33:44:55 || echo "NONE=$?"\n')
        got = self.values(self.run_init_func(body))
        self.assertEqual(got, {"ETH": "eth0", "IB": "ib0", "NONE": "1"})

    def test_swap_ifname_and_set_mac(self):
        result = self.run_init_func("swap_ifname eth1 eth0\nset_mac eth0 52:54:00:00:00:01")
        self.assertHookSucceeded(result)
        calls = [c.args for c in self.stubs.calls("ip")]
        self.assertEqual(calls, [["link", "show", "eth0"],
                                 ["link", "set", "eth1", "name", "_eth1"],
                                 ["link", "set", "eth0", "name", "eth1"],
                                 ["link", "set", "_eth1", "name", "eth0"],
                                 ["link", "set", "eth0", "address", "52:54:00:00:00:01"]])

    def test_wait_for(self):
        counter = self.tree("/count")
        body = (f'wait_for 3 0 "echo x >> {counter}; false" || echo "FAILED=$?"\n'
                f'wait_for 5 0 "[ \\$(wc -l < {counter}) -ge 4 ] || echo y >> {counter}" '
                '&& echo "OK=1"\n')
        got = self.values(self.run_init_func(body))
        self.assertEqual(got, {"FAILED": "1", "OK": "1"})
        self.assertEqual(len(counter.read_text().splitlines()), 4)

    def test_messages(self):
        body = ('err_msg "disk sda: not found!"\nerr_msg "second"\n'
                'echo "FIRST=$FIRST_ERR_MSG"\n'
                'string_contains "hello world" "lo w" && echo "IN=1"\n'
                'string_contains "hello" "xyz" || echo "OUT=1"\n')
        result = self.run_init_func(body)
        got = self.values(result)
        self.assertEqual(got, {"FIRST": "disk+sda+not+found", "IN": "1", "OUT": "1"})
        self.assertIn("disk sda: not found!", result.output)

    def test_troubleshoot_waits_for_t_then_goes_on(self):
        result = self.run_init_func('troubleshoot < /dev/null\necho "AFTER=1"')
        self.assertIn("press t to launch shell", result.output)
        self.assertEqual(self.values(result)["AFTER"], "1")


class TestInitFunctionsOnTheRunningSystem(LibraryTestCase):
    """The init-func functions that read /proc, run on this machine's."""

    stub_commands = {"udevadm": None, "setsid": None, "cttyhack": None, "bash": None}

    def run_init_func(self, body: str) -> HookResult:
        return self.run_lib('source "$_LIB/scripts/d/init-func"\n' + body, libs=())

    def test_get_kernel_parameter_reads_proc_cmdline(self):
        words = Path("/proc/cmdline").read_text().split()
        named = [w.split("=", 1) for w in words if "=" in w]
        if not named:
            self.skipTest("this kernel's command line has no NAME=VALUE word")
        name, value = named[0]
        result = self.run_init_func(f'echo "GOT=$(get_kernel_parameter {name})"\n'
                                    'get_kernel_parameter no_such_param_dib || echo "NONE=$?"')
        got = self.values(result)
        self.assertEqual(got["GOT"], value)
        self.assertEqual(got["NONE"], "1")

    def test_partition_exists_and_find_disk(self):
        lines = Path("/proc/partitions").read_text().splitlines()[2:]
        names = [line.split()[3] for line in lines if line.split()]
        disks = [n for n in names if re.match(r"^(sd|vd|hd|xvd)[a-z]+$", n)]
        if not disks:
            self.skipTest("no sd/vd/hd/xvd disk on this machine")
        disk = disks[0]
        body = (f'partition_exists {disk} && echo "EXISTS=1"\n'
                'partition_exists nosuchdisk9 || echo "MISSING=1"\n'
                f'echo "FOUND=$(find_disk nosuchdisk,{disk}1,{disk})"\n'
                'find_disk nosuchdisk || echo "NOTFOUND=1"\n')
        got = self.values(self.run_init_func(body))
        self.assertEqual(got, {"EXISTS": "1", "MISSING": "1", "FOUND": f"/dev/{disk}",
                               "NOTFOUND": "1"})

    def test_load_modules_by_udev(self):
        self.assertHookSucceeded(self.run_init_func("load_modules_by_udev"))
        self.assertEqual([c.args for c in self.stubs.calls("udevadm")],
                         [["trigger", "--action=add"], ["settle"]])

    def test_start_shell(self):
        self.assertHookSucceeded(self.run_init_func("start_shell"))
        call = self.stubs.calls("setsid")[0]
        self.assertEqual(call.args, ["cttyhack", "bash", "-i"])
        self.assertEqual(call.env.get("PS1"), "dib-ramdisk:\\w# ")

    def test_check_tgtd_socket(self):
        result = self.run_init_func('check_tgtd_socket || echo "STATUS=$?"')
        if Path("/var/run/tgtd.ipc_abstract_namespace.0").exists():
            self.skipTest("this machine runs tgtd")
        self.assertEqual(self.values(result)["STATUS"], "1")
        self.assertIn("waiting for tgtd socket...not found", result.output)
