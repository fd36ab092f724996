"""The Microsoft Sentinel destination: incidents and comments through ARM, alert and evidence
rows through the Logs Ingestion API (docs/destinations/sentinel.md).

``destination.SentinelDestination`` is the entry point; ``mapping`` and ``comments`` are the
pure Defender → Sentinel mapping, ``arm`` and ``ingest`` the two clients.
"""
