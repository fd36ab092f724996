"""Endpoint evidence: devices, files, hashes, processes, registry, malware."""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from xdrsync.models.complex import (
    FileDetails,
    LoggedOnUser,
    ResourceAccessEvent,
    UserAccount,
    VmMetadata,
)
from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_enums import (
    DefenderAvStatus,
    DetectionStatus,
    DeviceHealthStatus,
    DeviceRiskScore,
    FileHashAlgorithm,
    OnboardingStatus,
)
from xdrsync.models.identity import (
    EntityKey,
    folded,
    instant,
    join,
    make_key,
    norm_dns,
    norm_guid,
    text,
)

_WINDOWS_PATH = re.compile(r"^[A-Za-z]:|\\")


def file_identity(details: FileDetails | None) -> str | None:
    """`sha256:<hex>`, else sha1, else md5, else `path:<full path>` (Windows paths folded)."""
    if details is None:
        return None
    for algorithm, digest in (
        ("sha256", details.sha256),
        ("sha1", details.sha1),
        ("md5", details.md5),
    ):
        value = folded(digest)
        if value:
            return f"{algorithm}:{value}"
    path = text(details.full_path)
    if path is None:
        return None
    return f"path:{path.lower() if _WINDOWS_PATH.search(path) else path}"


class DeviceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "deviceEvidence"

    azure_ad_device_id: str | None = None
    defender_av_status: DefenderAvStatus | None = None
    device_dns_name: str | None = None
    dns_domain: str | None = None
    first_seen_date_time: datetime | None = None
    health_status: DeviceHealthStatus | None = None
    host_name: str | None = None
    ip_interfaces: tuple[str, ...] = ()
    last_external_ip_address: str | None = None
    last_ip_address: str | None = None
    logged_on_users: tuple[LoggedOnUser, ...] = ()
    mde_device_id: str | None = None
    nt_domain: str | None = None
    onboarding_status: OnboardingStatus | None = None
    os_build: int | None = None
    os_platform: str | None = None
    rbac_group_id: int | None = None
    rbac_group_name: str | None = None
    resource_access_events: tuple[ResourceAccessEvent, ...] = ()
    risk_score: DeviceRiskScore | None = None
    version: str | None = None
    vm_metadata: VmMetadata | None = None

    def entity_key(self) -> EntityKey | None:
        fqdn = join(text(self.host_name), text(self.dns_domain), sep=".")
        return make_key(
            "device",
            folded(self.mde_device_id)
            or norm_guid(self.azure_ad_device_id)
            or norm_dns(self.device_dns_name)
            or norm_dns(fqdn or self.host_name),
        )

    def _label(self) -> str | None:
        return text(self.host_name) or text(self.device_dns_name) or text(self.mde_device_id)


class FileEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "fileEvidence"

    detection_status: DetectionStatus | None = None
    file_details: FileDetails | None = None
    mde_device_id: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("file", file_identity(self.file_details))

    def _label(self) -> str | None:
        details = self.file_details
        if details is None:
            return None
        return text(details.file_name) or text(details.full_path) or text(details.sha256)


class FileHashEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "fileHashEvidence"

    algorithm: FileHashAlgorithm | None = None
    value: str | None = None

    def entity_key(self) -> EntityKey | None:
        # Same key as a file evidence with this hash: both describe the same file.
        digest = folded(self.value)
        if digest is None:
            return None
        return EntityKey("file", f"{self.algorithm or 'hash'}:{digest}")

    def _label(self) -> str | None:
        return text(self.value)


class ProcessEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "processEvidence"

    detection_status: DetectionStatus | None = None
    image_file: FileDetails | None = None
    mde_device_id: str | None = None
    parent_process_creation_date_time: datetime | None = None
    parent_process_id: int | None = None
    parent_process_image_file: FileDetails | None = None
    process_command_line: str | None = None
    process_creation_date_time: datetime | None = None
    process_id: int | None = None
    user_account: UserAccount | None = None

    def entity_key(self) -> EntityKey | None:
        # A process id is only unique on one device and, as ids are reused, at one start time.
        device = folded(self.mde_device_id)
        if device is None or self.process_id is None:
            return None
        created = instant(self.process_creation_date_time)
        parts = [device, str(self.process_id)] + ([created] if created else [])
        return EntityKey("process", "/".join(parts))

    def _label(self) -> str | None:
        name = text(self.image_file.file_name) if self.image_file else None
        if name:
            return f"{name} ({self.process_id})" if self.process_id is not None else name
        command = text(self.process_command_line)
        if command:
            return command[:80]
        return f"process {self.process_id}" if self.process_id is not None else None


class RegistryKeyEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "registryKeyEvidence"

    registry_hive: str | None = None
    registry_key: str | None = None

    def entity_key(self) -> EntityKey | None:
        # Registry paths are case-insensitive.
        return make_key(
            "registryKey", join(folded(self.registry_hive), folded(self.registry_key), sep="\\")
        )

    def _label(self) -> str | None:
        return join(text(self.registry_hive), text(self.registry_key), sep="\\") or text(
            self.registry_key
        )


class RegistryValueEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "registryValueEvidence"

    mde_device_id: str | None = None
    registry_hive: str | None = None
    registry_key: str | None = None
    registry_value: str | None = None
    registry_value_name: str | None = None
    registry_value_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        path = join(folded(self.registry_hive), folded(self.registry_key), sep="\\")
        if path is None:
            return None
        name = folded(self.registry_value_name)
        return EntityKey("registryValue", f"{path}\\{name}" if name else path)

    def _label(self) -> str | None:
        path = join(text(self.registry_hive), text(self.registry_key), sep="\\")
        name = text(self.registry_value_name)
        if path and name:
            return f"{path}\\{name}"
        return path or name


class MalwareEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "malwareEvidence"

    category: str | None = None
    files: tuple[FileEvidence, ...] = ()
    name: str | None = None
    processes: tuple[ProcessEvidence, ...] = ()

    def entity_key(self) -> EntityKey | None:
        name = folded(self.name)
        if name is None:
            return None
        category = folded(self.category)
        return EntityKey("malware", f"{category}:{name}" if category else name)

    def _label(self) -> str | None:
        return text(self.name)


__all__ = [
    "DeviceEvidence",
    "FileEvidence",
    "FileHashEvidence",
    "MalwareEvidence",
    "ProcessEvidence",
    "RegistryKeyEvidence",
    "RegistryValueEvidence",
    "file_identity",
]
