"""Sentinel-style queries over SecurityIncident, SecurityAlert, AlertInfo and AlertEvidence.

Written for this project after the constructs Microsoft's public Azure-Sentinel hunting
queries, analytics rules and workbooks use over these tables (`let` functions and windows,
`arg_max` by incident, `mv-expand` of AlertIds, Entities and tactics, `parse_json` of
ExtendedProperties, incident-alert joins, `bin` timecharts, workbook parameters filled with
sensible values). Each must run over the seeded workspace (`test_kql_corpus`).
"""

from __future__ import annotations

from typing import Final

CURRENT: Final = "SecurityIncident | summarize arg_max(TimeGenerated, *) by IncidentNumber"

CORPUS: Final[dict[str, str]] = {
    # -- incident state and triage ------------------------------------------------------------
    "open-by-severity": f"""{CURRENT}
| where Status in ("New", "Active")
| summarize OpenIncidents = count() by Severity
| sort by OpenIncidents desc""",
    "status-over-window": """let lookback = 14d;
SecurityIncident
| where TimeGenerated > ago(lookback)
| summarize arg_max(LastModifiedTime, *) by IncidentNumber
| summarize Incidents = dcount(IncidentNumber) by Status""",
    "unassigned-high": f"""{CURRENT}
| where Severity == "High" and isempty(tostring(Owner.assignedTo))
| project IncidentNumber, Title, CreatedTime""",
    "owner-workload": f"""{CURRENT}
| where Status != "Closed"
| extend Analyst = tostring(Owner.assignedTo)
| summarize Open = count() by Analyst""",
    "owner-unpacked": f"""{CURRENT}
| where Status != "Closed"
| evaluate bag_unpack(Owner)
| where isnotempty(assignedTo)
| summarize Open = count() by assignedTo""",
    "additional-data-unpacked": f"""{CURRENT}
| evaluate bag_unpack(AdditionalData)
| where alertsCount > 0
| project IncidentNumber, alertsCount, commentsCount""",
    "owner-case-name": f"""{CURRENT}
| extend owner = tostring(Owner.assignedTo)
| where isnotempty(owner)
| project IncidentNumber, owner""",
    "status-lowercase-name": f"""{CURRENT}
| extend status = tolower(Status), title = Title
| project IncidentNumber, status, title""",
    "closed-classification": f"""{CURRENT}
| where Status == "Closed"
| summarize count() by Classification, ClassificationReason""",
    "time-to-close-hours": f"""{CURRENT}
| where Status == "Closed"
| extend HoursToClose = datetime_diff("minute", ClosedTime, CreatedTime) / 60.0
| project IncidentNumber, HoursToClose""",
    "mttr-percentiles": f"""{CURRENT}
| where Status == "Closed"
| extend TimeToClosure = (ClosedTime - CreatedTime) / 1h
| summarize p50 = percentile(TimeToClosure, 50), p90 = percentile(TimeToClosure, 90)""",
    "time-to-triage": f"""{CURRENT}
| extend TimeToTriage = iff(Status != "New", LastModifiedTime - CreatedTime, timespan(null))
| project IncidentNumber, TimeToTriage""",
    "severity-rank": f"""{CURRENT}
| extend Rank = case(Severity == "High", 3, Severity == "Medium", 2, Severity == "Low", 1, 0)
| top 3 by Rank desc""",
    "count-closed-time": """SecurityIncident
| summarize Versions = count(), count(ClosedTime) by IncidentNumber""",
    "count-predicate": """SecurityIncident
| summarize Closed = count(Status == "Closed"), All = count()""",
    "incident-url-parts": f"""{CURRENT}
| extend Portal = tostring(split(IncidentUrl, "/")[2])
| distinct Portal""",
    "provider-filter": """SecurityIncident
| where ProviderName == "Microsoft XDR"
| summarize dcount(IncidentNumber)""",
    "redirected-label": f"""{CURRENT}
| mv-expand Labels
| where tostring(Labels.labelName) == "Redirected"
| project IncidentNumber""",
    "labels-as-set": f"""{CURRENT}
| mv-expand Labels
| summarize Tags = make_set(tostring(Labels.labelName)) by IncidentNumber""",
    "comments-per-incident": f"""{CURRENT}
| extend CommentCount = array_length(Comments)
| project IncidentNumber, CommentCount""",
    "comment-authors": f"""{CURRENT}
| mv-expand Comments
| where isnotempty(Comments)
| summarize count() by Author = tostring(Comments.author.name)""",
    "alerts-count-from-additional-data": f"""{CURRENT}
| extend AlertsCount = toint(AdditionalData.alertsCount)
| where AlertsCount > 1
| project IncidentNumber, AlertsCount""",
    "tactics-expanded": f"""{CURRENT}
| extend Tactics = todynamic(AdditionalData.tactics)
| mv-expand Tactics
| summarize Incidents = dcount(IncidentNumber) by tostring(Tactics)""",
    "product-names": f"""{CURRENT}
| mv-expand parse_json(AdditionalData.alertProductNames)
| summarize count() by Product = tostring(AdditionalData)""",
    "first-alert-id-path-step": f"""{CURRENT}
| extend FirstAlert = tostring(AlertIds.[0])
| project IncidentNumber, FirstAlert""",
    "alert-ids-length": f"""{CURRENT}
| project IncidentNumber, Alerts = array_length(AlertIds)""",
    "title-search": """SecurityIncident
| where Title has_any ("phish", "ransom", "credential")
| distinct IncidentNumber, Title""",
    "title-contains": """SecurityIncident
| where Title contains "Multi-stage" or Description contains "phish"
| distinct IncidentNumber""",
    "modified-by": f"""{CURRENT}
| summarize count() by ModifiedBy""",
    "workbook-time-range": """SecurityIncident
| where TimeGenerated between (ago(7d) .. now())
| where Severity in ("High", "Medium", "Low", "Informational")
| summarize arg_max(TimeGenerated, *) by IncidentNumber
| summarize count() by Severity""",
    "tasks-if-exists": f"""{CURRENT}
| extend TaskList = column_ifexists("Tasks", dynamic([]))
| project IncidentNumber, TaskList""",
    "missing-column-default": f"""{CURRENT}
| extend Region = column_ifexists("Region", "unknown")
| summarize count() by Region""",
    "ingestion-delay": """SecurityIncident
| extend Delay = ingestion_time() - TimeGenerated
| summarize max(Delay)""",
    "parenthesised-source": """(SecurityIncident | where Severity == "High")
| summarize arg_max(TimeGenerated, *) by IncidentNumber
| count""",
    "mean-time-to-close": f"""{CURRENT}
| where Status == "Closed"
| extend TimeToClose = ClosedTime - CreatedTime
| summarize MeanTimeToClose = avg(TimeToClose)""",
    "closed-state-lookup": f"""{CURRENT}
| project IncidentNumber
| join kind=leftouter (SecurityIncident | where Status == "Closed"
    | distinct IncidentNumber, State = Status) on IncidentNumber
| summarize count() by State""",
    "last-closed-if": """SecurityIncident
| summarize LastClosed = maxif(ClosedTime, Status == "Closed"),
    OpenIncidents = dcountif(IncidentNumber, Status != "Closed")""",
    "weeks-open": f"""{CURRENT}
| where Status != "Closed"
| extend WeeksOpen = datetime_diff('week', now(), CreatedTime)
| project IncidentNumber, WeeksOpen""",
    "obfuscated-title-search": """SecurityIncident
| where Title has h"phish"
| distinct IncidentNumber""",
    "incident-number-prefix": f"""{CURRENT}
| where IncidentNumber startswith "29723"
| count""",
    "serialized-latest": """SecurityIncident
| sort by TimeGenerated desc
| serialize
| take 1
| project IncidentNumber""",
    # -- timecharts ----------------------------------------------------------------------------
    "hourly-timechart": """SecurityIncident
| where TimeGenerated > ago(2d)
| summarize Incidents = count() by bin(TimeGenerated, 1h)
| render timechart with (title="Incidents per hour")""",
    "severity-trend-sparkline": """let data = SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId;
data
| summarize Count = count() by AlertSeverity
| join kind=inner (data
    | make-series Trend = count() default = 0 on TimeGenerated from ago(3d) to now() step 1h by AlertSeverity)
    on AlertSeverity
| project AlertSeverity, Count, Trend""",
    "incident-series-by-status": f"""{CURRENT}
| make-series Incidents = dcount(IncidentNumber) default = 0 on LastModifiedTime
    from ago(30d) to now() step 1d by Status
| render timechart""",
    "daily-by-severity": """SecurityIncident
| summarize count() by bin(TimeGenerated, 1d), Severity
| render columnchart""",
    "created-per-day-bin-at": f"""{CURRENT}
| summarize count() by bin_at(CreatedTime, 1d, datetime(2021-01-01 06:00))""",
    "alerts-per-hour": """SecurityAlert
| summarize Alerts = dcount(SystemAlertId) by bin(TimeGenerated, 1h), AlertSeverity
| render timechart""",
    # -- alerts --------------------------------------------------------------------------------
    "alerts-current": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| project SystemAlertId, AlertName, AlertSeverity, ProductName""",
    "alerts-by-product": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| summarize count() by ProductName, ProviderName""",
    "alerts-by-tactic": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| extend Tactic = split(Tactics, ",")
| mv-expand Tactic
| summarize count() by tostring(Tactic)""",
    "entities-hosts": """SecurityAlert
| extend E = parse_json(Entities)
| mv-expand E
| where tostring(E.Type) == "host"
| summarize Alerts = dcount(SystemAlertId) by Host = tostring(E.HostName)""",
    "entities-unnamed-mv-expand": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| mv-expand todynamic(Entities)
| summarize count() by tostring(Entities.Type)""",
    "entities-parsejson": """SecurityAlert
| extend Ents = parsejson(Entities)
| mv-expand Ents
| where Ents.Type == "account"
| distinct Account = tostring(Ents.Name)""",
    "entities-files": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| mv-expand Entity = todynamic(Entities)
| where Entity.Type == "file"
| project FileName = tostring(Entity.Name), Directory = tostring(Entity.Directory)""",
    "extended-properties": """SecurityAlert
| extend Props = parse_json(ExtendedProperties)
| extend IncidentId = tostring(Props.IncidentId)
| where isnotempty(IncidentId)
| summarize Alerts = dcount(SystemAlertId) by IncidentId""",
    "extended-properties-bracket": """SecurityAlert
| extend Props = parse_json(ExtendedProperties)
| extend Threat = tostring(Props["ThreatName"])
| where isnotempty(Threat)
| distinct Threat""",
    "compromised-entity": """SecurityAlert
| where isnotempty(CompromisedEntity)
| summarize count() by CompromisedEntity""",
    "alert-window": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| extend DurationMinutes = datetime_diff("minute", EndTime, StartTime)
| project SystemAlertId, DurationMinutes""",
    "alert-status": """SecurityAlert
| summarize arg_max(TimeGenerated, *) by SystemAlertId
| summarize count() by Status""",
    "alert-let-function": """let AlertsFrom = (product:string, window:timespan = 30d) {
    SecurityAlert
    | where TimeGenerated > ago(window)
    | where ProductName == product
    | summarize arg_max(TimeGenerated, *) by SystemAlertId
};
AlertsFrom("Microsoft Defender Advanced Threat Protection")
| project AlertName""",
    "alert-let-function-default-window": """let HostAlerts = (host:string) {
    SecurityAlert
    | where Entities has host
    | summarize arg_max(TimeGenerated, *) by SystemAlertId
};
HostAlerts("WS-0142")
| summarize dcount(SystemAlertId)""",
    # -- incidents joined to their alerts ------------------------------------------------------
    "incident-alert-join": f"""{CURRENT}
| mv-expand AlertIds
| extend AlertId = tostring(AlertIds)
| join kind=inner (SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId)
    on $left.AlertId == $right.SystemAlertId
| project IncidentNumber, AlertName""",
    "incident-alert-products": f"""let incidents = {CURRENT}
| mv-expand AlertIds
| extend SystemAlertId = tostring(AlertIds);
let alerts = SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId;
incidents
| join kind=inner (alerts) on SystemAlertId
| summarize Products = make_set(ProductName) by IncidentNumber""",
    "incident-alert-lookup": f"""{CURRENT}
| mv-expand AlertIds to typeof(string)
| lookup kind=leftouter (SecurityAlert | summarize arg_max(TimeGenerated, *) by SystemAlertId
    | project SystemAlertId, AlertSeverity) on $left.AlertIds == $right.SystemAlertId
| summarize count() by AlertSeverity""",
    "incidents-with-host": """let host = "WS-0142";
let hostAlerts = SecurityAlert | where Entities has host | distinct SystemAlertId;
SecurityIncident
| summarize arg_max(TimeGenerated, *) by IncidentNumber
| mv-expand AlertIds
| where tostring(AlertIds) in (hostAlerts)
| distinct IncidentNumber""",
    "incident-let-function": f"""let IncidentsWith = (severity:string) {{
    {CURRENT}
    | where Severity == severity
}};
IncidentsWith("Medium")
| project IncidentNumber""",
    "incident-function-join": f"""let Current = () {{ {CURRENT} }};
let AlertsOf = (product:string) {{ SecurityAlert | where ProductName == product }};
Current()
| mv-expand AlertIds
| extend SystemAlertId = tostring(AlertIds)
| join kind=inner (AlertsOf("Azure Advanced Threat Protection")) on SystemAlertId
| distinct IncidentNumber""",
    "alerts-of-closed-incidents": """let closedAlerts = SecurityIncident
| where Status == "Closed"
| summarize make_set(AlertIds);
SecurityAlert
| where SystemAlertId in (closedAlerts)
| distinct SystemAlertId""",
    "alert-tactics-union": """union SecurityAlert, AlertInfo
| summarize count() by Type""",
    # -- advanced hunting tables ---------------------------------------------------------------
    "alertinfo-evidence-users": """AlertInfo
| join kind=inner (AlertEvidence | where EntityType == "User") on AlertId
| distinct Title""",
    "evidence-devices": """AlertEvidence
| where EntityType == "Machine"
| summarize Alerts = dcount(AlertId) by DeviceName""",
    "evidence-roles": """AlertEvidence
| summarize count() by EntityType, EvidenceRole""",
    "alertinfo-categories": """AlertInfo
| summarize arg_max(TimeGenerated, *) by AlertId
| summarize count() by Category, Severity""",
    "evidence-files": """AlertEvidence
| where EntityType == "File" and isnotempty(SHA256)
| distinct FileName, SHA256""",
    "evidence-additional-fields": """AlertEvidence
| extend Fields = parse_json(AdditionalFields)
| where isnotempty(Fields)
| summarize count() by EntityType""",
    "attack-techniques": """AlertInfo
| where isnotempty(AttackTechniques)
| extend Techniques = parse_json(AttackTechniques)
| mv-expand Techniques
| summarize count() by tostring(Techniques)""",
    "service-source": """AlertInfo
| summarize Alerts = dcount(AlertId) by ServiceSource, DetectionSource""",
    # -- forms the compatibility layer writes out (`compat`) -----------------------------------
    "entity-accounts-mv-apply": """SecurityAlert
| mv-apply Entity = todynamic(Entities) on (
    where Entity.Type == "account"
    | project AccountName = tostring(Entity.Name), Sid = tostring(Entity.Sid)
)
| summarize Alerts = dcount(SystemAlertId) by AccountName""",
    "public-remote-addresses": """AlertEvidence
| where isnotempty(RemoteIP) and not(ipv4_is_private(RemoteIP))
| summarize Alerts = dcount(AlertId) by RemoteIP
| top 10 by Alerts""",
    "addresses-in-watchlist-ranges": """let ranges = datatable(Network: string, Site: string) [
    "10.0.0.0/8", "corporate", "192.168.0.0/16", "lab", "203.0.113.0/24", "partners"];
AlertEvidence
| where isnotempty(LocalIP)
| extend k = 1
| join kind=inner (ranges | extend k = 1) on k
| where ipv4_is_in_range(LocalIP, Network)
| summarize Evidence = count() by Site""",
    "time-to-close-percentiles": f"""{CURRENT}
| where Status == "Closed"
| extend Minutes = datetime_diff("minute", ClosedTime, CreatedTime)
| summarize (p50, p90) = percentiles(Minutes, 50, 90), percentiles(Minutes, 99.5) by Severity""",
    "fuzzy-union-of-content-tables": """union isfuzzy=true SecurityAlert, DeviceProcessEvents,
    (IdentityLogonEvents | where ActionType == "LogonFailed")
| where TimeGenerated > ago(30d)
| summarize count() by Type""",
    # -- functions duckdb-kql lacks (`kqlfunctions`) ------------------------------------------
    "owners-by-severity-bag": f"""{CURRENT}
| summarize Owners = make_bag(bag_pack(tostring(IncidentNumber), tostring(Owner.assignedTo)))
    by Severity""",
    "additional-data-keys": f"""{CURRENT}
| mv-expand Key = bag_keys(AdditionalData)
| summarize Incidents = count() by tostring(Key)""",
    "daily-severity-pivot": f"""{CURRENT}
| summarize Count = count() by Day = bin(CreatedTime, 1d), Severity
| evaluate pivot(Severity, sum(Count))
| sort by Day asc""",
    "new-tactics-since-september": """let before = toscalar(SecurityIncident
    | where CreatedTime < datetime(2021-09-01)
    | mv-expand Tactic = AdditionalData.tactics
    | summarize make_set(tostring(Tactic)));
SecurityIncident
| where CreatedTime >= datetime(2021-09-01)
| summarize Tactics = make_set(AdditionalData.tactics)
| project New = array_sort_asc(set_difference(Tactics, before))""",
}
