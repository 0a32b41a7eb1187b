"""A small client of the OCI distribution API: just what the remote phase
cache and ``dib push``/``dib pull`` need (blob HEAD, GET and monolithic
upload; manifest GET and PUT).

It speaks HTTP through urllib rather than a registry library: the cache uses
six requests, and a library would bring a dependency (and its own idea of
credentials and retries) for them. Credentials come from the files
``docker login`` and ``podman login`` write; they are sent only to the
registry (or the token service it names) and never logged.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import io
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping

from dib.config import types

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
# Docker's schema 2 manifest: an image made by docker (a containerDisk, say)
# may come as one, so dib pull asks for it beside OCI's.
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CHUNK = 1 << 20
# The distribution spec's grammar of tags.
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistryError(Exception):
    """The registry did not answer, or answered something we cannot use."""


class DigestMismatch(RegistryError):
    """What the registry sent is not what its digest names."""


class WriteFailed(RegistryError):
    """A blob could not be written here (no room, no permission): not the
    registry's fault, and said so."""


@dataclass(frozen=True)
class RemoteRef:
    """A repository of a registry: ``oci://HOST[:PORT]/REPO``."""

    host: str        # as written, with the port if one was given
    repository: str

    @property
    def hostname(self) -> str:
        return urllib.parse.urlsplit(f"//{self.host}").hostname or self.host

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.repository}"


def parse_ref(text: str) -> RemoteRef:
    """Parse ``oci://HOST[:PORT]/REPO``; ValueError says what is wrong."""
    return RemoteRef(*types.oci_location(text))


def parse_image_ref(text: str) -> tuple[RemoteRef, str]:
    """(repository, tag) of ``oci://HOST[:PORT]/REPO:TAG``; ValueError says
    what is wrong. The tag is what follows the last ':' of the last path part
    (a ':' before the first '/' is the port's)."""
    if not text.startswith("oci://"):
        raise ValueError("expected oci://HOST[:PORT]/REPO:TAG")
    host, slash, path = text[len("oci://"):].partition("/")
    if "@" in path:
        raise ValueError("a reference by digest (@sha256:...) is not supported; "
                         "give a tag: oci://HOST[:PORT]/REPO:TAG")
    head, _, last = path.rpartition("/")
    name, colon, tag = last.partition(":")
    if not colon:
        raise ValueError("no tag: expected oci://HOST[:PORT]/REPO:TAG")
    if not TAG_RE.match(tag):
        raise ValueError(f"'{tag}' is not a tag (letters, digits, '_', '.', '-'; "
                         "at most 128, not starting with '.' or '-')")
    repository = f"{head}/{name}" if head else name
    return parse_ref(f"oci://{host}{slash}{repository}"), tag


def connect(ref: RemoteRef, *, insecure: bool, environ: Mapping[str, str],
            timeout: float = 30) -> "Registry":
    """A client of ``ref`` with the credentials ``docker login`` or ``podman
    login`` stored for its host. Plain HTTP only when asked (``insecure``) or
    for a registry on this very machine, where nothing crosses a network."""
    insecure = insecure or is_loopback(ref.hostname)
    credentials = credentials_for(ref.host, auth_files(environ))
    return Registry(ref, insecure=insecure, credentials=credentials, timeout=timeout)


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def tag_for(key: str) -> str:
    """The tag a cache key is stored under. A key that is already a valid tag
    (every phase key: 64 hex digits) is its own tag; anything else is hashed,
    so two keys never share a tag by having their bad characters replaced."""
    if TAG_RE.match(key) and len(key) <= 128:
        return key
    return "k-" + hashlib.sha256(key.encode()).hexdigest()


def descriptor(media_type: str, digest: str, size: int,
               annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def image_manifest(config: dict[str, Any], layers: list[dict[str, Any]],
                   annotations: Mapping[str, str] | None = None,
                   artifact_type: str | None = None) -> bytes:
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                                "config": config, "layers": layers}
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def is_descriptor(value: Any) -> bool:
    """A content descriptor with a sha256 digest and a size."""
    return isinstance(value, dict) and isinstance(value.get("mediaType"), str) \
        and isinstance(value.get("digest"), str) and DIGEST_RE.match(value["digest"]) \
        is not None and isinstance(value.get("size"), int) and value["size"] >= 0


