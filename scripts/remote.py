"""Preflight for ``make push`` / ``make pull``: is the DVC remote reachable, and are there credentials?

``dvc push`` against a missing folder or a dead S3 endpoint fails late, after hashing everything, with
an error that rarely says what to do. This check runs first and fails fast (seconds, short timeouts)
with one line naming the remote, the config file that sets it, what is wrong and how to fix it.

Local remotes: the folder must exist for a pull; for a push its parent must exist (DVC creates the
folder itself). S3 remotes: credentials must come from the remote's config (best ``.dvc/config.local``),
the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) or an AWS profile, and
``head_bucket`` must answer. Other schemes are left to DVC.

Usage: ``python scripts/remote.py check [--remote NAME] [--for push|pull] [--repo DIR]``; exit status
0 when DVC may go ahead, 2 with ``uplr remote: error: ...`` on stderr when not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from uplr.errors import UplrError

log = logging.getLogger("uplr.remote")

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 5
ACTIONS = ("push", "pull")


@dataclass(frozen=True)
class Remote:
    """One DVC remote as DVC itself resolves it (all config levels merged, local paths absolute)."""

    name: str
    url: str
    options: dict = field(default_factory=dict)
    defined_in: str = ".dvc/config"  # the config file whose ``url`` wins, for messages

    @property
    def scheme(self) -> str:
        parsed = urlparse(self.url)
        # a Windows drive letter ("C:\\...") parses as a one-letter scheme: that is still a local path
        return "" if len(parsed.scheme) <= 1 else parsed.scheme


def find_repo(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding a ``.dvc`` directory."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise UplrError(f"no .dvc folder in {start} or above; run this inside the DVC project (or pass --repo)")


def load_remote(repo: Path, name: str | None = None) -> Remote:
    """The remote called ``name``, or the default one (``core.remote``), from DVC's merged config."""
    from dvc.config import Config, ConfigError

    dvc_dir = repo / ".dvc"
    try:
        config = Config(dvc_dir=str(dvc_dir))
    except ConfigError as exc:
        msg = f"DVC config in {dvc_dir} is invalid: {exc}; fix it with `dvc remote modify`"
        raise UplrError(msg) from exc
    remotes = config.get("remote", {})
    if not name:
        name = config.get("core", {}).get("remote")
        if not name:
            raise UplrError(
                "no default DVC remote (core.remote) in .dvc/config; pick one with REMOTE=name, "
                "or set one: `dvc remote default NAME`"
            )
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise UplrError(
            f"DVC remote {name!r} is not configured (configured: {known}); "
            f"add it with `dvc remote add {name} URL` or pick another with REMOTE=name"
        )
    options = dict(remotes[name])
    return Remote(name=name, url=str(options.pop("url")), options=options,
                  defined_in=_defined_in(config, repo, name))


def _defined_in(config, repo: Path, name: str) -> str:
    """Which config file sets the remote's url (the most local one wins, as in DVC)."""
    for level in reversed(config.LEVELS):
        if level not in config.files:
            continue
        try:
            section = config.load_one(level).get("remote", {}).get(name, {})
        except Exception:  # an unreadable system/global file: DVC itself reported it already
            continue
        if "url" in section:
            path = Path(config.files[level])
            try:
                return str(path.relative_to(repo))
            except ValueError:
                return str(path)
    return ".dvc/config"


