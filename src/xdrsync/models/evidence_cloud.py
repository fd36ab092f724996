"""Cloud resource evidence: Azure, AWS and Google resources, storage blobs and SAS tokens."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from xdrsync.models.complex import FileHash
from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_enums import GoogleCloudLocationType
from xdrsync.models.identity import EntityKey, folded, make_key, norm_url, text


def _tail(resource_id: str | None) -> str | None:
    """The last segment of an ARM id / ARN-like path: a readable resource name."""
    cleaned = text(resource_id)
    return cleaned.rstrip("/").rsplit("/", 1)[-1] if cleaned else None


class AzureResourceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "azureResourceEvidence"

    resource_id: str | None = None
    resource_name: str | None = None
    resource_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        # Azure Resource Manager ids are case-insensitive.
        return make_key("azureResource", folded(self.resource_id))

    def _label(self) -> str | None:
        return text(self.resource_name) or _tail(self.resource_id)


class AmazonResourceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "amazonResourceEvidence"

    amazon_account_id: str | None = None
    amazon_resource_id: str | None = None
    resource_name: str | None = None
    resource_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("amazonResource", text(self.amazon_resource_id))

    def _label(self) -> str | None:
        return text(self.resource_name) or _tail(self.amazon_resource_id)


class GoogleCloudResourceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "googleCloudResourceEvidence"

    full_resource_name: str | None = None
    location: str | None = None
    location_type: GoogleCloudLocationType | None = None
    project_id: str | None = None
    project_number: int | None = None
    resource_name: str | None = None
    resource_type: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("googleCloudResource", text(self.full_resource_name))

    def _label(self) -> str | None:
        return text(self.resource_name) or _tail(self.full_resource_name)


class BlobContainerEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "blobContainerEvidence"

    name: str | None = None
    storage_resource: AzureResourceEvidence | None = None
    url: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("blobContainer", norm_url(self.url))

    def _label(self) -> str | None:
        return text(self.name) or text(self.url)


class BlobEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "blobEvidence"

    blob_container: BlobContainerEvidence | None = None
    etag: str | None = None
    file_hashes: tuple[FileHash, ...] = ()
    name: str | None = None
    url: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("blob", norm_url(self.url))

    def _label(self) -> str | None:
        return text(self.name) or text(self.url)


class SasTokenEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "sasTokenEvidence"

    allowed_ip_addresses: str | None = None
    allowed_resource_types: tuple[str, ...] = ()
    allowed_services: tuple[str, ...] = ()
    expiry_date_time: datetime | None = None
    permissions: tuple[str, ...] = ()
    protocol: str | None = None
    signature_hash: str | None = None
    signed_with: str | None = None
    start_date_time: datetime | None = None
    storage_resource: AzureResourceEvidence | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("sasToken", text(self.signature_hash))

    def _label(self) -> str | None:
        storage = self.storage_resource.display_name() if self.storage_resource else None
        return f"SAS token for {storage}" if storage else None


__all__ = [
    "AmazonResourceEvidence",
    "AzureResourceEvidence",
    "BlobContainerEvidence",
    "BlobEvidence",
    "GoogleCloudResourceEvidence",
    "SasTokenEvidence",
]
