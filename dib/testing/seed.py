"""NoCloud seeds for boot checks: what cloud-init reads from a ``cidata`` disk.

The seed is a small FAT filesystem labelled ``CIDATA`` holding ``user-data``
and ``meta-data`` (and ``network-config`` when given), made on a plain file
with ``mkfs.fat -C`` and ``mcopy``: no loop device, no mount, no root.
cloud-init's NoCloud datasource finds it by its label (either case).
"""
from __future__ import annotations

import email
import email.mime.multipart
import email.mime.text
import hashlib
import tempfile
from pathlib import Path
from typing import Mapping

from dib import runner
from dib.blockdev.assemble import mtools_env
from dib.errors import DibError

SEED_LABEL = "CIDATA"
SEED_TOOLS = [("mkfs.fat", "dosfstools"), ("mcopy", "mtools")]
SEED_FILES = ("user-data", "meta-data", "network-config")
CLOUD_CONFIG = "#cloud-config"
_MIN_KIB = 1024


class SeedError(DibError):
    """A seed cannot be made from what was given."""


def default_meta_data(user_data: bytes, hostname: str = "dib-boot") -> bytes:
    """meta-data naming an instance whose id follows the user-data, so a
    changed user-data is a new instance to cloud-init."""
    instance = hashlib.sha256(user_data).hexdigest()[:12]
    return f"instance-id: iid-dib-boot-{instance}\nlocal-hostname: {hostname}\n".encode()


def make_seed(path: Path, files: Mapping[str, bytes]) -> Path:
    """Write a CIDATA FAT image at ``path`` holding ``files`` (name → content).

    ``user-data`` is required; ``meta-data`` defaults to
    :func:`default_meta_data`.
    """
    unknown = sorted(set(files) - set(SEED_FILES))
    if unknown:
        raise SeedError(f"a NoCloud seed holds {', '.join(SEED_FILES)}; not "
                        f"{', '.join(unknown)}")
    if "user-data" not in files:
        raise SeedError("a NoCloud seed needs user-data")
    contents = dict(files)
    contents.setdefault("meta-data", default_meta_data(contents["user-data"]))
    runner.require_tools(SEED_TOOLS, "a NoCloud seed disk")
    path = Path(path)
    path.unlink(missing_ok=True)
    total = sum(len(data) for data in contents.values())
    # Room for the data twice over plus FAT overhead; whole KiB for mkfs.fat -C.
    kib = max(_MIN_KIB, (2 * total) // 1024 + 512)
    runner.run(["mkfs.fat", "-C", "-n", SEED_LABEL, str(path), str(kib)],
               what="mkfs.fat (NoCloud seed)")
    with tempfile.TemporaryDirectory(prefix="dib-seed-") as tmp:
        for name, data in contents.items():
            source = Path(tmp) / name
            source.write_bytes(data)
            runner.run(["mcopy", "-i", str(path), str(source), f"::{name}"],
                       env=mtools_env(), what=f"mcopy {name} (NoCloud seed)")
    return path


def with_ssh_key(user_data: bytes | None, public_key: str, *, source: str = "user-data"
                 ) -> bytes:
    """user-data that also lets ``public_key`` log in as root over SSH.

    A ``#cloud-config`` document gets the key added to its
    ``ssh_authorized_keys`` and ``disable_root: false`` (cloud images refuse
    root logins otherwise); anything else (a script, a MIME archive) becomes
    or gains a MIME part with that cloud-config.
    """
    key = public_key.strip()
    if user_data is None:
        return _cloud_config({"disable_root": False, "ssh_authorized_keys": [key]})
    text = user_data.decode(errors="replace")
    if text.lstrip().startswith(CLOUD_CONFIG):
        return _cloud_config(_add_key(_load_cloud_config(text, source), key, source))
    part = email.mime.text.MIMEText(
        _cloud_config({"disable_root": False, "ssh_authorized_keys": [key]}).decode(),
        "cloud-config")
    # Appended, not replacing: a user's own cloud-config parts keep their keys.
    part["Merge-Type"] = "list(append)+dict(recurse_array)+str()"
    if text.lstrip().lower().startswith("content-type:"):
        message = email.message_from_bytes(user_data)
        if message.is_multipart():
            message.attach(part)
            return message.as_bytes()
    archive = email.mime.multipart.MIMEMultipart()
    # text/plain: cloud-init tells the part's kind from its first line.
    archive.attach(email.mime.text.MIMEText(text, "plain"))
    archive.attach(part)
    return archive.as_bytes()


def _load_cloud_config(text: str, source: str) -> dict:
    import yaml
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(f"{source}: not valid YAML: {exc}",
                        hint="a #cloud-config user-data must be a YAML mapping") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeedError(f"{source}: a #cloud-config document must be a YAML mapping, "
                        f"not {type(data).__name__}")
    return data


def _add_key(config: dict, key: str, source: str) -> dict:
    keys = config.get("ssh_authorized_keys") or []
    if not isinstance(keys, list):
        raise SeedError(f"{source}: ssh_authorized_keys must be a list of keys")
    config["ssh_authorized_keys"] = [*keys, key] if key not in keys else keys
    config["disable_root"] = False
    return config


def _cloud_config(config: dict) -> bytes:
    import yaml
    return (CLOUD_CONFIG + "\n" + yaml.safe_dump(config, sort_keys=False)).encode()
