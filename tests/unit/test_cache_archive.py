"""The apt archives' state as an input of the bootstrap's key: it changes
when the package indexes a build reads change, and only then; offline or
unreachable, the last state read stands."""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import testtools
from fixtures import FakeLogger, TempDir

from dib.cache import CacheStore, Checkpoints, archive, keys
from dib.config.build import BuildConfig

SOURCES = ("default:deb {uri} bookworm main contrib\n"
           "updates:deb {uri} bookworm-updates main\n"
           "src:deb-src {uri} bookworm main\n")


def release_text(indexes: dict[str, bytes], date: str = "Sat, 08 Nov 2026 10:00:00 UTC",
                 signed: bool = True) -> str:
    lines = ["Origin: Debian", f"Date: {date}", "Architectures: amd64 arm64", "SHA256:"]
    for name, content in sorted(indexes.items()):
        lines.append(f" {hashlib.sha256(content).hexdigest()} {len(content):>9} {name}")
    text = "\n".join(lines) + "\n"
    if signed:
        text = f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{text}" \
               f"-----BEGIN PGP SIGNATURE-----\n{date}\n-----END PGP SIGNATURE-----\n"
    return text


BOOKWORM = {
    "main/binary-amd64/Packages": b"Package: zstd\nVersion: 1.5.4+dfsg2-5\n",
    "main/binary-amd64/Packages.xz": b"xz of the above",
    "main/binary-arm64/Packages.xz": b"arm64 packages",
    "main/binary-all/Packages.xz": b"arch-independent packages",
    "contrib/binary-amd64/Packages.xz": b"contrib packages",
    "non-free/binary-amd64/Packages.xz": b"non-free packages",
    "main/i18n/Translation-en.bz2": b"translations",
}


class TestParseSources(testtools.TestCase):

    def test_binary_sources_with_their_suite_and_components(self):
        sources = archive.parse_sources(SOURCES.format(uri="http://mirror.example/debian"))
        self.assertEqual([("default", "bookworm", ("main", "contrib")),
                          ("updates", "bookworm-updates", ("main",))],
                         [(s.name, s.suite, s.components) for s in sources])

    def test_options_in_brackets_are_not_the_uri(self):
        [source] = archive.parse_sources(
            "local:deb [trusted=yes arch=amd64] file:///srv/repo ./\n")
        self.assertEqual(("file:///srv/repo", "./"), (source.uri, source.suite))
        self.assertTrue(source.flat)

    def test_a_source_without_a_uri_is_left_out(self):
        # debian-minimal before the build fills the mirror in
        self.assertEqual([], archive.parse_sources("default:deb  bookworm main"))

    def test_the_label_carries_no_credentials(self):
        [source] = archive.parse_sources("p:deb https://user:secret@repo.example:8443/deb sid main")
        self.assertEqual("https://repo.example:8443/deb sid", source.label)


class TestIndexDigest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        [self.source] = archive.parse_sources("default:deb http://m.example/debian bookworm main")

    def digest(self, indexes: dict[str, bytes], **kwargs) -> str:
        return archive.index_digest(release_text(indexes, **kwargs), self.source, "amd64")

    def test_signing_or_dating_the_release_again_changes_nothing(self):
        self.assertEqual(self.digest(BOOKWORM),
                         self.digest(BOOKWORM, date="Sun, 09 Nov 2026 04:00:00 UTC"))

    def test_new_packages_for_the_builds_architecture_change_it(self):
        updated = dict(BOOKWORM, **{"main/binary-amd64/Packages.xz": b"zstd deb12u1"})
        self.assertNotEqual(self.digest(BOOKWORM), self.digest(updated))

    def test_new_architecture_independent_packages_change_it(self):
        updated = dict(BOOKWORM, **{"main/binary-all/Packages.xz": b"new docs"})
        self.assertNotEqual(self.digest(BOOKWORM), self.digest(updated))

    def test_indexes_the_build_does_not_read_are_left_out(self):
        for name in ("main/binary-arm64/Packages.xz", "non-free/binary-amd64/Packages.xz",
                     "contrib/binary-amd64/Packages.xz", "main/i18n/Translation-en.bz2"):
            updated = dict(BOOKWORM, **{name: b"changed"})
            self.assertEqual(self.digest(BOOKWORM), self.digest(updated), name)


