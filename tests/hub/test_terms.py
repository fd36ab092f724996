"""The identifying attributes of an alert's evidence the queue's search finds."""

from __future__ import annotations

from xdrsync.hub.terms import EVIDENCE_TERMS_CAP, evidence_terms


def test_evidence_terms_are_what_the_entity_cards_name_and_never_free_text() -> None:
    raw = {
        "evidence": [
            {
                "@odata.type": "#microsoft.graph.security.deviceEvidence",
                "mdeDeviceId": "mde-1",
                "deviceDnsName": "pc1.contoso.com",
                "hostName": "pc1",
            },
            {
                "@odata.type": "#microsoft.graph.security.processEvidence",
                "processCommandLine": "powershell -enc AAAA",
                "imageFile": {"fileName": "powershell.exe", "sha1": "a" * 40, "md5": "c" * 32},
                "mdeDeviceId": "mde-1",  # once
            },
            {
                "@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
                "subject": "Invoice overdue",
                "networkMessageId": "nm-1",
                "p1Sender": {"emailAddress": "boss@fabrikam.com"},
            },
            {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "x" * 300},
            "not an item",
        ]
    }
    terms = (evidence_terms(raw) or "").split("\n")
    assert terms == [
        "pc1.contoso.com",
        "mde-1",
        "pc1",
        "powershell.exe",
        "a" * 40,
        "c" * 32,
        "nm-1",
        "boss@fabrikam.com",
    ]
    assert evidence_terms({"evidence": []}) is None and evidence_terms({}) is None


def test_evidence_terms_stop_at_their_cap() -> None:
    items = [
        {
            "@odata.type": "#microsoft.graph.security.ipEvidence",
            "ipAddress": f"10.0.{n // 256}.{n % 256}",
        }
        for n in range(5000)
    ]
    terms = evidence_terms({"evidence": items}) or ""
    assert len(terms) <= EVIDENCE_TERMS_CAP
    assert terms.startswith("10.0.0.0\n10.0.0.1\n")