def check_local(remote: Remote, action: str) -> None:
    """A local remote: the folder exists (pull), or at least its parent does (push)."""
    folder = Path(remote.url.removeprefix("file://")).expanduser()
    fix_url = (f"or point the remote elsewhere: `dvc remote modify {remote.name} url /some/dir` "
               f"(add --local to keep that out of git)")
    if folder.exists() and not folder.is_dir():
        raise UplrError(f"DVC remote {remote.name!r} ({remote.defined_in}) points at {folder}, "
                        f"which is a file, not a folder; {fix_url}")
    if not folder.parent.is_dir():
        raise UplrError(f"DVC remote {remote.name!r} ({remote.defined_in}) is unreachable: the parent "
                        f"folder {folder.parent} of {folder} does not exist (a drive not mounted?); "
                        f"create it with `mkdir -p {folder}` {fix_url}")
    if action == "pull" and not folder.is_dir():
        raise UplrError(f"DVC remote {remote.name!r} ({remote.defined_in}): {folder} does not exist, so "
                        f"nothing was ever pushed there; run `make push` where the data is, {fix_url}")
    target = folder if folder.is_dir() else folder.parent
    needed = os.W_OK if action == "push" else os.R_OK
    if not os.access(target, needed | os.X_OK):
        raise UplrError(f"DVC remote {remote.name!r} ({remote.defined_in}): {target} is not "
                        f"{'writable' if action == 'push' else 'readable'} by this user; fix its "
                        f"permissions {fix_url}")
    log.info("remote %r: local folder %s %s", remote.name, folder,
             "is reachable" if folder.is_dir() else "will be created by dvc push")


def _credential_hint(name: str) -> str:
    return (f"put them in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or in "
            f".dvc/config.local, which DVC keeps out of git: `dvc remote modify --local {name} "
            f"access_key_id ...` and `dvc remote modify --local {name} secret_access_key ...`; never "
            f"in .dvc/config")


def s3_session(remote: Remote):
    """A botocore session plus the source of its credentials (``None`` for anonymous access).

    The order follows dvc-s3: keys in the remote's config, then boto's chain (environment, the
    remote's ``profile``/``credentialpath``, ~/.aws). Instance-metadata lookup is left out: it costs
    a network timeout on every machine that is not a cloud VM.
    """
    import botocore.session
    from botocore.exceptions import PartialCredentialsError, ProfileNotFound

    opts = remote.options
    if opts.get("credentialpath"):
        os.environ.setdefault("AWS_SHARED_CREDENTIALS_FILE", str(opts["credentialpath"]))
    if opts.get("configpath"):
        os.environ.setdefault("AWS_CONFIG_FILE", str(opts["configpath"]))
    session = botocore.session.Session(profile=opts.get("profile"))
    key, secret = opts.get("access_key_id"), opts.get("secret_access_key")
    if key or secret:
        missing = "secret_access_key" if key else "access_key_id"
        if not (key and secret):
            raise UplrError(f"S3 remote {remote.name!r}: {missing} is not set while the other key is; "
                            f"{_credential_hint(remote.name)}")
        session.set_credentials(key, secret, opts.get("session_token"))
        return session, "DVC config (access_key_id)"
    if opts.get("allow_anonymous_login"):
        return session, None
    session.get_component("credential_provider").remove("iam-role")
    try:
        creds = session.get_credentials()
    except PartialCredentialsError as exc:
        raise UplrError(f"S3 remote {remote.name!r}: incomplete credentials ({exc}); "
                        f"{_credential_hint(remote.name)}") from exc
    except ProfileNotFound as exc:
        raise UplrError(f"S3 remote {remote.name!r}: AWS profile {opts.get('profile')!r} (set in "
                        f"{remote.defined_in}) is not in the AWS credentials/config files; add it or "
                        f"`dvc remote modify --local {remote.name} --unset profile`") from exc
    if creds is None or not creds.access_key or not creds.secret_key:
        raise UplrError(f"S3 remote {remote.name!r} ({remote.url}) has no credentials: "
                        f"{_credential_hint(remote.name)}")
    return session, creds.method