def load_manifest(body: bytes) -> dict[str, Any]:
    """An image manifest's JSON (schema 2); ValueError says why it is not one."""
    try:
        manifest = json.loads(body)
    except ValueError:
        raise ValueError("the manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise ValueError("the manifest is not an OCI image manifest")
    return manifest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


# -- credentials ---------------------------------------------------------------

def auth_files(environ: Mapping[str, str]) -> list[Path]:
    """Where ``podman login`` and ``docker login`` keep credentials, in the
    order they are consulted."""
    files = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("DOCKER_CONFIG"):
        files.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    files.append(Path(os.path.expanduser("~/.docker/config.json")))
    return files


def credentials_for(host: str, files: list[Path]) -> tuple[str, str] | None:
    """(user, password) stored for ``host`` as base64 ``auth`` in an ``auths``
    map (keys may be bare hosts or URLs); None when no file has them.
    Credential helpers (credsStore) are not consulted."""
    for path in files:
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(auths, dict):
            continue
        for name, entry in auths.items():
            if _auth_host(name) != host or not isinstance(entry, dict):
                continue
            try:
                user, sep, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if sep:
                return user, password
    return None


def _auth_host(name: str) -> str:
    if "://" in name:
        return urllib.parse.urlsplit(name).netloc
    return name.split("/", 1)[0]


# -- the client ----------------------------------------------------------------

class Registry:
    """One repository of one registry."""

    def __init__(self, ref: RemoteRef, *, insecure: bool = False, timeout: float = 30,
                 credentials: tuple[str, str] | None = None) -> None:
        self.ref = ref
        scheme = "http" if insecure else "https"
        self.base = f"{scheme}://{ref.host}"
        self.timeout = timeout
        self._credentials = credentials
        self._authorization: str | None = None
        self._opener = urllib.request.build_opener(_NoRedirectAuth())

    # -- requests ---------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base}/v2/{self.ref.repository}/{path}"

    def _open(self, method: str, url: str, *, data: bytes | IO[bytes] | None = None,
              headers: Mapping[str, str] | None = None, retry_auth: bool = True) -> Any:
        request = urllib.request.Request(url, data=data, method=method,
                                         headers=dict(headers or {}))
        if self._authorization and _same_origin(url, self.base):
            request.add_header("Authorization", self._authorization)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and retry_auth and self._authenticate(exc.headers):
                exc.close()
                if hasattr(data, "seek"):
                    data.seek(0)  # type: ignore[union-attr]
                return self._open(method, url, data=data, headers=headers, retry_auth=False)
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{self.ref.host} did not answer: {reason}") from None

    def _authenticate(self, headers: Any) -> bool:
        """Answer a 401: basic credentials, or a bearer token from the
        service the registry names (with basic credentials if we have them)."""
        challenge = headers.get("WWW-Authenticate", "") if headers else ""
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic" and self._credentials:
            self._authorization = "Basic " + _basic(*self._credentials)
            return True
        if scheme.lower() != "bearer":
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            return False
        query = urllib.parse.urlencode({k: v for k, v in fields.items()
                                        if k in ("service", "scope")})
        request = urllib.request.Request(f"{realm}?{query}" if query else realm)
        # Credentials go to the token service only over TLS, or to the
        # registry's own address.
        if self._credentials and (realm.startswith("https://") or _same_origin(realm, self.base)):
            request.add_header("Authorization", "Basic " + _basic(*self._credentials))
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                body = json.loads(answer.read(1 << 16))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"no token from the registry's token service: "
                                f"{getattr(exc, 'reason', exc)}") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError("the registry's token service sent no token")
        self._authorization = f"Bearer {token}"
        return True

    def _status(self, exc: urllib.error.HTTPError, what: str) -> RegistryError:
        if exc.code in (401, 403):
            return RegistryError(f"{self.ref.host} refused {what} (HTTP {exc.code}); "
                                 "log in with docker login or podman login")
        return RegistryError(f"{self.ref.host} answered HTTP {exc.code} to {what}")

    # -- API ------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise RegistryError unless the registry answers /v2/ (a 401 is an answer)."""
        try:
            with self._open("GET", f"{self.base}/v2/"):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
            raise self._status(exc, "GET /v2/") from None

    def get_manifest(self, tag: str, accept: tuple[str, ...] = (MANIFEST_TYPE,)) -> bytes | None:
        """The manifest tagged ``tag``, or None if there is none."""
        try:
            with self._open("GET", self._url(f"manifests/{tag}"),
                            headers={"Accept": ", ".join(accept)}) as answer:
                return answer.read(4 << 20)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise self._status(exc, f"GET manifest {tag}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{self.ref.host} broke off sending manifest {tag}: "
                                f"{exc or type(exc).__name__}") from None

    def put_manifest(self, tag: str, body: bytes) -> None:
        try:
            with self._open("PUT", self._url(f"manifests/{tag}"), data=body,
                            headers={"Content-Type": MANIFEST_TYPE}):
                return
        except urllib.error.HTTPError as exc:
            raise self._status(exc, f"PUT manifest {tag}") from None

    def has_blob(self, digest: str) -> bool:
        try:
            with self._open("HEAD", self._url(f"blobs/{digest}")):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise self._status(exc, f"HEAD blob {digest}") from None

    def get_blob(self, digest: str, size: int, out: IO[bytes]) -> None:
        """Write the blob ``digest`` to ``out``; DigestMismatch unless what came
        is exactly ``size`` bytes with that digest."""
        if not DIGEST_RE.match(digest):
            raise RegistryError(f"unsupported digest '{digest}'")
        hasher = hashlib.sha256()
        received = 0
        try:
            with self._open("GET", self._url(f"blobs/{digest}")) as answer:
                for chunk in iter(lambda: answer.read(CHUNK), b""):
                    received += len(chunk)
                    if received > size:
                        break
                    hasher.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise WriteFailed(f"cannot write blob {digest}: "
                                          f"{exc.strerror or exc}") from None
        except urllib.error.HTTPError as exc:
            raise self._status(exc, f"GET blob {digest}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{self.ref.host} broke off sending blob {digest}: {exc}") \
                from None
        got = "sha256:" + hasher.hexdigest()
        if received != size or got != digest:
            raise DigestMismatch(f"blob {digest} from {self.ref.host} is damaged "
                                 f"({received} bytes with digest {got[:19]}…, "
                                 f"expected {size} bytes)")

    def get_small_blob(self, digest: str, size: int, limit: int = 4 << 20) -> bytes:
        if size > limit:
            raise RegistryError(f"blob {digest} is {size} bytes, more than expected")
        buffer = io.BytesIO()
        self.get_blob(digest, size, buffer)
        return buffer.getvalue()

    def put_blob(self, digest: str, size: int, data: bytes | IO[bytes]) -> None:
        """Upload one blob in a single request (POST for a session, then PUT)."""
        try:
            with self._open("POST", self._url("blobs/uploads/"), data=b"",
                            headers={"Content-Length": "0"}) as answer:
                location = answer.headers.get("Location")
        except urllib.error.HTTPError as exc:
            raise self._status(exc, "POST blob upload") from None
        if not location:
            raise RegistryError(f"{self.ref.host} started an upload without a Location")
        url = urllib.parse.urljoin(self.base + "/", location)
        if not _same_origin(url, self.base):
            raise RegistryError(f"{self.ref.host} sent the upload to another host")
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        url += separator + urllib.parse.urlencode({"digest": digest})
        try:
            with self._open("PUT", url, data=data,
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Length": str(size)}):
                return
        except urllib.error.HTTPError as exc:
            raise self._status(exc, f"PUT blob {digest}") from None


class _NoRedirectAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects (blob downloads go to storage elsewhere) but never
    carry the registry's Authorization header to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not _same_origin(newurl, req.full_url):
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def _same_origin(url: str, other: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
