"""Incident and alert enumerations of Graph security v1.0 (reference §2.3-§2.5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from xdrsync.models.openenum import OpenEnum, member


class IncidentStatus(OpenEnum):
    ACTIVE = member("active")
    RESOLVED = member("resolved")
    IN_PROGRESS = member("inProgress")
    REDIRECTED = member("redirected")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")
    AWAITING_ACTION = member("awaitingAction")


class AlertStatus(OpenEnum):
    UNKNOWN = member("unknown")
    NEW = member("new")
    IN_PROGRESS = member("inProgress")
    RESOLVED = member("resolved")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class Severity(OpenEnum):
    # The legacy Defender API spells "no severity" UnSpecified.
    ALIASES: ClassVar[Mapping[str, str]] = {"unspecified": "unknown"}

    UNKNOWN = member("unknown")
    INFORMATIONAL = member("informational")
    LOW = member("low")
    MEDIUM = member("medium")
    HIGH = member("high")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class Classification(OpenEnum):
    UNKNOWN = member("unknown")
    FALSE_POSITIVE = member("falsePositive")
    TRUE_POSITIVE = member("truePositive")
    INFORMATIONAL_EXPECTED_ACTIVITY = member("informationalExpectedActivity")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class Determination(OpenEnum):
    """alertDetermination. The canonical names are the generated SDK's (the wire truth);
    the incident resource page, older update pages and the legacy API use other names for
    four of them, which parse to the same member (reference §2.3)."""

    ALIASES: ClassVar[Mapping[str, str]] = {
        "compromisedUser": "compromisedAccount",
        "clean": "notMalicious",
        "insufficientData": "notEnoughDataToValidate",
        "noEnoughDataToValidate": "notEnoughDataToValidate",
        "confirmedUserActivity": "confirmedActivity",
    }

    UNKNOWN = member("unknown")
    APT = member("apt")
    MALWARE = member("malware")
    SECURITY_PERSONNEL = member("securityPersonnel")
    SECURITY_TESTING = member("securityTesting")
    UNWANTED_SOFTWARE = member("unwantedSoftware")
    OTHER = member("other")
    MULTI_STAGED_ATTACK = member("multiStagedAttack")
    COMPROMISED_ACCOUNT = member("compromisedAccount")
    PHISHING = member("phishing")
    MALICIOUS_USER_ACTIVITY = member("maliciousUserActivity")
    NOT_MALICIOUS = member("notMalicious")
    NOT_ENOUGH_DATA_TO_VALIDATE = member("notEnoughDataToValidate")
    CONFIRMED_ACTIVITY = member("confirmedActivity")
    LINE_OF_BUSINESS_APPLICATION = member("lineOfBusinessApplication")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


class ServiceSource(OpenEnum):
    UNKNOWN = member("unknown")
    MICROSOFT_DEFENDER_FOR_ENDPOINT = member("microsoftDefenderForEndpoint")
    MICROSOFT_DEFENDER_FOR_IDENTITY = member("microsoftDefenderForIdentity")
    MICROSOFT_DEFENDER_FOR_CLOUD_APPS = member("microsoftDefenderForCloudApps")
    MICROSOFT_DEFENDER_FOR_OFFICE365 = member("microsoftDefenderForOffice365")
    MICROSOFT365_DEFENDER = member("microsoft365Defender")
    AZURE_AD_IDENTITY_PROTECTION = member("azureAdIdentityProtection")
    MICROSOFT_APP_GOVERNANCE = member("microsoftAppGovernance")
    DATA_LOSS_PREVENTION = member("dataLossPrevention")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")
    MICROSOFT_DEFENDER_FOR_CLOUD = member("microsoftDefenderForCloud")
    MICROSOFT_SENTINEL = member("microsoftSentinel")
    MICROSOFT_INSIDER_RISK_MANAGEMENT = member("microsoftInsiderRiskManagement")
    MICROSOFT_THREAT_INTELLIGENCE = member("microsoftThreatIntelligence")
    MICROSOFT_SECURITY_FOR_AI = member("microsoftSecurityForAI")


class DetectionSource(OpenEnum):
    UNKNOWN = member("unknown")
    MICROSOFT_DEFENDER_FOR_ENDPOINT = member("microsoftDefenderForEndpoint")
    ANTIVIRUS = member("antivirus")
    SMART_SCREEN = member("smartScreen")
    CUSTOM_TI = member("customTi")
    MICROSOFT_DEFENDER_FOR_OFFICE365 = member("microsoftDefenderForOffice365")
    AUTOMATED_INVESTIGATION = member("automatedInvestigation")
    MICROSOFT_THREAT_EXPERTS = member("microsoftThreatExperts")
    CUSTOM_DETECTION = member("customDetection")
    MICROSOFT_DEFENDER_FOR_IDENTITY = member("microsoftDefenderForIdentity")
    CLOUD_APP_SECURITY = member("cloudAppSecurity")
    MICROSOFT365_DEFENDER = member("microsoft365Defender")
    AZURE_AD_IDENTITY_PROTECTION = member("azureAdIdentityProtection")
    MANUAL = member("manual")
    MICROSOFT_DATA_LOSS_PREVENTION = member("microsoftDataLossPrevention")
    APP_GOVERNANCE_POLICY = member("appGovernancePolicy")
    APP_GOVERNANCE_DETECTION = member("appGovernanceDetection")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")
    MICROSOFT_DEFENDER_FOR_CLOUD = member("microsoftDefenderForCloud")
    MICROSOFT_DEFENDER_FOR_IOT = member("microsoftDefenderForIoT")
    MICROSOFT_DEFENDER_FOR_SERVERS = member("microsoftDefenderForServers")
    MICROSOFT_DEFENDER_FOR_STORAGE = member("microsoftDefenderForStorage")
    MICROSOFT_DEFENDER_FOR_DNS = member("microsoftDefenderForDNS")
    MICROSOFT_DEFENDER_FOR_DATABASES = member("microsoftDefenderForDatabases")
    MICROSOFT_DEFENDER_FOR_CONTAINERS = member("microsoftDefenderForContainers")
    MICROSOFT_DEFENDER_FOR_NETWORK = member("microsoftDefenderForNetwork")
    MICROSOFT_DEFENDER_FOR_APP_SERVICE = member("microsoftDefenderForAppService")
    MICROSOFT_DEFENDER_FOR_KEY_VAULT = member("microsoftDefenderForKeyVault")
    MICROSOFT_DEFENDER_FOR_RESOURCE_MANAGER = member("microsoftDefenderForResourceManager")
    MICROSOFT_DEFENDER_FOR_API_MANAGEMENT = member("microsoftDefenderForApiManagement")
    NRT_ALERTS = member("nrtAlerts")
    SCHEDULED_ALERTS = member("scheduledAlerts")
    MICROSOFT_DEFENDER_THREAT_INTELLIGENCE_ANALYTICS = member(
        "microsoftDefenderThreatIntelligenceAnalytics"
    )
    BUILT_IN_ML = member("builtInMl")
    MICROSOFT_INSIDER_RISK_MANAGEMENT = member("microsoftInsiderRiskManagement")
    MICROSOFT_THREAT_INTELLIGENCE = member("microsoftThreatIntelligence")
    MICROSOFT_DEFENDER_FOR_AI_SERVICES = member("microsoftDefenderForAIServices")
    SECURITY_COPILOT = member("securityCopilot")
    MICROSOFT_SENTINEL = member("microsoftSentinel")


class InvestigationState(OpenEnum):
    UNKNOWN = member("unknown")
    TERMINATED = member("terminated")
    SUCCESSFULLY_REMEDIATED = member("successfullyRemediated")
    BENIGN = member("benign")
    FAILED = member("failed")
    PARTIALLY_REMEDIATED = member("partiallyRemediated")
    RUNNING = member("running")
    PENDING_APPROVAL = member("pendingApproval")
    PENDING_RESOURCE = member("pendingResource")
    QUEUED = member("queued")
    INNER_FAILURE = member("innerFailure")
    PREEXISTING_ALERT = member("preexistingAlert")
    UNSUPPORTED_OS = member("unsupportedOs")
    UNSUPPORTED_ALERT_TYPE = member("unsupportedAlertType")
    SUPPRESSED_ALERT = member("suppressedAlert")
    PARTIALLY_INVESTIGATED = member("partiallyInvestigated")
    TERMINATED_BY_USER = member("terminatedByUser")
    TERMINATED_BY_SYSTEM = member("terminatedBySystem")
    UNKNOWN_FUTURE_VALUE = member("unknownFutureValue")


__all__ = [
    "AlertStatus",
    "Classification",
    "DetectionSource",
    "Determination",
    "IncidentStatus",
    "InvestigationState",
    "ServiceSource",
    "Severity",
]
