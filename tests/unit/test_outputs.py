import hashlib
import json
import os
import random
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from dib import outputs, runner
from dib.errors import CommandError, ConfigError, OutputError
from dib.outputs import archives, images


def test_validate_types_orders_raw_last_and_rejects_unknown():
    got = [o.name for o in outputs.validate_types(["raw", "qcow2", "tar"])]
    assert got == ["qcow2", "tar", "raw"]
    with pytest.raises(ConfigError, match="unknown output type 'qcow3'") as exc:
        outputs.validate_types("qcow3")
    assert "qcow2" in str(exc.value) and "squashfs" in str(exc.value)
    with pytest.raises(ConfigError, match="docker"):
        outputs.validate_types(["docker"])
    with pytest.raises(ConfigError, match="repo:tag"):
        outputs.validate_types(["docker"], docker_target="Bad Name")
    assert outputs.validate_types("docker", docker_target="org/img:1")[0].needs_disk is False


def test_plugin_attributes():
    for name in ("raw", "qcow2", "vhd", "tar", "tgz", "squashfs", "docker"):
        out = outputs.registry.get(name)()
        assert out.name == name and out.extension and isinstance(out.tools(), list)
    assert outputs.registry.get("squashfs")().extension == "squash"


def test_qcow2_argv(tmp_path):
    ctx = outputs.OutputContext(image_name=tmp_path / "img", raw=tmp_path / "img.raw")
    argv = images.Qcow2().argv(ctx)
    assert argv[:6] == ["qemu-img", "convert", "-f", "raw", "-O", "qcow2"]
    assert ["-c", "-m", "8", "-W"] == argv[6:10]
    assert argv[10:12] == ["-o", "compression_type=zstd"]
    ctx.qemu_img_options = "compat=0.10"
    assert "compression_type" not in " ".join(images.Qcow2().argv(ctx))
    ctx.compress, ctx.qemu_img_options = False, "cluster_size=2M"
    argv = images.Qcow2().argv(ctx)
    assert "-c" not in argv and argv[argv.index("-o") + 1] == "cluster_size=2M"
    vhd = images.Vhd().argv(ctx)
    assert vhd[vhd.index("-o") + 1].startswith("subformat=fixed,force_size")


def test_tar_argv():
    argv = archives.tar_argv(Path("/t"), Path("/o.tar"), 1700000000)
    for flag in ("--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name",
                 "--exclude=./proc/*", "--exclude=./sys/*", "--mtime=@1700000000",
                 "--clamp-mtime"):
        assert flag in argv