def check_s3(remote: Remote, action: str) -> None:
    """An S3 (or S3-compatible) remote: credentials exist and ``head_bucket`` answers."""
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, SSLError

    bucket = urlparse(remote.url).netloc
    if not bucket:
        raise UplrError(f"S3 remote {remote.name!r} ({remote.defined_in}) has url {remote.url!r} without "
                        f"a bucket; use s3://bucket/path: `dvc remote modify {remote.name} url s3://...`")
    session, source = s3_session(remote)
    opts = remote.options
    boto_config = BotoConfig(
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
        retries={"total_max_attempts": 1},
        signature_version=UNSIGNED if source is None else None,
    )
    client = session.create_client(
        "s3", endpoint_url=opts.get("endpointurl"), region_name=opts.get("region"),
        use_ssl=opts.get("use_ssl", True), verify=opts.get("ssl_verify"), config=boto_config,
    )
    endpoint = client.meta.endpoint_url
    fix_endpoint = f"`dvc remote modify {remote.name} endpointurl URL`"
    try:
        client.head_bucket(Bucket=bucket)
    except SSLError as exc:
        raise UplrError(f"S3 endpoint {endpoint} of remote {remote.name!r}: TLS failed ({exc}); fix the "
                        f"certificate or `dvc remote modify {remote.name} ssl_verify /path/ca.pem`") from exc
    except EndpointConnectionError as exc:
        raise UplrError(f"S3 endpoint {endpoint} of remote {remote.name!r} ({remote.defined_in}) is not "
                        f"answering; start the server or fix the address: {fix_endpoint}") from exc
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "?")
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise UplrError(f"S3 remote {remote.name!r}: bucket {bucket!r} does not exist at {endpoint} "
                            f"(or that is no S3 server); create it (e.g. `aws s3 mb s3://{bucket} "
                            f"--endpoint-url {endpoint}`) or fix the url: "
                            f"`dvc remote modify {remote.name} url s3://BUCKET/PATH`") from exc
        if status in (401, 403):
            raise UplrError(f"S3 remote {remote.name!r}: {endpoint} refused the credentials from {source} "
                            f"for bucket {bucket!r} (HTTP {status}); check the keys and the bucket's "
                            f"permissions; {_credential_hint(remote.name)}") from exc
        if status == 301:
            raise UplrError(f"S3 remote {remote.name!r}: bucket {bucket!r} lives in another region; set it: "
                            f"`dvc remote modify {remote.name} region REGION`") from exc
        raise UplrError(f"S3 remote {remote.name!r}: {endpoint} answered head_bucket({bucket!r}) with "
                        f"{code} (HTTP {status}); check the bucket and {fix_endpoint}") from exc
    except BotoCoreError as exc:  # timeouts, closed connections, malformed endpoint URLs
        raise UplrError(f"S3 endpoint {endpoint} of remote {remote.name!r} ({remote.defined_in}) is not "
                        f"answering ({exc}); start the server or fix the address: {fix_endpoint}") from exc
    log.info("remote %r: bucket %r at %s answers (credentials: %s)", remote.name, bucket, endpoint,
             source or "anonymous")


def preflight(repo: Path, name: str | None = None, action: str = "push") -> Remote:
    """Raise :class:`UplrError` unless ``dvc push``/``dvc pull`` against the remote can work."""
    if action not in ACTIONS:
        raise UplrError(f"action must be one of {ACTIONS}, got {action!r}")
    remote = load_remote(repo, name)
    if remote.scheme in ("", "file"):
        check_local(remote, action)
    elif remote.scheme == "s3":
        check_s3(remote, action)
    else:
        log.info("remote %r: no preflight for %s:// remotes; DVC will report problems itself",
                 remote.name, remote.scheme)
    return remote


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="remote.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="preflight a DVC remote before a push or a pull")
    check.add_argument("--remote", default=None, help="remote name (default: core.remote)")
    check.add_argument("--for", dest="action", choices=ACTIONS, default="push")
    check.add_argument("--repo", type=Path, default=None, help="DVC project root (default: found from cwd)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        repo = args.repo.resolve() if args.repo else find_repo(Path.cwd())
        preflight(repo, args.remote or None, args.action)
    except UplrError as exc:
        print(f"uplr remote: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
