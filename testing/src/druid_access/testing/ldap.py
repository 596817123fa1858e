"""A real OpenLDAP directory (Debian's ``slapd``) run locally for the LDAP tests.

``make ldap`` (``hack/install-slapd.sh``) installs the ``slapd`` and ``ldap-utils`` packages; nothing
of the system installation is used apart from the binaries, the schema files and the modules. ``Slapd``
writes its own ``slapd.conf`` into one directory (an ``mdb`` database under it, the ``memberof``
overlay, the core/cosine/nis/inetorgperson schemas), starts ``slapd`` in the foreground on a free
127.0.0.1 port and waits until the root DN can bind. It then creates the suffix entry and two
organizational units, ``ou=people`` (users, ``inetOrgPerson``) and ``ou=groups`` (``groupOfNames``).

Druid's LDAP credentials validator reads a user's groups from the ``memberOf`` attribute of the user's
own entry, which slapd only keeps when the ``memberof`` overlay is configured and entries are written
through the running server (``slapadd`` bypasses overlays). So every write here goes through
``ldapadd`` / ``ldapmodify`` on the running server. Passwords never appear on a command line: the root
DN's password is read by the client tools from a private file (``-y``), entries are piped on stdin,
and user passwords are stored as salted SHA-1 (``{SSHA}``) computed here.

``druid_properties`` returns the runtime properties of an LDAP authenticator/authorizer pair against
this directory, to pass as ``DruidCoordinator(extra_properties=...)``.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from druid_access.testing.druid import DruidCoordinator
from druid_access.testing.processes import Launched, free_port, spawn, stop_process, tail, write_private

SLAPD = Path("/usr/sbin/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

DEFAULT_SUFFIX = "dc=example,dc=org"
PEOPLE_OU = "people"
GROUPS_OU = "groups"

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLIENT_TIMEOUT = 15.0
POLL_INTERVAL = 0.05

_SUFFIX = re.compile(r"dc=[A-Za-z0-9-]+(?:,dc=[A-Za-z0-9-]+)*")

INSTALL_HINT = "run `make ldap` (hack/install-slapd.sh installs Debian's slapd and ldap-utils)"


class LdapError(RuntimeError):
    """slapd or the LDAP client tools are missing, or slapd could not be started or written to."""


# --- tools -----------------------------------------------------------------------------------------


def find_tool(name: str) -> Path:
    """An OpenLDAP client tool (``ldapadd``, ``ldapmodify``, ...) on PATH."""
    found = shutil.which(name)
    if found is None:
        raise LdapError(f"{name} is not on PATH; {INSTALL_HINT}")
    return Path(found)


def slapd_available() -> bool:
    """slapd, its schema and modules and the client tools are all installed."""
    tools = ("ldapadd", "ldapmodify", "ldapdelete", "ldapsearch", "ldapwhoami")
    return (
        SLAPD.is_file()
        and (MODULE_DIR / "memberof.la").is_file()
        and all((SCHEMA_DIR / f"{schema}.schema").is_file() for schema in SCHEMAS)
        and all(shutil.which(tool) for tool in tools)
    )


# --- LDIF and DN helpers ----------------------------------------------------------------------------

_SAFE_INIT = frozenset(chr(c) for c in range(0x01, 0x80)) - {"\n", "\r", " ", ":", "<"}
_SAFE_CHAR = frozenset(chr(c) for c in range(0x01, 0x80)) - {"\n", "\r"}


def _ldif_line(attribute: str, value: str) -> str:
    """``attribute: value``, or ``attribute:: base64`` when RFC 2849 does not allow the value as is."""
    safe = value == "" or (
        value[0] in _SAFE_INIT and all(c in _SAFE_CHAR for c in value) and not value.endswith(" ")
    )
    if safe:
        return f"{attribute}: {value}"
    return f"{attribute}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def ldif_record(dn: str, attributes: Iterable[tuple[str, str]]) -> str:
    """One LDIF record (an entry for ``ldapadd``, or a change record when it holds ``changetype``)."""
    lines = [_ldif_line("dn", dn), *(_ldif_line(attribute, value) for attribute, value in attributes)]
    return "\n".join(lines) + "\n\n"


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in a DN (RFC 4514, section 2.4)."""
    out: list[str] = []
    for index, char in enumerate(value):
        if char in ',+"\\<>;=' or (char == "#" and index == 0):
            out.append("\\" + char)
        elif char == " " and index in (0, len(value) - 1):
            out.append("\\ ")
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def ssha(password: str) -> str:
    """``{SSHA}`` userPassword value (salted SHA-1, which slapd verifies on a simple bind)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def parse_ldif(text: str) -> list[dict[str, list[str]]]:
    """Entries from ``ldapsearch -LLL -o ldif-wrap=no`` output, attribute names lower-cased."""
    entries: list[dict[str, list[str]]] = []
    for block in text.strip().split("\n\n"):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith("#") or ":" not in line:
                continue
            attribute, _, rest = line.partition(":")
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip()).decode("utf-8")
            else:
                value = rest.strip()
            entry.setdefault(attribute.lower(), []).append(value)
        if entry:
            entries.append(entry)
    return entries


# --- the server ---------------------------------------------------------------------------------------


class Slapd(Launched):
    """One OpenLDAP server on 127.0.0.1 with everything (configuration, database, log) in ``directory``.

    Use as a context manager or call ``start()`` / ``stop()``; ``stop()`` is idempotent and also runs at
    interpreter exit. Every start is fresh (the old database is removed). After ``start()``: ``url`` is
    ``ldap://127.0.0.1:PORT``, ``startup_seconds`` the time from spawning slapd until the root DN can bind,
    ``bootstrap_seconds`` the time to add the base entries.
    """

    def __init__(
        self,
        directory: Path,
        *,
        suffix: str = DEFAULT_SUFFIX,
        root_password: str | None = None,
        slapd: Path = SLAPD,
        schema_dir: Path = SCHEMA_DIR,
        module_dir: Path = MODULE_DIR,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        if not _SUFFIX.fullmatch(suffix):
            raise ValueError(f"suffix {suffix!r} must be a DN of dc= components such as {DEFAULT_SUFFIX}")
        self.directory = directory.resolve()
        self.suffix = suffix
        self.root_password = root_password or secrets.token_urlsafe(24)
        self.slapd = slapd
        self.schema_dir = schema_dir
        self.module_dir = module_dir
        self.ready_timeout = ready_timeout
        self.startup_seconds: float | None = None
        self.bootstrap_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"Slapd({where}, directory={str(self.directory)!r})"

    # names and paths

    @property
    def root_dn(self) -> str:
        return f"cn=admin,{self.suffix}"

    @property
    def people_dn(self) -> str:
        return f"ou={PEOPLE_OU},{self.suffix}"

    @property
    def groups_dn(self) -> str:
        return f"ou={GROUPS_OU},{self.suffix}"

    def user_dn(self, uid: str, *, ou: str = PEOPLE_OU) -> str:
        return f"uid={escape_rdn_value(uid)},ou={escape_rdn_value(ou)},{self.suffix}"

    def group_dn(self, cn: str, *, ou: str = GROUPS_OU) -> str:
        return f"cn={escape_rdn_value(cn)},ou={escape_rdn_value(ou)},{self.suffix}"

    @property
    def conf_path(self) -> Path:
        return self.directory / "slapd.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "slapd.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def password_file(self) -> Path:
        """The root DN's password, read by the client tools with ``-y`` (no trailing newline)."""
        return self.directory / "root.pw"

    @property
    def port(self) -> int:
        if self._port is None:
            raise LdapError("slapd is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # lifecycle

    def start(self) -> None:
        if self._process is not None:
            raise LdapError("slapd is already started")
        if not self.slapd.is_file():
            raise LdapError(f"{self.slapd} is missing; {INSTALL_HINT}")
        atexit.register(self.stop)
        try:
            self._prepare_directory()
            self._port = free_port()
            started = time.monotonic()
            self._log = self.log_path.open("ab")
            command = [str(self.slapd), "-d", "0", "-h", f"{self.url}/", "-f", str(self.conf_path)]
            self._process = spawn(command, self._log, self.directory)
            self._wait_ready()
            self.startup_seconds = time.monotonic() - started
            bootstrap_started = time.monotonic()
            self._bootstrap()
            self.bootstrap_seconds = time.monotonic() - bootstrap_started
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM (slapd flushes and exits), bounded wait, then SIGKILL. Safe to call twice."""
        try:
            if self._process is not None:
                stop_process(self._process, STOP_TIMEOUT)
        finally:
            self._process = None
            if self._log is not None:
                self._log.close()
                self._log = None
            atexit.unregister(self.stop)

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise LdapError(
                f"slapd exited with code {self._process.returncode}; "
                f"last lines of {self.log_path}:\n{tail(self.log_path)}"
            )

    # configuration

    def slapd_conf(self) -> str:
        """The generated ``slapd.conf`` (the root DN's password only as a salted hash)."""
        includes = "\n".join(f"include {self.schema_dir / schema}.schema" for schema in SCHEMAS)
        return f"""\
# Written by druid_access.testing.ldap; regenerated on every start.
{includes}

modulepath {self.module_dir}
moduleload back_mdb
moduleload memberof

pidfile {self.directory / "slapd.pid"}
argsfile {self.directory / "slapd.args"}

database mdb
maxsize 67108864
suffix "{self.suffix}"
rootdn "{self.root_dn}"
rootpw {ssha(self.root_password)}
directory {self.data_dir}
index objectClass eq
index uid,cn eq
index member eq

# Keep memberOf on each member's entry in step with the groups' member attribute.
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""

    def _prepare_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(mode=0o700)
        write_private(self.password_file, self.root_password)
        write_private(self.conf_path, self.slapd_conf())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        while True:
            self.check_alive()
            result = self._client("ldapwhoami", [], check=False, timeout=5.0)
            if result.returncode == 0:
                return
            last = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            if time.monotonic() > deadline:
                raise LdapError(
                    f"slapd not answering on {self.url} after {self.ready_timeout:.0f} s ({last}); "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(POLL_INTERVAL)

    def _bootstrap(self) -> None:
        organization = self.suffix.split(",")[0].partition("=")[2]
        self.add_entries(
            ldif_record(
                self.suffix,
                [
                    ("objectClass", "top"),
                    ("objectClass", "dcObject"),
                    ("objectClass", "organization"),
                    ("dc", organization),
                    ("o", organization),
                ],
            )
            + "".join(
                ldif_record(f"ou={ou},{self.suffix}", [("objectClass", "organizationalUnit"), ("ou", ou)])
                for ou in (PEOPLE_OU, GROUPS_OU)
            )
        )

    # the client tools

    def _client(
        self,
        tool: str,
        args: Sequence[str],
        *,
        stdin: str = "",
        check: bool = True,
        timeout: float = CLIENT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run an OpenLDAP client tool bound as the root DN (password from the private file)."""
        command = [
            str(find_tool(tool)),
            "-x",
            "-H",
            self.url,
            "-D",
            self.root_dn,
            "-y",
            str(self.password_file),
            "-o",
            "nettimeout=5",
            *args,
        ]
        # LDAPNOINIT: ignore /etc/ldap/ldap.conf and ~/.ldaprc, so only these arguments count.
        env = {**os.environ, "LDAPNOINIT": "1"}
        try:
            result = subprocess.run(
                command, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise LdapError(f"{tool} did not finish within {timeout:.0f} s") from error
        if check and result.returncode != 0:
            raise LdapError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def add_entries(self, ldif: str) -> None:
        """``ldapadd`` the records of ``ldif`` on the running server (so the overlays apply)."""
        self._client("ldapadd", [], stdin=ldif)

    def modify(self, ldif: str) -> None:
        """``ldapmodify`` with change records."""
        self._client("ldapmodify", [], stdin=ldif)

    def delete(self, dn: str) -> None:
        self._client("ldapdelete", [], stdin=dn + "\n")

    def search(
        self, base: str, search_filter: str = "(objectClass=*)", attributes: Sequence[str] = ("*", "+")
    ) -> list[dict[str, list[str]]]:
        """``ldapsearch`` (subtree) as the root DN; entries with lower-cased attribute names."""
        result = self._client(
            "ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-b", base, "-s", "sub", search_filter, *attributes]
        )
        return parse_ldif(result.stdout)

    # users and groups

    def _member_dn(self, member: str) -> str:
        """A member given as a DN (contains '=') or as a uid under ``ou=people``."""
        return member if "=" in member else self.user_dn(member)

    def add_user(
        self,
        uid: str,
        password: str,
        *,
        ou: str = PEOPLE_OU,
        cn: str | None = None,
        sn: str | None = None,
        mail: str | None = None,
    ) -> str:
        """An ``inetOrgPerson`` with a hashed ``userPassword``; returns its DN."""
        dn = self.user_dn(uid, ou=ou)
        attributes = [
            ("objectClass", "inetOrgPerson"),
            ("uid", uid),
            ("cn", cn or uid),
            ("sn", sn or uid),
            ("userPassword", ssha(password)),
        ]
        if mail is not None:
            attributes.append(("mail", mail))
        self.add_entries(ldif_record(dn, attributes))
        return dn

    def set_password(self, uid: str, password: str, *, ou: str = PEOPLE_OU) -> None:
        self.modify(
            ldif_record(
                self.user_dn(uid, ou=ou),
                [("changetype", "modify"), ("replace", "userPassword"), ("userPassword", ssha(password))],
            )
        )

    def add_group(self, cn: str, members: Iterable[str], *, ou: str = GROUPS_OU) -> str:
        """A ``groupOfNames``; ``members`` are uids under ``ou=people`` or DNs. Returns its DN.

        groupOfNames needs at least one member: an empty group holds the root DN (no entry, so it
        gets no memberOf).
        """
        dn = self.group_dn(cn, ou=ou)
        member_dns = [self._member_dn(member) for member in members] or [self.root_dn]
        self.add_entries(
            ldif_record(
                dn, [("objectClass", "groupOfNames"), ("cn", cn), *(("member", m) for m in member_dns)]
            )
        )
        return dn

    def set_members(self, cn: str, members: Iterable[str], *, ou: str = GROUPS_OU) -> None:
        """Replace the group's members (the overlay updates every affected user's memberOf)."""
        member_dns = [self._member_dn(member) for member in members] or [self.root_dn]
        self.modify(
            ldif_record(
                self.group_dn(cn, ou=ou),
                [("changetype", "modify"), ("replace", "member"), *(("member", m) for m in member_dns)],
            )
        )

    def add_member(self, cn: str, member: str, *, ou: str = GROUPS_OU) -> None:
        self.modify(
            ldif_record(
                self.group_dn(cn, ou=ou),
                [("changetype", "modify"), ("add", "member"), ("member", self._member_dn(member))],
            )
        )

    def remove_member(self, cn: str, member: str, *, ou: str = GROUPS_OU) -> None:
        self.modify(
            ldif_record(
                self.group_dn(cn, ou=ou),
                [("changetype", "modify"), ("delete", "member"), ("member", self._member_dn(member))],
            )
        )

    def member_of(self, uid: str, *, ou: str = PEOPLE_OU) -> list[str]:
        """The user's ``memberOf`` values as slapd stores them (what Druid reads)."""
        entries = self.search(self.user_dn(uid, ou=ou), "(objectClass=*)", ["memberOf"])
        return entries[0].get("memberof", []) if entries else []

    def can_bind(self, dn: str, password: str) -> bool:
        """A simple bind as ``dn`` with ``password`` succeeds (password piped through a private file)."""
        secret_file = self.directory / f"bind-{secrets.token_hex(4)}.pw"
        write_private(secret_file, password)
        try:
            command = [
                str(find_tool("ldapwhoami")),
                "-x",
                "-H",
                self.url,
                "-D",
                dn,
                "-y",
                str(secret_file),
                "-o",
                "nettimeout=5",
            ]
            env = {**os.environ, "LDAPNOINIT": "1"}
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=env, check=False
            )
            return result.returncode == 0
        finally:
            secret_file.unlink(missing_ok=True)

    # Druid

    def druid_properties(
        self,
        authenticator: str = "ldap",
        authorizer: str = "ldapauth",
        *,
        metadata_authenticator: str = "basic",
        metadata_authorizer: str = "basic",
        group_filters: Sequence[str] | None = None,
        credential_verify_seconds: int = 600,
        credential_max_seconds: int | None = None,
        user_search: str = "(&(uid=%s)(objectClass=inetOrgPerson))",
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Runtime properties adding an LDAP authenticator/authorizer pair for this directory.

        The metadata authenticator (``metadata_authenticator``, Druid's ``admin`` and the operator's
        users) stays first in the chain, now with ``skipOnFailure=true`` so that a login it cannot
        verify falls through to ``authenticator``, a ``basic`` authenticator with an ``ldap`` credentials
        validator. LDAP logins are authorized by ``authorizer``, a ``basic`` authorizer with the ``ldap``
        role provider: roles come from its group mappings (matched against the user's memberOf) and
        from its own user entries. ``group_filters`` (Druid's ``*,<dn>`` / ``<dn>,*`` / ``<dn>`` forms)
        restrict which groups count; by default every group under ``ou=groups``.

        ``credential_verify_seconds``: how long a successful LDAP login (and the groups read with it) is
        reused before the directory is asked again.
        """
        for kind, name in (("authenticator", authenticator), ("authorizer", authorizer)):
            if name in (metadata_authenticator, metadata_authorizer):
                raise ValueError(f"the LDAP {kind} needs its own name, not {name!r}")
        if credential_verify_seconds < 1:
            raise ValueError("credential_verify_seconds must be positive")
        filters = list(group_filters) if group_filters is not None else [f"*,{self.groups_dn}"]
        authn = f"druid.auth.authenticator.{authenticator}"
        authz = f"druid.auth.authorizer.{authorizer}"
        props = {
            "druid.auth.authenticatorChain": json.dumps([metadata_authenticator, authenticator]),
            f"druid.auth.authenticator.{metadata_authenticator}.skipOnFailure": "true",
            f"{authn}.type": "basic",
            f"{authn}.skipOnFailure": "false",
            f"{authn}.authorizerName": authorizer,
            f"{authn}.credentialsValidator.type": "ldap",
            f"{authn}.credentialsValidator.url": self.url,
            f"{authn}.credentialsValidator.bindUser": self.root_dn,
            f"{authn}.credentialsValidator.bindPassword": self.root_password,
            f"{authn}.credentialsValidator.baseDn": self.suffix,
            f"{authn}.credentialsValidator.userSearch": user_search,
            f"{authn}.credentialsValidator.userAttribute": "uid",
            f"{authn}.credentialsValidator.credentialVerifyDuration": str(credential_verify_seconds),
            "druid.auth.authorizers": json.dumps([metadata_authorizer, authorizer]),
            f"{authz}.type": "basic",
            f"{authz}.roleProvider.type": "ldap",
            f"{authz}.roleProvider.groupFilters": json.dumps(filters),
        }
        if credential_max_seconds is not None:
            props[f"{authn}.credentialsValidator.credentialMaxDuration"] = str(credential_max_seconds)
        props.update(extra or {})
        return props


def ldap_coordinator(
    directory: Path,
    slapd: Slapd,
    *,
    admin_password: str,
    version: str,
    authenticator: str,
    authorizer: str,
    credential_verify_seconds: int,
    credential_max_seconds: int,
) -> DruidCoordinator:
    """A (not yet started) Coordinator with the metadata pair and an LDAP pair against ``slapd``."""
    return DruidCoordinator(
        directory,
        admin_password=admin_password,
        version=version,
        extra_properties=slapd.druid_properties(
            authenticator,
            authorizer,
            credential_verify_seconds=credential_verify_seconds,
            credential_max_seconds=credential_max_seconds,
        ),
    )