def test_qcow2_with_source_date_epoch_writes_clusters_in_order(tmp_path):
    ctx = outputs.OutputContext(image_name=tmp_path / "img", raw=tmp_path / "img.raw",
                                source_date_epoch=1700000000)
    argv = images.Qcow2().argv(ctx)
    assert "-W" not in argv and "-c" in argv


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils not installed")
def test_qcow2_with_source_date_epoch_is_the_same_bytes_twice(tmp_path):
    raw = tmp_path / "img.raw"
    pattern = random.Random(7)
    with open(raw, "wb") as fh:
        for n in range(64):       # 64 MiB: some clusters compress, some do not
            fh.write(pattern.randbytes(1 << 20) if n % 3 else bytes(1 << 20))
    digests = []
    for name in ("a", "b"):
        ctx = outputs.OutputContext(image_name=tmp_path / name, raw=raw,
                                    source_date_epoch=1700000000)
        (qcow2,) = images.Qcow2().produce(ctx)
        digests.append(hashlib.sha256(qcow2.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_tar_with_source_date_epoch_ignores_when_files_were_made_and_read(tmp_path):
    tree = _tree(tmp_path)
    ctx = outputs.OutputContext(image_name=tmp_path / "a", tree=tree,
                                source_date_epoch=1700000000)
    (first,) = archives.Tar().produce(ctx)
    hostname = tree / "etc/hostname"
    hostname.chmod(0o600)
    hostname.chmod(0o644)          # a new ctime, same mode
    os.utime(hostname, (time.time(), time.time()))   # newer atime and mtime
    ctx.image_name = tmp_path / "b"
    (second,) = archives.Tar().produce(ctx)
    assert first.read_bytes() == second.read_bytes()
    member = tarfile.open(second).getmember("./etc/hostname")
    assert member.mtime == 1700000000


def _tree(tmp_path):
    tree = tmp_path / "tree"
    for d in ("etc", "proc/1", "sys/x"):
        (tree / d).mkdir(parents=True)
    (tree / "etc/hostname").write_text("box\n")
    (tree / "proc/1/status").write_text("no")
    return tree


def test_tar_and_tgz_leave_out_proc_contents(tmp_path):
    tree = _tree(tmp_path)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree, source_date_epoch=1)
    (tar_path,) = archives.Tar().produce(ctx)
    names = tarfile.open(tar_path).getnames()
    assert "./etc/hostname" in names and "./proc" in names
    assert not any(n.startswith("./proc/") or n.startswith("./sys/") for n in names)
    (tgz,) = archives.Tgz().produce(ctx)
    assert tgz.name == "img.tgz" and "./etc/hostname" in tarfile.open(tgz).getnames()
    assert not list(tmp_path.glob("*.tmp.tar*"))


def test_docker_archive_structure(tmp_path):
    tree = _tree(tmp_path)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tree,
                                docker_target="example/dib:test", source_date_epoch=0)
    (path,) = archives.Docker().produce(ctx)
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["example/dib:test"]
        config_raw = tar.extractfile(manifest[0]["Config"]).read()
        assert manifest[0]["Config"] == hashlib.sha256(config_raw).hexdigest() + ".json"
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()
        config = json.loads(config_raw)
        assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
        assert config["os"] == "linux"
    ctx.docker_target = None
    with pytest.raises(OutputError, match="target"):
        archives.Docker().produce(ctx)


def test_parse_docker_target():
    assert archives.parse_docker_target("img") == ("img", "latest")
    assert archives.parse_docker_target("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1")
    with pytest.raises(ConfigError):
        archives.parse_docker_target("UPPER:tag")


def test_raw_output_moves_or_copies(tmp_path):
    raw = tmp_path / "work.raw"
    with open(raw, "wb") as fh:
        fh.truncate(1 << 20)
    ctx = outputs.OutputContext(image_name=tmp_path / "out", raw=raw)
    (dest,) = images.Raw().produce(ctx)
    assert dest.stat().st_size == 1 << 20 and raw.exists()
    dest.unlink()
    ctx.move_raw = True
    images.Raw().produce(ctx)
    assert not raw.exists() and (tmp_path / "out.raw").exists()


def test_needs_inputs(tmp_path):
    with pytest.raises(OutputError, match="disk image"):
        images.Qcow2().produce(outputs.OutputContext(image_name=tmp_path / "x"))
    with pytest.raises(OutputError, match="tree"):
        archives.Tar().produce(outputs.OutputContext(image_name=tmp_path / "x"))


def test_checksums(tmp_path):
    f = tmp_path / "img.qcow2"
    f.write_bytes(b"abc")
    written = outputs.checksums([f])
    assert sorted(p.name for p in written) == ["img.qcow2.md5", "img.qcow2.sha256"]
    assert (tmp_path / "img.qcow2.md5").read_text() == \
        f"{hashlib.md5(b'abc').hexdigest()}  img.qcow2\n"
    assert (tmp_path / "img.qcow2.sha256").read_text().startswith(
        hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(ConfigError):
        outputs.checksums([f], kinds=("nope",))


@pytest.mark.skipif(not __import__("shutil").which("mksquashfs"), reason="squashfs-tools missing")
def test_squashfs_real(tmp_path):
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=_tree(tmp_path))
    (path,) = archives.Squashfs().produce(ctx)
    assert path.name == "img.squash" and path.read_bytes()[:4] == b"hsqs"


