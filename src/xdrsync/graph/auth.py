"""Entra ID app sign-in per tenant (client credentials) with msal, over our own httpx client.

msal caches the token and renews it before it expires; ``TokenProvider`` adds the mapping of
every sign-in failure onto the project's errors, without ever echoing the secret. Every access
token is registered with the log scrubber as soon as msal hands it over, and the client secret
and certificate key when they are loaded, so no log line or error text can carry them. The
token endpoint's answers are read with the same byte cap and deadline as Graph's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import msal
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from msal.exceptions import MsalServiceError

from xdrsync.config import (
    AppCredentials,
    SentinelDestinationConfig,
    TenantConfig,
    check_service_url,
)
from xdrsync.errors import ConfigError, RetriableError, ThrottledError
from xdrsync.graph.errors import ResponseLimitError
from xdrsync.graph.http import PROXY_REFUSED_HINT, Answer, Limits, graph_error_detail, send
from xdrsync.graph.retry import Condition, classify_exception, parse_retry_after
from xdrsync.logs import clean, register_secrets

log = structlog.get_logger(__name__)

#: A certificate with fewer days than this left is said at sign-in, once a day, and by
#: ``check``: every tenant set up with the same one-year certificate fails on the same day.
CERTIFICATE_WARNING_DAYS: Final = 30

_PEM_KEY = re.compile(rb"-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----.+?-----END \1-----", re.S)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_AADSTS = re.compile(r"AADSTS\d+:[^\"\\\r\n]*")
_HINTS = {
    "invalid_client": "check client_secret / certificate_path",
    "unauthorized_client": "check client_id",
    "invalid_request": "check tenant_id",
    "invalid_response": "check authority_url: the answer was not Entra ID's",
    # AADSTS500011: no such resource (Graph) in this tenant's cloud.
    "invalid_resource": "check that graph_url and authority_url name the same cloud",
}


# -- the loopback shim -------------------------------------------------------------------
#
# msal only accepts https authorities, but the local emulator serves plain http on
# 127.0.0.1 (its openid-configuration advertises https endpoints for the same reason). For a
# *loopback* http authority only, msal is given the https form of the same origin, and the
# adapter below sends requests for exactly that origin back over http. Non-loopback http is
# refused (by check_service_url): secrets and tokens never cross a network in clear text.


def msal_authority(tenant: AppCredentials) -> tuple[str, str | None]:
    """The authority URL to give msal, and the https origin to rewrite to http (or None)."""
    try:
        root = check_service_url(tenant.authority_url, "authority_url")
    except ValueError as refused:
        raise ConfigError(f"tenant {tenant.name!r}: {refused}") from None
    parts = urlsplit(root)
    if parts.scheme == "https":
        return f"{root}/{tenant.tenant_id}", None
    shimmed = f"https://{parts.netloc}"
    return f"https{root[len('http') :]}/{tenant.tenant_id}", shimmed


class _ProxyRefused(Exception):  # noqa: N818 - internal: the adapter to TokenProvider
    """The outbound proxy answered 407 to a sign-in request; the text is its status line."""


def _past_proxy(answer: Answer) -> Answer:
    """``answer``, unless it is the proxy's 407: msal would take that for Entra ID's word
    (an unknown tenant, a refused sign-in) and the message would send the operator astray."""
    if answer.status == 407:
        raise _ProxyRefused(graph_error_detail(answer))
    return answer


class MsalHttpAdapter:
    """The ``http_client`` msal expects (``get``/``post``/``close``), on our httpx client, so
    TLS settings, proxies, timeouts and response limits are ours. httpx responses already
    have the ``status_code``/``text``/``headers``/``raise_for_status()`` msal reads."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        plain_http_origin: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._http = http
        self._origin = plain_http_origin
        self._limits = limits or Limits()
        self.token_requests = 0
        self.last_post_status: int | None = None
        self.last_post_retry_after: float | None = None

    def _url(self, url: str) -> str:
        if self._origin and (url == self._origin or url.startswith(self._origin + "/")):
            return "http" + url[len("https") :]
        return url

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> httpx.Response:
        return _past_proxy(
            send(
                self._http,
                "GET",
                self._url(url),
                limits=self._limits,
                params=params,
                headers=headers,
            )
        ).as_response()

    def post(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> httpx.Response:
        self.token_requests += 1
        target = self._url(url)
        body: dict[str, Any] = {"content": data} if isinstance(data, str) else {"data": _form(data)}
        response = _past_proxy(
            send(
                self._http,
                "POST",
                target,
                limits=self._limits,
                params=params,
                headers=headers,
                **body,
            )
        ).as_response()
        self.last_post_status = response.status_code
        self.last_post_retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response

    def close(self) -> None:
        """The httpx client belongs to the GraphClient, which closes it."""


def _form(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """msal hands over some form values as bytes (the signed client assertion); requests
    encodes those as text, httpx would send their ``b'...'`` repr."""
    if data is None:
        return None
    return {
        key: value.decode("utf-8") if isinstance(value, bytes) else value
        for key, value in data.items()
    }


@dataclass(frozen=True)
class CertificateCredential:
    """An app's certificate as sign-in uses it: its private key (PEM), its SHA-1 thumbprint,
    and the end of its validity."""

    private_key: str
    thumbprint: str
    not_after: datetime

    def for_msal(self) -> dict[str, str]:
        return {"private_key": self.private_key, "thumbprint": self.thumbprint}

    def expires_soon(self, now: datetime) -> bool:
        """Under ``CERTIFICATE_WARNING_DAYS`` left (or none)."""
        return self.not_after - now < timedelta(days=CERTIFICATE_WARNING_DAYS)

    def expiry_note(self, now: datetime) -> str:
        """When it expires, said as ``check`` says it: a warning within
        ``CERTIFICATE_WARNING_DAYS``."""
        day = self.not_after.date().isoformat()
        left = self.not_after - now
        if left <= timedelta(0):
            return f"the certificate (thumbprint {self.thumbprint}) expired on {day}"
        if self.expires_soon(now):
            return (
                f"the certificate (thumbprint {self.thumbprint}) expires on {day}, in "
                f"{_days(left)}: upload its successor to the app registration and write it "
                "to certificate_path before then"
            )
        return f"the certificate (thumbprint {self.thumbprint}) is valid until {day}"


def _days(left: timedelta) -> str:
    """Whole days up to the end, counted up, so that they agree with its date: a certificate
    ending on the 18th is "in 10 days" on the 8th, whatever the hour."""
    if left < timedelta(days=1):
        return "less than a day"
    days = -(-left // timedelta(days=1))
    return "1 day" if days == 1 else f"{days} days"


def certificate_credential(path: Path, password: str | None = None) -> CertificateCredential:
    """The credential for an RSA private key and its certificate: a PEM file holding both
    (the key encrypted or not), or a PKCS#12 file (``.pfx``/``.p12``). ``password`` opens an
    encrypted key or a PKCS#12 file (``certificate_password``).

    Of the certificates in the file (a chain, in whatever order a tool wrote it), the one of
    the key is used. RS256 with its SHA-1 thumbprint (``x5t``) is the form Entra ID has
    always accepted and the one the local emulator verifies.
    """
    try:
        data = path.read_bytes()
    except OSError as problem:
        raise ConfigError(f"cannot read certificate file {path}: {problem.strerror}") from None
    if password:
        register_secrets([password])
    secret = password.encode("utf-8") if password else None
    loaded = _pem_parts(data, secret) if _PEM_KEY.search(data) else _pkcs12_parts(data, secret)
    if isinstance(loaded, str):
        raise ConfigError(f"{path}: {loaded}")
    key, certificates = loaded
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path}: Entra ID app certificates need an RSA key")
    mine = key.public_key().public_numbers()
    certificate = next(
        (
            found
            for found in certificates
            if isinstance(public := found.public_key(), rsa.RSAPublicKey)
            and public.public_numbers() == mine
        ),
        None,
    )
    if certificate is None:
        raise ConfigError(f"{path}: the private key does not belong to the certificate")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    register_secrets([private_pem])
    return CertificateCredential(
        private_pem, certificate_thumbprint(certificate), certificate.not_valid_after_utc
    )


_Loaded = tuple[Any, list[x509.Certificate]]


def _pem_parts(pem: bytes, password: bytes | None) -> _Loaded | str:
    """The key and certificates of a PEM file, or why they cannot be read."""
    key_block = _PEM_KEY.search(pem)
    cert_blocks = [found.group(0) for found in _PEM_CERT.finditer(pem)]
    if key_block is None or not cert_blocks:
        return "must be a PEM file holding the private key and certificate"
    try:
        try:
            key = serialization.load_pem_private_key(key_block.group(0), password=password)
        except TypeError:
            if password is None:
                return "its private key is encrypted: set certificate_password (env:NAME)"
            # A password for a key that has none: the key is read as it is.
            key = serialization.load_pem_private_key(key_block.group(0), password=None)
    except ValueError:
        if password is not None:
            return "its private key cannot be opened: wrong certificate_password, or damaged"
        return "its private key cannot be parsed"
    try:
        certificates = [x509.load_pem_x509_certificate(block) for block in cert_blocks]
    except ValueError:
        return "a certificate in it cannot be parsed"
    return key, certificates


def _pkcs12_parts(data: bytes, password: bytes | None) -> _Loaded | str:
    """The key and certificates of a PKCS#12 (``.pfx``) file, or why they cannot be read."""
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        if password is None:
            return (
                "not a PEM file with key and certificate, nor a PKCS#12 (.pfx) file that "
                "opens without a password (set certificate_password)"
            )
        # A password for a file exported without one: read it as it is.
        unlocked = _pkcs12_parts(data, None)
        if not isinstance(unlocked, str):
            return unlocked
        return "cannot be opened as PKCS#12 (.pfx): wrong certificate_password, or not one"
    if key is None or certificate is None:
        return "the PKCS#12 (.pfx) file must hold the private key and its certificate"
    return key, [certificate, *chain]


def _error(result: Any) -> str | None:
    """The OAuth error code of msal's answer (None: a token, or no answer it could read)."""
    error = result.get("error") if isinstance(result, dict) else None
    return str(error) if error else None


def certificate_thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint Entra ID shows for an uploaded certificate (upper-case hex)."""
    # SHA-1 here is an identifier mandated by the x5t header, not a security primitive.
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


class TokenProvider:
    """Access tokens of one app for one scope (Graph by default); thread-safe, cached and
    renewed by msal."""

    def __init__(
        self,
        tenant: TenantConfig | SentinelDestinationConfig,
        http: httpx.Client,
        limits: Limits | None = None,
        *,
        scope: str | None = None,
    ) -> None:
        self.tenant = tenant
        self.scope = scope or tenant.scope
        self._authority, shim = msal_authority(tenant)
        self._adapter = MsalHttpAdapter(http, plain_http_origin=shim, limits=limits)
        self._app: Any = None
        self._lock = threading.Lock()
        # Read when the app is built (the first token), not here: a secret that cannot be
        # read fails this tenant's calls alone (a ConfigError), as a certificate does.
        self._secret = ""
        #: The certificate signing in (None: a secret), once the app is built.
        self.certificate: CertificateCredential | None = None
        self._built_with: str | CertificateCredential = ""  # the credential the app was built with
        self._expiry_said: date | None = None  # the day its coming expiry was last logged

    @property
    def token_requests(self) -> int:
        """How many times the token endpoint was actually called (cache misses)."""
        return self._adapter.token_requests

    def token(self) -> str:
        """A valid access token; ``ConfigError`` if sign-in is refused, ``RetriableError``
        (``ThrottledError``) if the authority is unreachable or busy."""
        with self._lock:
            result = self._acquire()
            if _error(result) == "invalid_client" and self._rotated():
                # The secret or certificate was replaced since the app was built (rotated in
                # its file, the old one then revoked): sign in with the new one, no restart.
                self._app = None
                result = self._acquire()
        if isinstance(result, dict) and isinstance(result.get("access_token"), str):
            token = str(result["access_token"])
            # Before anyone can echo it: a server that reflects our Authorization header
            # in an error body must not put the token into logs or stored errors.
            register_secrets([token], ephemeral=True)
            if self.certificate is not None:
                self._say_expiry(self.certificate)
            return token
        description = result.get("error_description") if isinstance(result, dict) else None
        raise self._refusal(str(_error(result) or "no_token"), str(description or ""))

    def _acquire(self) -> Any:
        """msal's answer for a token, from its cache or the token endpoint."""
        if self._app is None:
            self._app = self._guarded(self._build_app, discovery=True)
        app = self._app
        return self._guarded(
            lambda: app.acquire_token_for_client(scopes=[self.scope]), discovery=False
        )

    def _rotated(self) -> bool:
        """Whether the credential reads differently now than when the app was built."""
        try:
            return self._credential() != self._built_with
        except ConfigError:  # unreadable now: the refusal stands as it is
            return False

    def _guarded(self, call: Callable[[], Any], *, discovery: bool) -> Any:
        """Run an msal call, mapping its failures onto our errors."""
        problem: Exception | None = None
        try:
            return call()
        except _ProxyRefused as refused:  # a 407 to a plain-http request (the emulator's)
            problem = ConfigError(self._text(f"sign-in: {PROXY_REFUSED_HINT} ({refused})"))
        except httpx.TransportError as failure:
            said = f"{type(failure).__name__}: {failure}"
            if classify_exception(failure) is Condition.PROXY_REFUSED:  # a CONNECT's 407
                problem = ConfigError(self._text(f"sign-in: {PROXY_REFUSED_HINT} ({said})"))
            elif classify_exception(failure) is Condition.UNTRUSTED:  # no retry gets past it
                problem = ConfigError(
                    self._text(
                        f"sign-in refused: {self.tenant.authority_url}'s TLS certificate is "
                        f"not trusted ({said}); if a proxy inspects TLS, set verify_tls to "
                        "its CA bundle"
                    )
                )
            else:
                problem = RetriableError(self._text(f"sign-in unavailable: {said}"))
        except ResponseLimitError as failure:  # the token endpoint's answer was too big/slow
            problem = RetriableError(self._text(f"sign-in unavailable: {failure}"))
        except MsalServiceError:  # msal raises it for 5xx answers
            problem = RetriableError(
                self._text(f"sign-in unavailable: {self.tenant.authority_url} answered 5xx")
            )
        except ValueError as failure:  # discovery refused, or a token answer that is not JSON
            # msal re-raises discovery failures with a generic text; the server's own
            # reason (AADSTS code) is on the exception it replaced.
            texts = [str(failure), str(failure.__context__ or ""), str(failure.__cause__ or "")]
            problem = self._refusal(None if discovery else "invalid_response", " ".join(texts))
        except (AttributeError, TypeError, KeyError) as failure:
            if discovery:
                raise  # building the app: our own code's bug, not the server's answer
            # A token answer that is JSON but not an object (a list, a string, null: a proxy,
            # or an authority that is not Entra ID) trips msal over its own reading of it.
            problem = self._refusal(
                "invalid_response",
                f"the token answer is not a JSON object ({type(failure).__name__})",
            )
        # Raised outside the handlers so msal's exception (and its text) is not chained.
        raise problem

    def invalidate(self) -> None:
        """Forget cached tokens: Graph rejected one (401), the next call signs in afresh."""
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()

    def _say_expiry(self, certificate: CertificateCredential) -> None:
        """A warning, once a day, while the certificate has under
        ``CERTIFICATE_WARNING_DAYS`` left (an expired one signs in no more)."""
        now = datetime.now(UTC)
        if not certificate.expires_soon(now) or self._expiry_said == now.date():
            return
        self._expiry_said = now.date()
        log.warning(
            f"{self.tenant.owner_label(self.tenant.name)}: {certificate.expiry_note(now)}",
            certificate_path=str(self.tenant.certificate_path),
        )

    def _credential(self) -> str | CertificateCredential:
        """The credential as its settings read now: a secret's reference and a certificate's
        file are read again each time."""
        if self.tenant.certificate_path is not None:
            password = self.tenant.certificate_password
            return certificate_credential(
                self.tenant.certificate_path,
                password.get_secret_value() if password is not None else None,
            )
        secret = self.tenant.client_secret
        return secret.get_secret_value() if secret is not None else ""

    def _build_app(self) -> Any:
        credential = self._credential()
        given: str | dict[str, str]
        if isinstance(credential, CertificateCredential):
            self.certificate = credential
            given = credential.for_msal()
        else:
            self._secret = given = credential
            if credential:
                register_secrets([credential])
        self._built_with = credential
        # The constructor already fetches the tenant's OpenID metadata (msal's tenant
        # discovery), so an unknown tenant fails here, as a ValueError.
        return msal.ConfidentialClientApplication(
            self.tenant.client_id,
            client_credential=given,
            authority=self._authority,
            http_client=self._adapter,
            instance_discovery=False,
        )

    def _refusal(self, error: str | None, detail: str) -> Exception:
        status = self._adapter.last_post_status
        found = _AADSTS.search(detail)
        reason = found.group(0).strip() if found else (detail.splitlines() or [""])[0][:200]
        if error is not None and status == 429:
            return ThrottledError(
                self._text(f"sign-in throttled (429): {reason}"),
                retry_after=self._adapter.last_post_retry_after,
            )
        if error is not None and status is not None and status >= 500:
            return RetriableError(self._text(f"sign-in unavailable ({status}): {reason}"))
        if error is None:
            what = f"{self.tenant.authority_url} did not accept tenant_id {self.tenant.tenant_id}"
            why = reason if found else "no OpenID metadata for it"
            return ConfigError(self._text(f"{what} ({why})"))
        hint = _HINTS.get(error, "check the app registration")
        if reason.startswith("AADSTS700024:"):  # the assertion is dated by our clock
            hint = "check this machine's clock (sync it with NTP): it dates the assertion"
        elif error == "invalid_client" and self.certificate is not None:
            now = datetime.now(UTC)
            if self.certificate.not_after <= now:
                hint = (
                    f"{self.certificate.expiry_note(now)}: upload a new one to app "
                    f"{self.tenant.client_id} and write it to certificate_path"
                )
            else:
                hint = (
                    f"check that the certificate with thumbprint {self.certificate.thumbprint} "
                    f"({self.tenant.certificate_path}) is uploaded to app {self.tenant.client_id}"
                )
        elif error == "invalid_scope":
            hint = f"check the service URL this scope is made from ({self.scope})"
        return ConfigError(self._text(f"Entra ID refused sign-in ({error}: {reason}); {hint}"))

    def _text(self, message: str) -> str:
        text = f"{self.tenant.owner_label(self.tenant.name)}: {' '.join(message.split())}"
        if self._secret:
            text = text.replace(self._secret, "***")
        return clean(text, limit=600)


__all__ = [
    "CERTIFICATE_WARNING_DAYS",
    "CertificateCredential",
    "MsalHttpAdapter",
    "TokenProvider",
    "certificate_credential",
    "certificate_thumbprint",
    "msal_authority",
]
