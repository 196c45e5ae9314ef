#!/usr/bin/env python3
"""Re-pin docker/Dockerfile's base image: resolve the tag's current digest and rewrite the FROM line
(or, for ``FROM ${BASE_IMAGE}``, the default of ``ARG BASE_IMAGE=...``).

``make docker-pin``. Asks the image's registry (Docker Hub for ``python:3.11-slim-bookworm``) over its
HTTP API with an anonymous pull token, the same exchange ``docker pull`` does, so no Docker engine is
needed. The digest is the sha256 of the manifest (list) bytes the registry serves, checked against the
``Docker-Content-Digest`` header. Every occurrence of the old digest (FROM line, base.digest label) is
replaced and the ``# digest-source:`` comment says where the new one came from.

Fails (exit 1, nothing written) when the registry cannot be reached or answers with an error.
Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DOCKERFILE = Path(__file__).resolve().parent.parent / "docker" / "Dockerfile"
# manifest lists / OCI indexes first: their digest is the multi-platform one `docker pull` pins
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
FROM_RE = re.compile(r"^(FROM\s+)(?:--platform=\S+\s+)?(\S+)", re.MULTILINE | re.IGNORECASE)
ARG_REF_RE = re.compile(r"^\$\{?(\w+)\}?$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SOURCE_PREFIX = "# digest-source:"


class PinError(Exception):
    """A failure with the message the user sees."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host, e.g. registry-1.docker.io
    repository: str  # e.g. library/python
    tag: str
    digest: str | None
    text: str  # as written in the Dockerfile, without the digest

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        name, _, digest = ref.partition("@")
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = "docker.io", name
        last = path.rsplit("/", 1)[-1]
        tag = "latest"
        if ":" in last:
            path, tag = path.rsplit(":", 1)
        if registry == "docker.io":
            registry = "registry-1.docker.io"
            if "/" not in path:
                path = f"library/{path}"
        return cls(registry, path, tag, digest or None, name)


def _open(req: urllib.request.Request, timeout: float):
    return urllib.request.urlopen(req, timeout=timeout)


def _bearer_token(challenge: str, repository: str, timeout: float) -> str:
    """Anonymous token for a ``WWW-Authenticate: Bearer realm=...,service=...`` challenge."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        raise PinError(f"the registry asked for authentication without a token realm ({challenge!r})")
    params.setdefault("scope", f"repository:{repository}:pull")
    with _open(urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}"), timeout) as resp:
        body = json.load(resp)
    token = body.get("token") or body.get("access_token")
    if not token:
        raise PinError(f"the token service {realm} returned no token")
    return token


def resolve_digest(ref: ImageRef, base_url: str | None = None, timeout: float = 20.0) -> str:
    """The registry's current digest for ``ref``'s tag (``sha256:...``)."""
    base = (base_url or f"https://{ref.registry}").rstrip("/")
    url = f"{base}/v2/{ref.repository}/manifests/{ref.tag}"
    headers = {"Accept": ACCEPT}
    where = f"{ref.text} at {base}"
    try:
        try:
            with _open(urllib.request.Request(url, headers=headers), timeout) as resp:
                body, header = resp.read(), resp.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "")
            if exc.code != 401 or not challenge.lower().startswith("bearer"):
                raise
            headers["Authorization"] = f"Bearer {_bearer_token(challenge, ref.repository, timeout)}"
            with _open(urllib.request.Request(url, headers=headers), timeout) as resp:
                body, header = resp.read(), resp.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        raise PinError(f"registry error for {where}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PinError(f"cannot reach the registry for {where} ({reason}). This needs network access to "
                       "the registry; run `make docker-pin` where it is reachable, or resolve the digest "
                       "with `docker buildx imagetools inspect` and edit docker/Dockerfile by hand") from exc
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if header and header != digest:
        raise PinError(f"the registry's Docker-Content-Digest {header} does not match the manifest it "
                       f"served ({digest}) for {where}; not rewriting")
    return digest


def rewrite(text: str, old_ref: str, new_digest: str, source: str) -> str:
    """``text`` with the base image's digest replaced everywhere and the digest-source comment updated."""
    ref = ImageRef.parse(old_ref)
    if ref.digest:
        text = text.replace(ref.digest, new_digest)
    elif f"FROM {old_ref}" in text:
        text = text.replace(f"FROM {old_ref}", f"FROM {old_ref}@{new_digest}", 1)
    else:  # the default of the ARG that FROM names
        text = re.sub(rf"^(ARG\s+\w+=){re.escape(old_ref)}\s*$", rf"\g<1>{old_ref}@{new_digest}", text, count=1,
                      flags=re.MULTILINE)
    line = f"{SOURCE_PREFIX} {source}"
    if SOURCE_PREFIX in text:
        text = re.sub(rf"^{re.escape(SOURCE_PREFIX)}.*$", line, text, count=1, flags=re.MULTILINE)
    else:
        m = FROM_RE.search(text)
        text = text[: m.start()] + line + "\n" + text[m.start():]
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dockerfile", nargs="?", type=Path, default=DEFAULT_DOCKERFILE)
    ap.add_argument("--registry-url", default=None,
                    help="registry endpoint to ask instead of the image's own (a mirror), e.g. https://mirror:5000")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per request (default 20)")
    ap.add_argument("--dry-run", action="store_true", help="print the new digest, change nothing")
    args = ap.parse_args(argv)
    try:
        text = args.dockerfile.read_text()
    except OSError as exc:
        print(f"docker_pin: error: cannot read {args.dockerfile}: {exc.strerror}", file=sys.stderr)
        return 1
    m = FROM_RE.search(text)
    if m is None:
        print(f"docker_pin: error: {args.dockerfile} has no FROM line", file=sys.stderr)
        return 1
    old_ref = m.group(2)
    arg = ARG_REF_RE.match(old_ref)
    if arg:  # FROM ${BASE_IMAGE}: the image is the ARG's default
        default = re.search(rf"^ARG\s+{arg.group(1)}=(\S+)\s*$", text[: m.start()], re.MULTILINE)
        if default is None:
            print(f"docker_pin: error: {args.dockerfile}: FROM {old_ref} but no `ARG {arg.group(1)}=<image>` "
                  "default before it", file=sys.stderr)
            return 1
        old_ref = default.group(1).strip("\"'")
    ref = ImageRef.parse(old_ref)
    if ref.digest and not DIGEST_RE.match(ref.digest):
        print(f"docker_pin: error: {args.dockerfile}: FROM {old_ref}: digest is not sha256:<64 hex>",
              file=sys.stderr)
        return 1
    try:
        digest = resolve_digest(ref, args.registry_url, args.timeout)
    except PinError as exc:
        print(f"docker_pin: error: {exc}", file=sys.stderr)
        return 1
    if digest == ref.digest:
        print(f"{ref.text}: already pinned to the current digest {digest}")
        return 0
    if args.dry_run:
        print(f"{ref.text}: {ref.digest or '(unpinned)'} -> {digest} (dry run, nothing written)")
        return 0
    host = urllib.parse.urlparse(args.registry_url).netloc if args.registry_url else ref.registry
    today = dt.datetime.now(dt.UTC).date().isoformat()
    new = rewrite(text, old_ref, digest, f"resolved from {host} by `make docker-pin` on {today}")
    tmp = args.dockerfile.with_name(f".{args.dockerfile.name}.tmp")
    tmp.write_text(new)
    tmp.replace(args.dockerfile)
    print(f"{ref.text}: {ref.digest or '(unpinned)'} -> {digest}; rewrote {args.dockerfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