class TestArchiveInputs(testtools.TestCase):
    """Against an archive laid out in a directory, read through file:// URLs."""

    def setUp(self):
        super().setUp()
        root = Path(self.useFixture(TempDir()).path)
        self.mirror = root / "mirror"
        self.cache = root / "cache"
        self.cache.mkdir()
        self.env = {archive.SOURCES_VAR: SOURCES.format(uri=f"file://{self.mirror}")}
        self.publish("bookworm", BOOKWORM)
        self.publish("bookworm-updates", {"main/binary-amd64/Packages.xz": b"none yet"})
        self.logger = self.useFixture(FakeLogger(level=logging.INFO))

    def publish(self, suite: str, indexes: dict[str, bytes], name: str = "InRelease") -> None:
        dists = self.mirror / "dists" / suite
        dists.mkdir(parents=True, exist_ok=True)
        for old in dists.glob("*Release"):
            old.unlink()
        (dists / name).write_text(release_text(indexes, signed=name == "InRelease"))

    def inputs(self, offline: bool = False) -> dict[str, str]:
        return archive.archive_inputs(self.env, arch="amd64", offline=offline,
                                      remembered=self.cache / archive.REMEMBERED)

    def test_one_input_for_each_binary_source(self):
        self.assertEqual(["archive:default", "archive:updates"], sorted(self.inputs()))

    def test_an_update_in_one_suite_changes_that_suites_input_only(self):
        before = self.inputs()
        self.publish("bookworm-updates", {"main/binary-amd64/Packages.xz": b"zstd deb12u1"})
        after = self.inputs()
        self.assertEqual(before["archive:default"], after["archive:default"])
        self.assertNotEqual(before["archive:updates"], after["archive:updates"])

    def test_a_suite_with_only_an_unsigned_release_is_read(self):
        before = self.inputs()
        self.publish("bookworm", BOOKWORM, name="Release")
        self.assertEqual(before, self.inputs())

    def test_offline_the_last_state_read_stands(self):
        before = self.inputs()
        self.publish("bookworm", dict(BOOKWORM, **{"main/binary-all/Packages.xz": b"new"}))
        self.assertEqual(before, self.inputs(offline=True))

    def test_an_archive_that_does_not_answer_uses_the_last_state_and_says_so(self):
        before = self.inputs()
        shutil.rmtree(self.mirror)
        self.assertEqual(before, self.inputs())
        self.assertIn("could not read the package index of file://", self.logger.output)
        self.assertIn("bookworm-updates", self.logger.output)

    def test_never_read_and_unreachable_is_unknown(self):
        shutil.rmtree(self.mirror)
        self.assertEqual({"archive:default": "unknown", "archive:updates": "unknown"},
                         self.inputs())

    def test_no_apt_sources_no_input(self):
        self.assertEqual({}, archive.archive_inputs(
            {}, arch="amd64", offline=False, remembered=self.cache / archive.REMEMBERED))


class TestBootstrapKey(testtools.TestCase):
    """Through the build's own chain of checkpoints."""

    def setUp(self):
        super().setUp()
        root = Path(self.useFixture(TempDir()).path)
        self.hooks = root / "hooks"
        for phase in ("root.d", "install.d"):
            (self.hooks / phase).mkdir(parents=True)
            (self.hooks / phase / "50-x").write_text("#!/bin/bash\ntrue\n")
        self.mirror = root / "mirror"
        self.store = CacheStore(root / "cache")
        self.config = BuildConfig(image_name=str(root / "out" / "img"), arch="amd64")
        self.env = {archive.SOURCES_VAR: SOURCES.format(uri=f"file://{self.mirror}"),
                    "DIB_RELEASE": "bookworm"}
        self.useFixture(FakeLogger(level=logging.INFO))

    def publish(self, indexes: dict[str, bytes]) -> None:
        for suite in ("bookworm", "bookworm-updates"):
            (self.mirror / "dists" / suite).mkdir(parents=True, exist_ok=True)
            (self.mirror / "dists" / suite / "InRelease").write_text(release_text(indexes))

    def inputs(self, phase: str, offline: bool = False) -> dict[str, str]:
        chain = Checkpoints(self.store)
        self.addCleanup(chain.close)
        chain.start(self.env, replace(self.config, offline=offline), [])
        return chain.phase_inputs(self.hooks, phase)

    def test_the_bootstrap_is_built_again_when_the_archive_moves_on(self):
        self.publish(BOOKWORM)
        before = self.inputs("root")
        self.publish(dict(BOOKWORM, **{"main/binary-amd64/Packages.xz": b"zstd deb12u1"}))
        after = self.inputs("root")
        self.assertNotEqual(before, after)
        self.assertEqual(
            "the packages of apt source default changed in the archive",
            keys.describe_change(keys.changed_inputs(before, after)[0], before, after))

    def test_later_phases_are_not_keyed_on_the_archive_themselves(self):
        self.publish(BOOKWORM)
        before = self.inputs("install")
        self.publish(dict(BOOKWORM, **{"main/binary-all/Packages.xz": b"new"}))
        self.assertEqual(before, self.inputs("install"))

    def test_offline_the_bootstrap_keeps_its_key(self):
        self.publish(BOOKWORM)
        before = self.inputs("root")
        self.publish(dict(BOOKWORM, **{"main/binary-all/Packages.xz": b"new"}))
        self.assertEqual(before, self.inputs("root", offline=True))
