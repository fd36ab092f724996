"""Data tables behind the emulator's attack stories: people, places, products, alerts, stories."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- the organisation ------------------------------------------------------------------------
# Microsoft's own fictitious company names, so demo data never looks like a real customer.
ORGS: tuple[tuple[str, str], ...] = (
    ("contoso", "Contoso"),
    ("fabrikam", "Fabrikam"),
    ("northwindtraders", "Northwind Traders"),
    ("tailspintoys", "Tailspin Toys"),
    ("woodgrovebank", "Woodgrove Bank"),
    ("adatum", "A. Datum"),
    ("litwareinc", "Litware"),
    ("alpineskihouse", "Alpine Ski House"),
    ("fourthcoffee", "Fourth Coffee"),
    ("relecloud", "Relecloud"),
)
FIRST_NAMES = _words(
    "Adele Alex Allan Amy Ben Brian Carla Chris Dana Diego Elena Emily Femi Grace Hana Isaiah "
    "Ivan Jana Joni Kai Kenji Lara Lee Lidia Lynne Marta Megan Miriam Nestor Nina Omar Patti "
    "Pradeep Priya Quinn Raul Rosa Sam Sara Tomas Ursula Victor Wei Yara Zoe"
)
LAST_NAMES = _words(
    "Vance Wilber Carter Brown Rivera Sato Novak Okafor Holt Lindqvist Mendes Kowalski Nakamura "
    "Haddad Fischer Singh Patel Moreau Rossi Jensen Dubois Walsh Costa Yilmaz Kim Ferreira Nguyen "
    "Adams Cohen Schmidt Larsen Romero Bauer Ortiz Silva Murphy Grant Chen Ibrahim Stewart"
)
DEPARTMENTS = ("Finance", "HR", "Engineering", "Sales", "Legal", "IT", "Marketing", "Operations")
RBAC_GROUPS = (
    (11, "Workstations"),
    (12, "Servers"),
    (13, "Domain Controllers"),
    (75, "UnassignedGroup"),
)
WORKSTATION_OS = (
    ("Windows11", 22631, "23H2"),
    ("Windows11", 26100, "24H2"),
    ("Windows10", 19045, "22H2"),
    ("macOS", 0, "14.5"),
)
SERVER_OS = (
    ("WindowsServer2022", 20348, "21H2"),
    ("WindowsServer2019", 17763, "1809"),
    ("Linux", 0, "Ubuntu 22.04"),
)

# -- places: (city, state, country, ISO code, latitude, longitude) ------------------------------
HOME_CITIES = (
    ("Seattle", "Washington", "United States", "US", 47.6062, -122.3321),
    ("Chicago", "Illinois", "United States", "US", 41.8781, -87.6298),
    ("London", "England", "United Kingdom", "GB", 51.5072, -0.1276),
    ("Amsterdam", "North Holland", "Netherlands", "NL", 52.3676, 4.9041),
    ("Munich", "Bavaria", "Germany", "DE", 48.1351, 11.5820),
)
REMOTE_CITIES = (
    ("Lagos", "Lagos", "Nigeria", "NG", 6.5244, 3.3792),
    ("Bucharest", "Bucuresti", "Romania", "RO", 44.4268, 26.1025),
    ("Sao Paulo", "Sao Paulo", "Brazil", "BR", -23.5558, -46.6396),
    ("Hanoi", "Hanoi", "Vietnam", "VN", 21.0278, 105.8342),
    ("Jakarta", "Jakarta", "Indonesia", "ID", -6.2088, 106.8456),
    ("Kyiv", "Kyiv City", "Ukraine", "UA", 50.4501, 30.5234),
    ("Singapore", "Singapore", "Singapore", "SG", 1.3521, 103.8198),
    ("Frankfurt am Main", "Hesse", "Germany", "DE", 50.1109, 8.6821),
    ("Ashburn", "Virginia", "United States", "US", 39.0438, -77.4874),
    ("Tehran", "Tehran", "Iran", "IR", 35.6892, 51.3890),
)
# Documentation address blocks (RFC 5737): realistic-looking, never anyone's real host.
REMOTE_PREFIXES = ("203.0.113.", "198.51.100.", "192.0.2.")

# -- attacker infrastructure and artefacts (fictitious names) ----------------------------------
PHISH_DOMAINS = (
    "micros0ft-signin.com",
    "secure-docshare.net",
    "office-verify-login.com",
    "payroll-portal-update.com",
    "dropfile-share.net",
    "invoice-center.biz",
    "m365-auth.live",
)
C2_DOMAINS = (
    "cdn-telemetry-sync.com",
    "update-check-svc.net",
    "static-img-cache.org",
    "api-metrics-hub.io",
)
SENDER_NAMES = (
    "IT Service Desk",
    "Microsoft 365",
    "Payroll Team",
    "DocuSign",
    "Accounts Payable",
    "SharePoint Online",
)
SUBJECTS = (
    "Action required: your password expires today",
    "Invoice #{n} overdue - please review",
    "Shared document: Q{q} salary adjustments",
    "Voicemail received from +1 (425) 555-01{n2}",
    "Your mailbox storage is almost full",
    "Updated wire instructions for vendor payment",
)
MALWARE = (  # threatDisplayName, family, category, file name, folder
    (
        "Trojan:Win32/Qakbot.RPX!MTB",
        "Qakbot",
        "Trojan",
        "invoice_{n}.dll",
        "C:\\Users\\{acct}\\AppData\\Local\\Temp",
    ),
    (
        "Trojan:Win32/IcedId.PAB!MTB",
        "IcedID",
        "Trojan",
        "license.dat",
        "C:\\Users\\{acct}\\AppData\\Roaming",
    ),
    (
        "Backdoor:Win64/CobaltStrike.NP!dha",
        "CobaltStrike",
        "Backdoor",
        "svchost32.exe",
        "C:\\ProgramData",
    ),
    (
        "Trojan:Win32/AgentTesla!ml",
        "AgentTesla",
        "PasswordStealer",
        "scan_{n}.exe",
        "C:\\Users\\{acct}\\Downloads",
    ),
    (
        "Trojan:Script/Wacatac.B!ml",
        "Wacatac",
        "Trojan",
        "document_{n}.js",
        "C:\\Users\\{acct}\\Downloads",
    ),
)
RANSOMWARE = (
    ("Ransom:Win64/LockBit.MK!MTB", "LockBit", "Ransom", "locker.exe", "C:\\Windows\\Temp"),
    ("Ransom:Win32/BlackCat.MA!MTB", "BlackCat", "Ransom", "enc.exe", "C:\\PerfLogs"),
    ("Ransom:Win64/Akira.AA!MTB", "Akira", "Ransom", "w.exe", "C:\\Users\\Public\\Music"),
)
HACKTOOLS = (
    ("HackTool:Win32/Mimikatz.D", "Mimikatz", "HackTool", "m64.exe", "C:\\Windows\\Temp"),
    ("HackTool:Win32/Rubeus!MSR", "Rubeus", "HackTool", "rb.exe", "C:\\Users\\Public"),
)
ACTORS = ("Storm-0501", "Octo Tempest", "Storm-1567", "Manatee Tempest", "Storm-0216")
OAUTH_APPS = (
    ("PDF Converter Online", "PDF Tools Ltd"),
    ("Mail Backup Pro", "CloudSafe Inc"),
    ("Calendar Sync+", "SyncWorks"),
)
CLOUD_APPS = (  # displayName, MDCA app id
    ("Microsoft Exchange Online", 20893),
    ("Microsoft SharePoint Online", 20892),
    ("Microsoft OneDrive for Business", 15600),
    ("Microsoft Teams", 28375),
    ("Amazon Web Services", 11599),
    ("Dropbox", 10489),
    ("Microsoft Azure", 12260),
)
BROWSERS = (
    (
        "Edge 124.0.0",
        "Windows 10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    ),
    (
        "Chrome 125.0.0",
        "Windows 10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36",
    ),
    ("Python Requests 2.31", "Linux", "python-requests/2.31.0"),
    (
        "Firefox 126.0",
        "Linux",
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    ),
)
SENSITIVE_GROUPS = ("Domain Admins", "Enterprise Admins", "Backup Operators", "Account Operators")
PRIVILEGED_ACCOUNTS = ("svc_backup", "svc_sql", "adm_it", "svc_sccm")
CUSTOM_TAGS = (
    "Phishing campaign",
    "VIP",
    "Ransomware",
    "Pentest",
    "Finance",
    "Escalated",
    "Red team",
    "BEC",
)
AUTOMATION = "Automation"
CORRELATION = "Microsoft Defender XDR - alert correlation"

# Comment texts; {device}, {user} and {ip} are filled from the incident's own evidence.
COMMENTS = (
    "Triaged. {user} confirms they did not sign in from {ip}; resetting credentials.",
    "Isolated {device} from the network pending investigation.",
    "Collected investigation package from {device}.",
    "Blocked {ip} at the perimeter firewall and in Conditional Access.",
    "Reached out to {user} by phone, awaiting confirmation.",
    "Revoked refresh tokens and required MFA re-registration for {user}.",
    "Escalated to tier 3 / IR on-call.",
    "Purged remaining copies of the message from all mailboxes.",
    "Full AV scan on {device} came back clean after remediation.",
    "Checked with the change board: no approved activity matches this.",
    "Related to the ongoing campaign tracked in the weekly threat brief.",
)
RESOLVING = {
    "truePositive": "Confirmed malicious activity; contained and remediated.",
    "informationalExpectedActivity": "Expected activity by an authorised team; closed as benign.",
    "falsePositive": "Detection did not reflect malicious activity; closed as false positive.",
}
# Which determinations go with which classification (legacy update doc's table, SDK spelling).
DETERMINATIONS = {
    "truePositive": (
        "multiStagedAttack",
        "maliciousUserActivity",
        "compromisedAccount",
        "malware",
        "phishing",
        "unwantedSoftware",
        "other",
    ),
    "informationalExpectedActivity": (
        "securityTesting",
        "lineOfBusinessApplication",
        "confirmedActivity",
        "other",
    ),
    "falsePositive": ("notMalicious", "notEnoughDataToValidate", "other"),
}
TACTIC_NAMES = {
    "InitialAccess": "Initial access",
    "Execution": "Execution",
    "Persistence": "Persistence",
    "PrivilegeEscalation": "Privilege escalation",
    "DefenseEvasion": "Defense evasion",
    "CredentialAccess": "Credential access",
    "Discovery": "Discovery",
    "LateralMovement": "Lateral movement",
    "Collection": "Collection",
    "CommandAndControl": "Command and control",
    "Exfiltration": "Exfiltration",
    "Impact": "Impact",
    "Malware": "Malware",
    "Ransomware": "Ransomware",
    "SuspiciousActivity": "Suspicious activity",
}


# -- products --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    """One Defender workload as Graph names it, and how its alert ids look."""

    service_source: str
    detection_source: str
    product_name: str
    id_style: str  # "ticks" (da…_n), "guid" (fa…/aa…), "upper" (ca…), "hex" (ad…)
    id_prefix: str
    investigation_states: tuple[str, ...]
    actions: str


_MDE_ACTIONS = (
    "Collect artifacts and determine scope\n\u2022\tReview the device timeline for suspicious "
    "activities that may have occurred before and after the time of the alert.\n\u2022\tLook "
    "for the presence of relevant artifacts on other systems.\n\nInitiate containment & "
    "mitigation\n\u2022\tIsolate the device and run a full antivirus scan.\n\u2022\tIf "
    "credential theft is suspected, reset all relevant users' passwords.\n\u2022\tBlock "
    "communication with relevant URLs or IPs at the organization's perimeter."
)
PRODUCTS = {
    "mde": Product(
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForEndpoint",
        "Microsoft Defender for Endpoint",
        "ticks",
        "da",
        (
            "successfullyRemediated",
            "running",
            "benign",
            "partiallyRemediated",
            "pendingApproval",
            "queued",
            "terminatedBySystem",
        ),
        _MDE_ACTIONS,
    ),
    "mdi": Product(
        "microsoftDefenderForIdentity",
        "microsoftDefenderForIdentity",
        "Microsoft Defender for Identity",
        "guid",
        "aa",
        ("unsupportedAlertType",),
        "1. Review the source computer and the involved accounts.\n2. Reset the passwords of the "
        "involved accounts and enforce MFA.\n3. Contain the source computer until it is cleaned.",
    ),
    "mdo": Product(
        "microsoftDefenderForOffice365",
        "microsoftDefenderForOffice365",
        "Microsoft Defender for Office 365",
        "guid",
        "fa",
        ("queued", "running", "successfullyRemediated", "pendingApproval"),
        "",
    ),
    "mdca": Product(
        "microsoftDefenderForCloudApps",
        "cloudAppSecurity",
        "Microsoft Defender for Cloud Apps",
        "upper",
        "ca",
        ("unsupportedAlertType",),
        "Review the user's activity log, confirm with the user, and suspend the user or revoke "
        "the app's access if the activity is not legitimate.",
    ),
    "aadip": Product(
        "azureAdIdentityProtection",
        "azureAdIdentityProtection",
        "Microsoft Entra ID Protection",
        "hex",
        "ad",
        ("unsupportedAlertType",),
        "Confirm the sign-in with the user. If it was not them, mark the user as compromised, "
        "reset the password and revoke sessions.",
    ),
    "xdr": Product(
        "microsoft365Defender",
        "microsoft365Defender",
        "Microsoft Defender XDR",
        "ticks",
        "ed",
        ("running", "successfullyRemediated"),
        "Review the attack story across the involved assets; contain compromised users and "
        "devices.",
    ),
}


# -- alerts and stories ----------------------------------------------------------------------
@dataclass(frozen=True)
class AlertSpec:
    """One kind of alert: what it says, and which evidence recipes it carries."""

    product: str
    title: str
    description: str
    category: str
    techniques: tuple[str, ...]
    severity: str
    evidence: tuple[str, ...]
    detection: str = ""  # overrides the product's usual detectionSource
    threat: str = ""  # "malware", "ransomware" or "hacktool": the story's threat names it

    @cached_property
    def detector_id(self) -> str:
        """A stable id per alert kind, as Defender's detectors have."""
        digest = hashlib.sha256(self.title.encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _a(
    product: str,
    title: str,
    description: str,
    category: str,
    techniques: str,
    severity: str,
    evidence: str,
    detection: str = "",
    threat: str = "",
) -> AlertSpec:
    return AlertSpec(
        product,
        title,
        description,
        category,
        tuple(techniques.split()),
        severity,
        tuple(evidence.split()),
        detection,
        threat,
    )


MAIL_REMOVED = _a(
    "mdo",
    "Email messages containing malicious URL removed after delivery",
    "Emails with malicious URL that were delivered and later removed -V1.0.0.3",
    "InitialAccess",
    "T1566.002",
    "medium",
    "message cluster mailbox url sender_ip user",
)
URL_CLICK = _a(
    "mdo",
    "A potentially malicious URL click was detected",
    "We have detected that one of your users, {user}, has recently clicked on a link that was "
    "found to be malicious. -V1.0.0.5",
    "InitialAccess",
    "T1566.002 T1204.001",
    "high",
    "url mailbox user message device ip_user process",
)
UNFAMILIAR_SIGNIN = _a(
    "aadip",
    "Unfamiliar sign-in properties",
    "The sign-in of {upn} from {ip} ({country}) has properties that are unfamiliar for this user.",
    "InitialAccess",
    "T1078.004",
    "medium",
    "user attacker_ip logon_session cloud_app ip_user",
)
AITM_SESSION = _a(
    "xdr",
    "Possible AiTM phishing attempt",
    "A session cookie of {upn} was replayed from {ip} shortly after a phishing link was opened, "
    "which suggests an adversary-in-the-middle phishing kit.",
    "CredentialAccess",
    "T1557 T1539 T1078.004",
    "high",
    "user attacker_ip logon_session url cloud_app device ip_user",
)
INBOX_RULE = _a(
    "mdca",
    "Suspicious inbox manipulation rule",
    "The user {user} created an inbox rule that moves or deletes messages, which may be used "
    "to hide an ongoing fraud.",
    "Collection",
    "T1564.008 T1114.003",
    "medium",
    "mailbox mailbox_config user attacker_ip cloud_app logon_session",
)
FORWARDING = _a(
    "mdca",
    "Suspicious inbox forwarding",
    "{user} set up a forwarding rule that sends all incoming email to an external address.",
    "Exfiltration",
    "T1114.003 T1020",
    "high",
    "mailbox mailbox_config user attacker_ip cloud_app logon_session",
)
BEC_FRAUD = _a(
    "xdr",
    "BEC financial fraud",
    "A compromised mailbox ({upn}) sent payment-change requests to finance contacts after "
    "hiding replies with an inbox rule.",
    "Impact",
    "T1534 T1114.003 T1078",
    "high",
    "user mailbox message cluster attacker_ip cloud_app mailbox_config",
)
SUSPICIOUS_SENDING = _a(
    "mdo",
    "Suspicious email sending patterns detected",
    "{upn} sent an unusual number of messages to external recipients. -V1.0.0.2",
    "InitialAccess",
    "T1534",
    "medium",
    "mailbox user cluster message attacker_ip cloud_app",
)
PS_COMMAND = _a(
    "mde",
    "Suspicious PowerShell command line",
    "A suspicious PowerShell command line was run on {device} by {user}. Attackers use "
    "PowerShell to download payloads and run code in memory.",
    "Execution",
    "T1059.001 T1027",
    "medium",
    "device user powershell process file recon hash",
)
PS_DOWNLOAD = _a(
    "mde",
    "Suspicious PowerShell download or encoded command execution",
    "An encoded PowerShell command downloaded and ran content from {domain} on {device}.",
    "Execution",
    "T1059.001 T1105 T1027",
    "high",
    "device user powershell url dns netconn file hash",
)
MALWARE_FOUND = _a(
    "mde",
    "'{family}' malware was detected",
    "Malware and unwanted software are undesirable applications that perform annoying, "
    "disruptive, or harmful actions on affected machines. '{family}' was found on {device}.",
    "Malware",
    "T1204.002",
    "medium",
    "device user file hash malware process",
    detection="antivirus",
    threat="malware",
)
ACTIVE_MALWARE = _a(
    "mde",
    "An active '{family}' malware process was detected while executing",
    "'{family}' was running on {device} and was stopped by Microsoft Defender Antivirus.",
    "Malware",
    "T1204.002 T1055",
    "high",
    "device user process file hash malware registry_value",
    detection="antivirus",
    threat="malware",
)
INJECTION = _a(
    "mde",
    "Suspicious process injection observed",
    "A process on {device} injected code into another process, a technique used to hide "
    "malicious code.",
    "DefenseEvasion",
    "T1055 T1055.012",
    "medium",
    "device user process file hash malware",
)
C2_CONNECTION = _a(
    "mde",
    "Connection to a custom network indicator",
    "{device} connected to {domain} ({c2}), which is on a custom block list.",
    "CommandAndControl",
    "T1071.001",
    "medium",
    "device netconn dns c2_ip url process file user",
    detection="customTi",
)
PERSISTENCE = _a(
    "mde",
    "Anomaly detected in ASEP registry",
    "A process registered a run key on {device} so that a payload starts with Windows.",
    "Persistence",
    "T1547.001",
    "medium",
    "device user registry_key registry_value process file hash",
)
SCHED_TASK = _a(
    "mde",
    "Suspicious Task Scheduler activity",
    "A scheduled task was created on {device} to run a suspicious command.",
    "Persistence",
    "T1053.005",
    "low",
    "device user process file hash recon",
)
LSASS = _a(
    "mde",
    "Suspicious access to LSASS service",
    "A process accessed the memory of the LSASS service on {device}, possibly to dump credentials.",
    "CredentialAccess",
    "T1003.001",
    "high",
    "device user process file hash malware",
    threat="hacktool",
)
HACKTOOL = _a(
    "mde",
    "'{family}' hacktool was detected",
    "Readily available tools, such as hacking programs, can be used by unauthorized individuals "
    "to spy on users. '{family}' was found on {device}.",
    "Malware",
    "T1003",
    "low",
    "device file hash malware user process",
    detection="antivirus",
    threat="hacktool",
)
LATERAL_REMOTE = _a(
    "mde",
    "Suspicious remote activity",
    "Suspicious remote activity was observed from {device} to {device2}.",
    "LateralMovement",
    "T1021.002 T1570",
    "medium",
    "device device2 user process netconn file hash",
)
WMI_REMOTE = _a(
    "mde",
    "Possible lateral movement using WMI",
    "{device} ran commands on {device2} through WMI using the account {user}.",
    "LateralMovement",
    "T1047 T1021.006",
    "high",
    "device device2 user process host_logon ip_internal",
)
TAMPERING = _a(
    "mde",
    "Attempt to turn off Microsoft Defender Antivirus protection",
    "A process on {device2} tried to disable Microsoft Defender Antivirus real-time protection.",
    "DefenseEvasion",
    "T1562.001",
    "high",
    "device2 process registry_value admin registry_key device",
)
BACKUP_DELETE = _a(
    "mde",
    "File backups were deleted",
    "Shadow copies were deleted on {device2}, a common step before ransomware encrypts files.",
    "Impact",
    "T1490",
    "high",
    "device2 process admin file device recon",
)
RANSOM_FS = _a(
    "mde",
    "Ransomware behavior detected in the file system",
    "Many files on {device2} were renamed with a new extension and a ransom note was dropped.",
    "Ransomware",
    "T1486",
    "high",
    "device2 admin file hash malware process device",
    threat="ransomware",
)
DISRUPTION = _a(
    "xdr",
    "Human-operated ransomware attack was launched from a compromised asset (attack disruption)",
    "Automatic attack disruption contained {user} and {device2} after ransomware activity was "
    "seen spreading from {device}.",
    "Ransomware",
    "T1486 T1021.002",
    "high",
    "device device2 user admin file netconn hash",
    threat="ransomware",
)
KERBEROAST = _a(
    "mdi",
    "Suspected Kerberos SPN exposure (Kerberoasting)",
    "{user} on {device} requested Kerberos service tickets for {count} service accounts.",
    "CredentialAccess",
    "T1558.003",
    "high",
    "device user admin dc ad_domain ip_internal",
)
RECON = _a(
    "mdi",
    "User and IP address reconnaissance (SMB)",
    "{user} on {device} enumerated SMB sessions on {dc}.",
    "Discovery",
    "T1087.002 T1018",
    "medium",
    "device user dc ip_internal group ad_domain",
)
GROUP_RECON = _a(
    "mdi",
    "Security principal reconnaissance (LDAP)",
    "{device} sent suspicious LDAP queries for sensitive groups to {dc}.",
    "Discovery",
    "T1069.002 T1087.002",
    "medium",
    "device user dc group ad_domain ip_internal",
)
DCSYNC = _a(
    "mdi",
    "Suspected DCSync attack (replication of directory services)",
    "{user} on {device} sent a replication request to {dc}.",
    "CredentialAccess",
    "T1003.006",
    "high",
    "device user dc admin ad_domain ip_internal",
)
GROUP_ADD = _a(
    "mdi",
    "Suspicious additions to sensitive groups",
    "{user} was added to a sensitive group.",
    "PrivilegeEscalation",
    "T1098",
    "medium",
    "user admin group dc ad_domain device",
)
PTH = _a(
    "mdi",
    "Suspected identity theft (pass-the-ticket)",
    "A Kerberos ticket of {user} was used from {device2}, a different computer than it was "
    "issued to.",
    "LateralMovement",
    "T1550.003",
    "high",
    "device device2 user dc ip_internal host_logon",
)
BRUTE = _a(
    "mdi",
    "Suspected Brute Force attack (LDAP)",
    "{count} accounts were targeted with failed LDAP sign-ins from {device}.",
    "CredentialAccess",
    "T1110.001",
    "medium",
    "device user user2 dc ip_internal ad_domain",
)
SPRAY = _a(
    "aadip",
    "Password spray",
    "A password spray against {count} accounts came from {ip}.",
    "CredentialAccess",
    "T1110.003",
    "high",
    "user user2 attacker_ip cloud_app logon_session ip_user",
)
SPRAY_MDCA = _a(
    "mdca",
    "Multiple failed login attempts",
    "Many failed sign-ins for {user} from {ip} in a short time.",
    "CredentialAccess",
    "T1110.003",
    "medium",
    "user attacker_ip cloud_app logon_session user2",
)
IMPOSSIBLE = _a(
    "mdca",
    "Impossible travel activity",
    "{user} signed in from {home} and, shortly after, from {country} ({ip}).",
    "InitialAccess",
    "T1078",
    "medium",
    "user ip_user attacker_ip logon_session cloud_app",
)
ATYPICAL = _a(
    "aadip",
    "Atypical travel",
    "Sign-ins of {upn} from geographically distant locations within a short time.",
    "InitialAccess",
    "T1078.004",
    "medium",
    "user attacker_ip ip_user logon_session cloud_app",
)
INFREQUENT_COUNTRY = _a(
    "mdca",
    "Activity from infrequent country",
    "{user} performed activity from {country}, a country not recently seen in the organization.",
    "InitialAccess",
    "T1078",
    "low",
    "user attacker_ip cloud_app logon_session",
)
ANON_IP = _a(
    "mdca",
    "Activity from an anonymous proxy",
    "{user} signed in from {ip}, an address known as an anonymous proxy.",
    "InitialAccess",
    "T1090.003",
    "low",
    "user attacker_ip cloud_app logon_session",
)
MASS_DOWNLOAD = _a(
    "mdca",
    "Mass download by a single user",
    "{user} downloaded {count} files from {app} in a single session.",
    "Exfiltration",
    "T1530 T1213.002",
    "medium",
    "user cloud_app attacker_ip logon_session file",
)
RANSOM_CLOUD = _a(
    "mdca",
    "Ransomware activity",
    "{user} manipulated {count} files with an uncommon extension in {app}, which indicates a "
    "potential ransomware attack.",
    "Impact",
    "T1486",
    "high",
    "user cloud_app attacker_ip file logon_session",
)
UNSANCTIONED = _a(
    "mdca",
    "Data exfiltration to an app that isn't sanctioned",
    "{user} uploaded data to an app that is not sanctioned.",
    "Exfiltration",
    "T1567.002",
    "medium",
    "user cloud_app ip_user url file",
)
OAUTH_CONSENT = _a(
    "xdr",
    "Suspicious OAuth application consent",
    "{user} granted an unverified app ('{oauth}') read access to mail and files.",
    "Persistence",
    "T1528 T1550.001",
    "high",
    "user oauth_app service_principal cloud_app attacker_ip url logon_session",
)
OAUTH_CREDS = _a(
    "mdca",
    "Unusual addition of credentials to an OAuth app",
    "Credentials were added to the app '{oauth}' by {user}, which may let an attacker keep access.",
    "Persistence",
    "T1098.001",
    "medium",
    "user oauth_app service_principal cloud_app attacker_ip",
)
OAUTH_DOWNLOAD = _a(
    "mdca",
    "Suspicious OAuth app file download activities",
    "The app '{oauth}' downloaded many files from SharePoint on behalf of {user}.",
    "Collection",
    "T1530",
    "medium",
    "oauth_app user cloud_app file service_principal",
)
CLOUD_DELETE = _a(
    "mdca",
    "Multiple delete VM activities",
    "{user} deleted many virtual machines in a short time.",
    "Impact",
    "T1485",
    "medium",
    "user azure_resource cloud_app attacker_ip logon_session",
)
AWS_REGION = _a(
    "mdca",
    "Suspicious creation activity for cloud region",
    "{user} created resources in a cloud region not used before by the organization.",
    "Execution",
    "T1578.002",
    "medium",
    "user amazon_resource cloud_app attacker_ip logon_session",
)
GCP_ACCESS = _a(
    "mdca",
    "Unusual administrative activity (by user)",
    "{user} performed administrative actions on Google Cloud that are unusual for them.",
    "PrivilegeEscalation",
    "T1078.004",
    "low",
    "user gcp_resource service_principal cloud_app attacker_ip",
)
TEAMS_PHISH = _a(
    "mdo",
    "Malicious Teams message removed after delivery",
    "A Teams message with a malicious URL was delivered to {user} and later removed. -V1.0.0.1",
    "InitialAccess",
    "T1566.003",
    "medium",
    "teams_message user url mailbox sender_ip",
)
REPORTED_PHISH = _a(
    "mdo",
    "Email reported by user as malware or phish",
    "This alert is triggered when any email message is reported as malware or phish by users "
    "-V1.0.0.3",
    "InitialAccess",
    "T1566.001",
    "informational",
    "message mailbox user sender_ip url",
)
ATTACHMENT = _a(
    "mdo",
    "Email messages containing malicious file removed after delivery",
    "Emails with malicious file that were delivered and later removed -V1.0.0.3",
    "InitialAccess",
    "T1566.001",
    "medium",
    "message cluster mailbox file hash sender_ip user",
)


@dataclass(frozen=True)
class Story:
    """An attack template: its alerts in kill-chain order; each incident takes some of them."""

    key: str
    weight: float
    name: str  # a Defender-style campaign name, used for some incidents instead of the generic one
    description: str
    steps: tuple[AlertSpec, ...]


STORIES = (
    Story(
        "phish_chain",
        3.0,
        "Multi-stage incident involving credential phishing and lateral movement",
        "A phishing email led to a stolen session for {user}, code execution on {device} and "
        "data theft.",
        (MAIL_REMOVED, URL_CLICK, AITM_SESSION, UNFAMILIAR_SIGNIN, PS_COMMAND, PTH, MASS_DOWNLOAD),
    ),
    Story(
        "ransomware",
        2.0,
        "Human-operated ransomware attack was launched from a compromised asset "
        "(attack disruption)",
        "Hands-on-keyboard activity from {device} moved laterally to {device2}, deleted backups "
        "and started encrypting files.",
        (
            PS_DOWNLOAD,
            LSASS,
            LATERAL_REMOTE,
            WMI_REMOTE,
            TAMPERING,
            BACKUP_DELETE,
            RANSOM_FS,
            DISRUPTION,
        ),
    ),
    Story(
        "bec",
        1.6,
        "Business email compromise (BEC) financial fraud attack",
        "The mailbox of {user} was taken over from {ip}; inbox rules hid replies while payment "
        "fraud emails were sent.",
        (UNFAMILIAR_SIGNIN, INBOX_RULE, FORWARDING, SUSPICIOUS_SENDING, BEC_FRAUD),
    ),
    Story(
        "oauth_consent",
        1.0,
        "Consent phishing attack involving one user",
        "{user} consented to the malicious app '{oauth}', which then read mail and files.",
        (MAIL_REMOVED, OAUTH_CONSENT, OAUTH_CREDS, OAUTH_DOWNLOAD),
    ),
    Story(
        "password_spray",
        1.4,
        "Password spray attack involving multiple users",
        "A password spray from {ip} succeeded against {user}.",
        (SPRAY, SPRAY_MDCA, BRUTE, UNFAMILIAR_SIGNIN, INFREQUENT_COUNTRY),
    ),
    Story(
        "malware_download",
        2.4,
        "Malware downloaded from a malicious link on one endpoint",
        "{user} opened a malicious link; '{family}' was dropped on {device} and contacted "
        "{domain}.",
        (
            URL_CLICK,
            MALWARE_FOUND,
            ACTIVE_MALWARE,
            INJECTION,
            C2_CONNECTION,
            PERSISTENCE,
            SCHED_TASK,
        ),
    ),
    Story(
        "attachment",
        1.2,
        "Malicious email attachment opened on one endpoint",
        "A weaponised attachment reached {user} and ran on {device}.",
        (ATTACHMENT, REPORTED_PHISH, MALWARE_FOUND, PERSISTENCE, C2_CONNECTION),
    ),
    Story(
        "powershell",
        1.6,
        "Suspicious PowerShell activity on one endpoint",
        "Encoded PowerShell on {device} downloaded a payload and established persistence.",
        (PS_COMMAND, PS_DOWNLOAD, PERSISTENCE, SCHED_TASK, C2_CONNECTION, HACKTOOL),
    ),
    Story(
        "cloud_exfil",
        1.3,
        "Data exfiltration from cloud apps involving one user",
        "{user} downloaded an unusual amount of data from {app} through {ip}.",
        (ANON_IP, MASS_DOWNLOAD, UNSANCTIONED, RANSOM_CLOUD),
    ),
    Story(
        "identity",
        1.5,
        "Multi-stage incident involving Credential access & Discovery",
        "Directory reconnaissance from {device} was followed by Kerberoasting and a DCSync "
        "against {dc}.",
        (RECON, GROUP_RECON, KERBEROAST, HACKTOOL, DCSYNC, GROUP_ADD, PTH),
    ),
    Story(
        "travel",
        1.6,
        "Impossible travel activity involving one user",
        "{user} signed in from {home} and {country} within minutes.",
        (IMPOSSIBLE, ATYPICAL, INFREQUENT_COUNTRY, INBOX_RULE),
    ),
    Story(
        "cloud_infra",
        0.8,
        "Suspicious multi-cloud administration involving one user",
        "{user} used stolen cloud credentials against Azure, AWS and Google Cloud.",
        (INFREQUENT_COUNTRY, CLOUD_DELETE, AWS_REGION, GCP_ACCESS),
    ),
    Story(
        "teams_phish",
        0.7,
        "Teams phishing involving one user",
        "A malicious Teams message reached {user}; the link led to a credential harvester.",
        (TEAMS_PHISH, URL_CLICK, UNFAMILIAR_SIGNIN, INBOX_RULE),
    ),
)
# Alerts that can join an open incident later: they need only the incident's user and device.
FOLLOW_UPS = (
    PS_COMMAND,
    INJECTION,
    C2_CONNECTION,
    PERSISTENCE,
    SCHED_TASK,
    LSASS,
    UNFAMILIAR_SIGNIN,
    INBOX_RULE,
    MASS_DOWNLOAD,
    INFREQUENT_COUNTRY,
    ANON_IP,
    REPORTED_PHISH,
    MALWARE_FOUND,
)
# Process command lines by MITRE technique: (image, folder, command line, parent image).
# {payload} is the story's malicious file, {acct} the user, {host2} the lateral target.
SYSTEM32 = "C:\\Windows\\System32"
POWERSHELL = ("powershell.exe", SYSTEM32 + "\\WindowsPowerShell\\v1.0")
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "T1059.001": (*POWERSHELL, "powershell.exe -nop -w hidden -ep bypass -enc {b64}", "cmd.exe"),
    "T1003.001": (
        "rundll32.exe",
        SYSTEM32,
        "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 724 "
        "C:\\Windows\\Temp\\lsass.dmp full",
        "cmd.exe",
    ),
    "T1490": ("vssadmin.exe", SYSTEM32, "vssadmin.exe delete shadows /all /quiet", "cmd.exe"),
    "T1486": (
        "{payload_name}",
        "{payload_dir}",
        "{payload_name} -path C:\\ -spread",
        "explorer.exe",
    ),
    "T1562.001": (
        *POWERSHELL,
        "powershell.exe Set-MpPreference -DisableRealtimeMonitoring $true",
        "cmd.exe",
    ),
    "T1547.001": (
        "reg.exe",
        SYSTEM32,
        "reg.exe add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v OneDriveUpdate "
        '/t REG_SZ /d "{payload}" /f',
        "cmd.exe",
    ),
    "T1053.005": (
        "schtasks.exe",
        SYSTEM32,
        'schtasks.exe /create /sc minute /mo 30 /tn "\\Microsoft\\EdgeUpdateCore" /tr "{payload}"',
        "cmd.exe",
    ),
    "T1021.002": (
        "psexec.exe",
        "C:\\Windows\\Temp",
        "psexec.exe \\\\{host2} -s -d cmd.exe /c {payload}",
        "cmd.exe",
    ),
    "T1047": (
        "wmic.exe",
        SYSTEM32 + "\\wbem",
        'wmic.exe /node:{host2} process call create "cmd.exe /c {payload}"',
        "powershell.exe",
    ),
    "T1055": (
        "rundll32.exe",
        SYSTEM32,
        "rundll32.exe {payload},DllRegisterServer",
        "{payload_name}",
    ),
    "T1071.001": ("{payload_name}", "{payload_dir}", '"{payload}"', "rundll32.exe"),
    "T1204.002": ("{payload_name}", "{payload_dir}", '"{payload}"', "explorer.exe"),
    "T1204.001": (
        "msedge.exe",
        "C:\\Program Files (x86)\\Microsoft\\Edge\\Application",
        '"msedge.exe" --single-argument {url}',
        "explorer.exe",
    ),
    "T1566.002": (
        "OUTLOOK.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16",
        '"OUTLOOK.EXE"',
        "explorer.exe",
    ),
    "T1003": (
        "{payload_name}",
        "{payload_dir}",
        "{payload_name} privilege::debug sekurlsa::logonpasswords exit",
        "cmd.exe",
    ),
}
DEFAULT_COMMAND = (
    "cmd.exe",
    SYSTEM32,
    'cmd.exe /c whoami /all & net group "Domain Admins" /domain',
    "explorer.exe",
)
