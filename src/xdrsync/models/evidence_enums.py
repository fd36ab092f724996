"""Enumerations used by alert evidence (reference §2.6 and the generated v1.0 SDK)."""

from __future__ import annotations

from xdrsync.models.openenum import OpenEnum, member


class EvidenceVerdict(OpenEnum):
    UNKNOWN = member("unknown")
    SUSPICIOUS = member("suspicious")
    MALICIOUS = member("malicious")
    NO_THREATS_FOUND = member("noThreatsFound")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class EvidenceRemediationStatus(OpenEnum):
    NONE = member("none")
    REMEDIATED = member("remediated")
    PREVENTED = member("prevented")
    BLOCKED = member("blocked")
    NOT_FOUND = member("notFound")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")
    ACTIVE = member("active")
    PENDING_APPROVAL = member("pendingApproval")
    DECLINED = member("declined")
    UNREMEDIATED = member("unremediated")
    RUNNING = member("running")
    PARTIALLY_REMEDIATED = member("partiallyRemediated")


class EvidenceRole(OpenEnum):
    UNKNOWN = member("unknown")
    CONTEXTUAL = member("contextual")
    SCANNED = member("scanned")
    SOURCE = member("source")
    DESTINATION = member("destination")
    CREATED = member("created")
    ADDED = member("added")
    COMPROMISED = member("compromised")
    EDITED = member("edited")
    ATTACKED = member("attacked")
    ATTACKER = member("attacker")
    COMMAND_AND_CONTROL = member("commandAndControl")
    LOADED = member("loaded")
    SUSPICIOUS = member("suspicious")
    POLICY_VIOLATOR = member("policyViolator")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class DefenderAvStatus(OpenEnum):
    NOT_REPORTING = member("notReporting")
    DISABLED = member("disabled")
    NOT_UPDATED = member("notUpdated")
    UPDATED = member("updated")
    UNKNOWN = member("unknown")
    NOT_SUPPORTED = member("notSupported")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class DeviceHealthStatus(OpenEnum):
    ACTIVE = member("active")
    INACTIVE = member("inactive")
    IMPAIRED_COMMUNICATION = member("impairedCommunication")
    NO_SENSOR_DATA = member("noSensorData")
    NO_SENSOR_DATA_IMPAIRED_COMMUNICATION = member("noSensorDataImpairedCommunication")
    UNKNOWN = member("unknown")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class OnboardingStatus(OpenEnum):
    INSUFFICIENT_INFO = member("insufficientInfo")
    ONBOARDED = member("onboarded")
    CAN_BE_ONBOARDED = member("canBeOnboarded")
    UNSUPPORTED = member("unsupported")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class DeviceRiskScore(OpenEnum):
    NONE = member("none")
    INFORMATIONAL = member("informational")
    LOW = member("low")
    MEDIUM = member("medium")
    HIGH = member("high")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class VmCloudProvider(OpenEnum):
    UNKNOWN = member("unknown")
    AZURE = member("azure")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class DetectionStatus(OpenEnum):
    DETECTED = member("detected")
    BLOCKED = member("blocked")
    PREVENTED = member("prevented")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class FileHashAlgorithm(OpenEnum):
    UNKNOWN = member("unknown")
    MD5 = member("md5")
    SHA1 = member("sha1")
    SHA256 = member("sha256")
    SHA256AC = member("sha256ac")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class ProtocolType(OpenEnum):
    TCP = member("tcp")
    UDP = member("udp")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class ServicePrincipalType(OpenEnum):
    UNKNOWN = member("unknown")
    APPLICATION = member("application")
    MANAGED_IDENTITY = member("managedIdentity")
    LEGACY = member("legacy")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class MailboxConfigurationType(OpenEnum):
    MAIL_FORWARDING_RULE = member("mailForwardingRule")
    OWA_SETTINGS = member("owaSettings")
    EWS_SETTINGS = member("ewsSettings")
    MAIL_DELEGATION = member("mailDelegation")
    USER_INBOX_RULE = member("userInboxRule")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class TeamsMessageDeliveryAction(OpenEnum):
    UNKNOWN = member("unknown")
    DELIVERED_AS_SPAM = member("deliveredAsSpam")
    DELIVERED = member("delivered")
    BLOCKED = member("blocked")
    REPLACED = member("replaced")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class TeamsDeliveryLocation(OpenEnum):
    UNKNOWN = member("unknown")
    TEAMS = member("teams")
    QUARANTINE = member("quarantine")
    FAILED = member("failed")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class AntispamTeamsDirection(OpenEnum):
    UNKNOWN = member("unknown")
    INBOUND = member("inbound")
    OUTBOUND = member("outbound")
    INTRAORG = member("intraorg")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class GoogleCloudLocationType(OpenEnum):
    UNKNOWN = member("unknown")
    REGIONAL = member("regional")
    ZONAL = member("zonal")
    GLOBAL = member("global")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class KubernetesPlatform(OpenEnum):
    UNKNOWN = member("unknown")
    AKS = member("aks")
    EKS = member("eks")
    GKE = member("gke")
    ARC = member("arc")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class AiAgentPlatform(OpenEnum):
    UNKNOWN = member("unknown")
    AZURE_AI_FOUNDRY = member("azureAIFoundry")
    COPILOT_STUDIO = member("copilotStudio")
    COPILOT = member("copilot")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


__all__ = [
    "AiAgentPlatform",
    "AntispamTeamsDirection",
    "DefenderAvStatus",
    "DetectionStatus",
    "DeviceHealthStatus",
    "DeviceRiskScore",
    "EvidenceRemediationStatus",
    "EvidenceRole",
    "EvidenceVerdict",
    "FileHashAlgorithm",
    "GoogleCloudLocationType",
    "KubernetesPlatform",
    "MailboxConfigurationType",
    "OnboardingStatus",
    "ProtocolType",
    "ServicePrincipalType",
    "TeamsDeliveryLocation",
    "TeamsMessageDeliveryAction",
    "VmCloudProvider",
]
