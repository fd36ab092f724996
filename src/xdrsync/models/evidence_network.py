"""Network evidence: IP addresses, URLs, DNS, connections, NICs and IoT devices."""

from __future__ import annotations

from typing import ClassVar

from xdrsync.models.complex import GeoLocation, Stream
from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_cloud import AzureResourceEvidence
from xdrsync.models.evidence_enums import ProtocolType
from xdrsync.models.identity import (
    EntityKey,
    folded,
    make_key,
    norm_dns,
    norm_ip,
    norm_mac,
    norm_url,
    text,
)


class IpEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "ipEvidence"

    country_letter_code: str | None = None
    ip_address: str | None = None
    location: GeoLocation | None = None
    stream: Stream | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("ip", norm_ip(self.ip_address))

    def _label(self) -> str | None:
        return text(self.ip_address)


class UrlEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "urlEvidence"

    url: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("url", norm_url(self.url))

    def _label(self) -> str | None:
        return text(self.url)


class DnsEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "dnsEvidence"

    dns_server_ip: IpEvidence | None = None
    domain_name: str | None = None
    host_ip_address: IpEvidence | None = None
    ip_addresses: tuple[IpEvidence, ...] = ()

    def entity_key(self) -> EntityKey | None:
        return make_key("dns", norm_dns(self.domain_name))

    def _label(self) -> str | None:
        return text(self.domain_name)


def _address(evidence: IpEvidence | None) -> str | None:
    return norm_ip(evidence.ip_address) if evidence is not None else None


class NetworkConnectionEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "networkConnectionEvidence"

    destination_address: IpEvidence | None = None
    destination_port: int | None = None
    protocol: ProtocolType | None = None
    source_address: IpEvidence | None = None
    source_port: int | None = None

    def entity_key(self) -> EntityKey | None:
        source, destination = _address(self.source_address), _address(self.destination_address)
        if source is None or destination is None:
            return None
        ports = ("" if p is None else str(p) for p in (self.source_port, self.destination_port))
        source_port, destination_port = ports
        protocol = self.protocol or ""
        return EntityKey(
            "networkConnection",
            f"{protocol}:{source}:{source_port}->{destination}:{destination_port}",
        )

    def _label(self) -> str | None:
        source, destination = _address(self.source_address), _address(self.destination_address)
        if source is None and destination is None:
            return None
        left = f"{source or '?'}:{self.source_port}" if self.source_port else source or "?"
        right = (
            f"{destination or '?'}:{self.destination_port}"
            if self.destination_port
            else destination or "?"
        )
        return f"{left} → {right}"


class NicEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "nicEvidence"

    ip_address: IpEvidence | None = None
    mac_address: str | None = None
    vlans: tuple[str, ...] = ()

    def entity_key(self) -> EntityKey | None:
        mac = norm_mac(self.mac_address)
        if mac:
            return EntityKey("nic", mac)
        return make_key("ip", _address(self.ip_address))

    def _label(self) -> str | None:
        return text(self.mac_address) or (self.ip_address._label() if self.ip_address else None)


class IoTDeviceEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "ioTDeviceEvidence"

    device_id: str | None = None
    device_name: str | None = None
    device_sub_type: str | None = None
    device_type: str | None = None
    io_t_hub: AzureResourceEvidence | None = None
    ip_address: IpEvidence | None = None
    mac_address: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    nics: tuple[NicEvidence, ...] = ()
    operating_system: str | None = None
    serial_number: str | None = None
    site: str | None = None
    source: str | None = None
    zone: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("ioTDevice", folded(self.device_id) or norm_mac(self.mac_address))

    def _label(self) -> str | None:
        return text(self.device_name) or text(self.device_id)


__all__ = [
    "DnsEvidence",
    "IoTDeviceEvidence",
    "IpEvidence",
    "NetworkConnectionEvidence",
    "NicEvidence",
    "UrlEvidence",
]
