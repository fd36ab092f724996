"""Graph complex types nested inside evidence (userAccount, fileDetails, vmMetadata, ...)."""

from __future__ import annotations

from datetime import datetime

from xdrsync.models.base import GraphModel
from xdrsync.models.evidence_enums import FileHashAlgorithm, VmCloudProvider


class ResourceAccessEvent(GraphModel):
    access_date_time: datetime | None = None
    account_id: str | None = None
    ip_address: str | None = None
    resource_identifier: str | None = None


class UserAccount(GraphModel):
    account_name: str | None = None
    active_directory_object_guid: str | None = None
    azure_ad_user_id: str | None = None
    display_name: str | None = None
    domain_name: str | None = None
    resource_access_events: tuple[ResourceAccessEvent, ...] = ()
    tenant_id: str | None = None
    user_principal_name: str | None = None
    user_sid: str | None = None

    @property
    def down_level_name(self) -> str | None:
        """`DOMAIN\\account` when both parts are known, else the account name."""
        if self.domain_name and self.account_name:
            return f"{self.domain_name}\\{self.account_name}"
        return self.account_name or None


class FileDetails(GraphModel):
    file_name: str | None = None
    file_path: str | None = None
    file_publisher: str | None = None
    file_size: int | None = None
    issuer: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    sha256_ac: str | None = None
    signer: str | None = None

    @property
    def full_path(self) -> str | None:
        """Directory and name joined with the directory's own separator."""
        if not self.file_name:
            return self.file_path or None
        if not self.file_path:
            return self.file_name
        sep = "\\" if "\\" in self.file_path or ":" in self.file_path[:3] else "/"
        return self.file_path.rstrip("\\/") + sep + self.file_name


class LoggedOnUser(GraphModel):
    account_name: str | None = None
    domain_name: str | None = None


class VmMetadata(GraphModel):
    cloud_provider: VmCloudProvider | None = None
    resource_id: str | None = None
    subscription_id: str | None = None
    vm_id: str | None = None


class GeoLocation(GraphModel):
    city: str | None = None
    country_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    state: str | None = None


class EmailSender(GraphModel):
    display_name: str | None = None
    domain_name: str | None = None
    email_address: str | None = None


class Stream(GraphModel):
    name: str | None = None


class FileHash(GraphModel):
    algorithm: FileHashAlgorithm | None = None
    value: str | None = None


__all__ = [
    "EmailSender",
    "FileDetails",
    "FileHash",
    "GeoLocation",
    "LoggedOnUser",
    "ResourceAccessEvent",
    "Stream",
    "UserAccount",
    "VmMetadata",
]