@pytest.mark.skipif(not __import__("shutil").which("qemu-img"), reason="qemu-utils missing")
def test_qcow2_and_vhd_real(tmp_path):
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as fh:
        fh.truncate(8 << 20)
        fh.write(b"hello")
    ctx = outputs.OutputContext(image_name=tmp_path / "img", raw=raw)
    (q,) = images.Qcow2().produce(ctx)
    assert q.read_bytes()[:4] == b"QFI\xfb"
    (v,) = images.Vhd().produce(ctx)
    assert v.read_bytes()[-512:-504] == b"conectix"


def test_tgz_compresses_with_the_gzip_an_element_names(tmp_path):
    # DIB_GZIP_BIN set in an element's environment.d reaches the outputs
    # through the hooks' environment, not through the caller's.
    marker = tmp_path / "used"
    wrapper = tmp_path / "my-gzip"
    wrapper.write_text(f"#!/bin/sh\ntouch {marker}\nexec gzip \"$@\"\n")
    wrapper.chmod(0o755)
    ctx = outputs.OutputContext.from_env(tmp_path / "img", {"DIB_GZIP_BIN": str(wrapper),
                                                            "SOURCE_DATE_EPOCH": "7"},
                                         tree=_tree(tmp_path))
    assert ctx.source_date_epoch == 7
    (tgz,) = archives.Tgz().produce(ctx)
    assert marker.exists(), "the element's gzip was not used"
    assert "./etc/hostname" in tarfile.open(tgz).getnames()


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils not installed")
@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_vhd_with_source_date_epoch_is_the_same_bytes_twice(tmp_path, monkeypatch, subformat):
    raw = tmp_path / "img.raw"
    raw.write_bytes(random.Random(3).randbytes(1 << 20) + bytes(3 << 20))
    made = []
    for n in range(2):
        # qemu-img gives each conversion a random unique id (and the time)
        ctx = outputs.OutputContext(image_name=tmp_path / f"d{n}" / "img", raw=raw,
                                    source_date_epoch=1700000000,
                                    qemu_img_options=f"subformat={subformat}")
        (tmp_path / f"d{n}").mkdir()
        (vhd,) = images.Vhd().produce(ctx)
        made.append(vhd)
    assert made[0].read_bytes() == made[1].read_bytes()
    info = json.loads(runner.run(["qemu-img", "info", "--output=json", "-f", "vpc",
                                  str(made[0])]).stdout)
    assert info["virtual-size"] >= 4 << 20
    back = tmp_path / "back.raw"
    runner.run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", str(made[0]), str(back)])
    assert back.read_bytes()[:4 << 20] == raw.read_bytes()


def test_outputs_written_side_by_side_come_with_the_digest_of_each_file(tmp_path):
    from dib.pipeline.artifacts import write_outputs
    raw = tmp_path / "work" / "disk.raw"
    raw.parent.mkdir()
    raw.write_bytes(os.urandom(3 << 20))
    disk_bytes = raw.read_bytes()
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=_tree(tmp_path), raw=raw,
                                move_raw=True, source_date_epoch=1)
    produced, digests = write_outputs(outputs.validate_types(["raw", "tar", "tgz"]), ctx, True)
    assert [p.name for p in produced] == ["img.tar", "img.tgz", "img.raw"]
    assert not raw.exists() and (tmp_path / "img.raw").read_bytes() == disk_bytes
    assert digests == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in produced}
    assert write_outputs(outputs.validate_types(["tar"]), ctx, False)[1] == {}


def test_a_failing_output_fails_the_set_and_leaves_the_disk_where_it_was(tmp_path):
    from dib.pipeline.artifacts import write_outputs
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 4096)
    ctx = outputs.OutputContext(image_name=tmp_path / "img", tree=tmp_path / "no-such-tree",
                                raw=raw, move_raw=True)
    with pytest.raises(CommandError, match="tar of the tree failed"):
        write_outputs(outputs.validate_types(["raw", "tar"]), ctx, True)
    assert raw.exists() and not (tmp_path / "img.raw").exists()
