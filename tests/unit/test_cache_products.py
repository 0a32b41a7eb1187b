"""What a host-side step wrote beside the image is kept with its entry and put back."""
from __future__ import annotations

import os

from dib.cache import products


def test_only_new_or_changed_names_of_the_image_are_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    image = out / "deploy"
    (out / "deploy.old").write_text("from an earlier build\n")
    (out / "other.kernel").write_text("another image's\n")
    (out / "deploy.kernel").write_text("stale\n")
    os.utime(out / "deploy.kernel", ns=(1, 1))
    before = products.snapshot(image)

    (out / "deploy.kernel").write_text("new kernel\n")
    (out / "deploy.initramfs").write_bytes(b"\x1f\x8b" + b"0" * 100)
    (out / "deploy.d").mkdir()
    (out / "deploy.d" / "dib-manifest").write_text("manifest\n")
    (out / "deployment.txt").write_text("not named after the image\n")
    saved = products.stage(image, before, tmp_path / "entry" / "products")

    assert saved is not None
    assert sorted(p.name for p in saved.iterdir()) == \
        ["deploy.d", "deploy.initramfs", "deploy.kernel"]
    assert (saved / "deploy.d" / "dib-manifest").read_text() == "manifest\n"


def test_a_step_that_wrote_nothing_beside_the_image_keeps_nothing(tmp_path):
    image = tmp_path / "image"
    (tmp_path / "image.qcow2").write_text("made by the outputs, not by a hook\n")
    before = products.snapshot(image)
    assert products.stage(image, before, tmp_path / "staging") is None
    assert not (tmp_path / "staging").exists()


def test_restore_replaces_what_is_there_with_copies(tmp_path):
    saved = tmp_path / "entry"
    (saved / "deploy.d").mkdir(parents=True)
    (saved / "deploy.d" / "file").write_text("kept\n")
    (saved / "deploy.kernel").write_text("kernel\n")
    out = tmp_path / "out"
    (out / "deploy.d").mkdir(parents=True)
    (out / "deploy.d" / "leftover").write_text("from a later build\n")
    (out / "deploy.kernel").write_text("edited by the user\n")

    restored = products.restore(saved, out / "deploy")

    assert sorted(p.name for p in restored) == ["deploy.d", "deploy.kernel"]
    assert (out / "deploy.kernel").read_text() == "kernel\n"
    assert sorted(p.name for p in (out / "deploy.d").iterdir()) == ["file"]
    # a copy: changing the output must not change the cache
    assert os.stat(out / "deploy.kernel").st_ino != os.stat(saved / "deploy.kernel").st_ino
    (out / "deploy.kernel").write_text("changed\n")
    assert (saved / "deploy.kernel").read_text() == "kernel\n"
