"""Email and collaboration evidence: mailboxes, messages, clusters, submissions, Teams."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

from xdrsync.models.complex import EmailSender, UserAccount
from xdrsync.models.evidence import ODATA_PREFIX, Evidence
from xdrsync.models.evidence_endpoint import FileEvidence
from xdrsync.models.evidence_enums import (
    AntispamTeamsDirection,
    MailboxConfigurationType,
    TeamsDeliveryLocation,
    TeamsMessageDeliveryAction,
)
from xdrsync.models.evidence_network import UrlEvidence
from xdrsync.models.identity import EntityKey, folded, make_key, norm_guid, text


class MailboxEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "mailboxEvidence"

    display_name_: str | None = None
    primary_address: str | None = None
    upn: str | None = None
    user_account: UserAccount | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("mailbox", folded(self.primary_address) or folded(self.upn))

    def _label(self) -> str | None:
        return text(self.primary_address) or text(self.upn) or text(self.display_name_)


class MailboxConfigurationEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "mailboxConfigurationEvidence"

    configuration_id: str | None = None
    configuration_type: MailboxConfigurationType | None = None
    display_name_: str | None = None
    external_directory_object_id: str | None = None
    mailbox_primary_address: str | None = None
    upn: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("mailboxConfiguration", text(self.configuration_id))

    def _label(self) -> str | None:
        mailbox = text(self.mailbox_primary_address) or text(self.upn)
        if self.configuration_type and mailbox:
            return f"{self.configuration_type} on {mailbox}"
        return text(self.display_name_) or mailbox


class AnalyzedMessageEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "analyzedMessageEvidence"

    anti_spam_direction: str | None = None
    attachments_count: int | None = None
    delivery_action: str | None = None
    delivery_location: str | None = None
    internet_message_id: str | None = None
    language: str | None = None
    network_message_id: str | None = None
    p1_sender: EmailSender | None = None
    p2_sender: EmailSender | None = None
    received_date_time: datetime | None = None
    recipient_email_address: str | None = None
    sender_ip: str | None = None
    subject: str | None = None
    threat_detection_methods: tuple[str, ...] = ()
    threats: tuple[str, ...] = ()
    url_count: int | None = None
    urls: tuple[str, ...] = ()
    urn: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("analyzedMessage", norm_guid(self.network_message_id))

    def _label(self) -> str | None:
        return text(self.subject) or text(self.internet_message_id)


class MailClusterEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "mailClusterEvidence"

    cluster_by: str | None = None
    cluster_by_value: str | None = None
    email_count: int | None = None
    network_message_ids: tuple[str, ...] = ()
    query: str | None = None
    urn: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("mailCluster", text(self.query) or text(self.urn))

    def _label(self) -> str | None:
        by, value = text(self.cluster_by), text(self.cluster_by_value)
        if by and value:
            return f"{by}: {value}"
        return value or text(self.query)


class SubmissionMailEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "submissionMailEvidence"

    network_message_id: str | None = None
    recipient: str | None = None
    report_type: str | None = None
    sender: str | None = None
    sender_ip: str | None = None
    subject: str | None = None
    submission_date_time: datetime | None = None
    submission_id: str | None = None
    submitter: str | None = None

    def entity_key(self) -> EntityKey | None:
        return make_key("submissionMail", folded(self.submission_id))

    def _label(self) -> str | None:
        return text(self.subject) or text(self.submission_id)


class TeamsMessageEvidence(Evidence):
    ODATA_TYPE: ClassVar[str | None] = ODATA_PREFIX + "teamsMessageEvidence"
    GRAPH_KEYS: ClassVar[Mapping[str, str]] = {"sender_ip": "senderIP"}

    campaign_id: str | None = None
    channel_id: str | None = None
    delivery_action: TeamsMessageDeliveryAction | None = None
    delivery_location: TeamsDeliveryLocation | None = None
    files: tuple[FileEvidence, ...] = ()
    group_id: str | None = None
    is_external: bool | None = None
    is_owned: bool | None = None
    last_modified_date_time: datetime | None = None
    message_direction: AntispamTeamsDirection | None = None
    message_id: str | None = None
    owning_tenant_id: str | None = None
    parent_message_id: str | None = None
    received_date_time: datetime | None = None
    recipients: tuple[str, ...] = ()
    sender_from_address: str | None = None
    sender_ip: str | None = None
    source_app_name: str | None = None
    source_id: str | None = None
    subject: str | None = None
    suspicious_recipients: tuple[str, ...] = ()
    thread_id: str | None = None
    thread_type: str | None = None
    urls: tuple[UrlEvidence, ...] = ()

    def entity_key(self) -> EntityKey | None:
        return make_key("teamsMessage", text(self.message_id))

    def _label(self) -> str | None:
        return text(self.subject) or text(self.message_id)


__all__ = [
    "AnalyzedMessageEvidence",
    "MailClusterEvidence",
    "MailboxConfigurationEvidence",
    "MailboxEvidence",
    "SubmissionMailEvidence",
    "TeamsMessageEvidence",
]
