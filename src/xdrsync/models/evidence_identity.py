"""Identity evidence: users, groups, domains, applications, service principals, sessions."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from xdrsync.models.complex import Stream, UserAccount
from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_endpoint import DeviceEvidence
from xdrsync.models.evidence_enums import AiAgentPlatform, ServicePrincipalType
from xdrsync.models.identity import (
    EntityKey,
    folded,
    join,
    make_key,
    norm_dns,
    norm_guid,
    norm_sid,
    text,
)


def user_identity(account: UserAccount | None) -> str | None:
    """Entra object id, else SID, else UPN, else `domain\\account` (all case-folded)."""
    if account is None:
        return None
    return (
        norm_guid(account.azure_ad_user_id)
        or norm_sid(account.user_sid)
        or folded(account.user_principal_name)
        or folded(account.down_level_name if account.domain_name else None)
    )


def user_label(account: UserAccount | None) -> str | None:
    if account is None:
        return None
    return (
        text(account.user_principal_name)
        or text(account.down_level_name)
        or text(account.display_name)
        or text(account.user_sid)
    )


class UserEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "userEvidence"

    stream: Stream | None = None
    user_account: UserAccount | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("user", user_identity(self.user_account))

    def _label(self) -> str | None:
        return user_label(self.user_account)


class SecurityGroupEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "securityGroupEvidence"

    active_directory_object_guid: str | None = None
    display_name_: str | None = None
    distinguished_name: str | None = None
    friendly_name: str | None = None
    security_group_id: str | None = None
    sid: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key(
            "securityGroup",
            norm_guid(self.security_group_id)
            or norm_sid(self.sid)
            or norm_guid(self.active_directory_object_guid),
        )

    def _label(self) -> str | None:
        return text(self.friendly_name) or text(self.display_name_) or text(self.distinguished_name)


class ActiveDirectoryDomainEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "activeDirectoryDomainEvidence"

    active_directory_domain_name: str | None = None
    trusted_domains: tuple[ActiveDirectoryDomainEvidence, ...] = ()

    def entity_key(self) -> EntityKey | None:
        return make_key("activeDirectoryDomain", norm_dns(self.active_directory_domain_name))

    def _label(self) -> str | None:
        return text(self.active_directory_domain_name)


class ServicePrincipalEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "servicePrincipalEvidence"

    app_id: str | None = None
    app_owner_tenant_id: str | None = None
    service_principal_name: str | None = None
    service_principal_object_id: str | None = None
    service_principal_type: ServicePrincipalType | None = None
    tenant_id: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key(
            "servicePrincipal",
            norm_guid(self.service_principal_object_id) or norm_guid(self.app_id),
        )

    def _label(self) -> str | None:
        return text(self.service_principal_name) or text(self.app_id)


class OauthApplicationEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "oauthApplicationEvidence"

    app_id: str | None = None
    display_name_: str | None = None
    object_id: str | None = None
    publisher: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("oauthApplication", norm_guid(self.app_id) or norm_guid(self.object_id))

    def _label(self) -> str | None:
        return text(self.display_name_) or text(self.app_id)


class CloudApplicationEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "cloudApplicationEvidence"

    app_id: int | None = None
    display_name_: str | None = None
    instance_id: int | None = None
    instance_name: str | None = None
    saas_app_id: int | None = None
    stream: Stream | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("cloudApplication", None if self.app_id is None else str(self.app_id))

    def _label(self) -> str | None:
        return text(self.display_name_) or text(self.instance_name)


class CloudLogonSessionEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "cloudLogonSessionEvidence"

    account: UserEvidence | None = None
    browser: str | None = None
    device_name: str | None = None
    operating_system: str | None = None
    previous_logon_date_time: datetime | None = None
    protocol: str | None = None
    session_id: str | None = None
    start_utc_date_time: datetime | None = None
    user_agent: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("cloudLogonSession", text(self.session_id))

    def _label(self) -> str | None:
        user = self.account._label() if self.account else None
        device = text(self.device_name)
        if user and device:
            return f"{user} on {device}"
        return user or text(self.session_id)


class CloudLogonRequestEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "cloudLogonRequestEvidence"

    request_id: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("cloudLogonRequest", text(self.request_id))


class HostLogonSessionEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "hostLogonSessionEvidence"

    account: UserEvidence | None = None
    end_utc_date_time: datetime | None = None
    host: DeviceEvidence | None = None
    session_id: str | None = None
    start_utc_date_time: datetime | None = None

    def entity_key(self) -> EntityKey | None:
        # Logon session ids (e.g. 0x3e7) are only unique on one host.
        host = self.host.entity_key() if self.host else None
        return make_key(
            "hostLogonSession", join(host.value if host else None, text(self.session_id))
        )

    def _label(self) -> str | None:
        user = self.account._label() if self.account else None
        host = self.host._label() if self.host else None
        if user and host:
            return f"{user} on {host}"
        return user or text(self.session_id)


class AiAgentEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "aiAgentEvidence"

    agent_id: str | None = None
    agent_name: str | None = None
    hosting_platform_type: AiAgentPlatform | None = None
    instructions: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("aiAgent", folded(self.agent_id))

    def _label(self) -> str | None:
        return text(self.agent_name) or text(self.agent_id)


class GitHubOrganizationEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "gitHubOrganizationEvidence"

    company: str | None = None
    display_name_: str | None = None
    email: str | None = None
    login: str | None = None
    org_id: str | None = None
    web_url: str | None = None

    def entity_key(self) -> EntityKey | None:
        # GitHub logins are case-insensitive; ids are numbers.
        return make_key("gitHubOrganization", text(self.org_id) or folded(self.login))

    def _label(self) -> str | None:
        return text(self.login) or text(self.display_name_)


class GitHubRepoEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "gitHubRepoEvidence"

    base_url: str | None = None
    login: str | None = None
    owner: str | None = None
    owner_type: str | None = None
    repo_id: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key(
            "gitHubRepo", text(self.repo_id) or join(folded(self.owner), folded(self.login))
        )

    def _label(self) -> str | None:
        return join(text(self.owner), text(self.login)) or text(self.login)


class GitHubUserEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "gitHubUserEvidence"

    email: str | None = None
    login: str | None = None
    name: str | None = None
    user_id: str | None = None
    web_url: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("gitHubUser", text(self.user_id) or folded(self.login))

    def _label(self) -> str | None:
        return text(self.login) or text(self.name)


__all__ = [
    "ActiveDirectoryDomainEvidence",
    "AiAgentEvidence",
    "CloudApplicationEvidence",
    "CloudLogonRequestEvidence",
    "CloudLogonSessionEvidence",
    "GitHubOrganizationEvidence",
    "GitHubRepoEvidence",
    "GitHubUserEvidence",
    "HostLogonSessionEvidence",
    "OauthApplicationEvidence",
    "SecurityGroupEvidence",
    "ServicePrincipalEvidence",
    "UserEvidence",
    "user_identity",
    "user_label",
]
