"""Defender comments → Sentinel comments: names, messages, the 30,000/100 limits (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.destinations.sentinel.comments import (
    ANALYST_RESERVE,
    COMMENT_CUT,
    MirroredComment,
    comment_message,
    comment_name,
    mirrored_comments,
    notice_name,
    plan_comments,
    redirect_comment,
)
from xdrsync.destinations.sentinel.mapping import incident_name
from xdrsync.destinations.sentinel.text import MAX_COMMENT, MAX_COMMENTS, shown, utf16_len
from xdrsync.hub import CommentRow
from xdrsync.models import Incident

TENANT = "00000000-0000-0000-0000-00000000000a"
OTHER = "00000000-0000-0000-0000-00000000000b"
AT = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
URL = "https://security.microsoft.com/incidents/41"


def _row(
    text: str | None,
    *,
    minute: int = 0,
    author: str = "bob@contoso.com",
    incident: str = "41",
    written_by: str | None = None,
) -> CommentRow:
    return CommentRow(
        tenant_id=TENANT,
        incident_id=incident,
        entity_type="incident",
        entity_id=incident,
        created_date_time=AT + timedelta(minutes=minute),
        created_by=author,
        comment=text,
        first_seen_at=AT,
        written_by=written_by,
    )


def test_comment_names_are_deterministic_and_follow_the_comments_identity() -> None:
    def name(**kw: object) -> str:
        base: dict[str, object] = {"created": AT, "author": "bob", "text": "hello"}
        base.update(kw)
        return comment_name(TENANT, "41", **base)  # type: ignore[arg-type]

    assert name() == name()
    assert name() == comment_name(TENANT.upper(), "41", created=AT, author="bob", text="hello")
    assert (
        len(
            {
                name(),
                name(text="hello!"),
                name(author="ann"),
                name(created=AT + timedelta(seconds=1)),
                name(origin_incident_id="40"),
            }
        )
        == 5
    )
    assert name() != comment_name(OTHER, "41", created=AT, author="bob", text="hello")
    assert name() != comment_name(TENANT, "42", created=AT, author="bob", text="hello")
    assert notice_name(TENANT, "41") != notice_name(OTHER, "41")


def test_a_message_names_its_author_time_and_origin() -> None:
    message = comment_message(_row("check host-7"), "41")
    assert message == "bob@contoso.com in Defender XDR, 2026-11-01 10:30 UTC:\ncheck host-7"
    merged = comment_message(_row("from before", incident="40"), "41")
    assert merged.startswith("bob@contoso.com in Defender XDR on incident 40, merged into this")
    ours = comment_message(_row("hi", author="xdrsync-app", written_by="ann"), "41")
    assert ours.startswith("ann (through xdrsync) in Defender XDR")


class _Shown(HTMLParser):
    """What a browser shows of an HTML fragment: its text, tags dropped, references read."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _shown(message: str) -> str:
    parser = _Shown()
    parser.feed(message)
    parser.close()
    return "".join(parser.parts)


def test_a_message_shows_defenders_text_as_written_though_sentinel_renders_html() -> None:
    """Sentinel renders a comment's message as HTML (and Markdown), whoever wrote it: a
    Defender comment's angle brackets and ampersands (a command line's ``2>&1``, a host
    named ``<host-7>``, an attacker's ``<script>``) are shown as written, never taken for
    markup that drops them or turns into something else."""
    text = 'cmd /c type <host-7>\\c$\\out.txt 2>&1 &amp; <script>alert("x")</script> <b>x</b>'
    author = "<img src=x onerror=alert(1)>bob"
    message = comment_message(_row(text, author=author), "41")
    assert _shown(message) == f"{author} in Defender XDR, 2026-11-01 10:30 UTC:\n{text}"
    assert "<" not in message and ">" not in message
    # Cut where an entity would be split: what is shown never ends in the pieces of one.
    long = comment_message(_row("&" * 40_000), "41")
    assert utf16_len(long) <= MAX_COMMENT
    assert long.endswith(COMMENT_CUT)
    assert set(_shown(long).removesuffix(COMMENT_CUT).split(":\n", 1)[1]) == {"&"}


@settings(max_examples=40)
@given(
    st.builds(
        lambda piece, times: piece * times,
        st.text(min_size=1, max_size=6),
        st.integers(min_value=1, max_value=40_000),
    )
)
def test_a_message_never_exceeds_30000_and_cuts_visibly(text: str) -> None:
    message = comment_message(_row(text), "41")
    assert utf16_len(message) <= MAX_COMMENT
    if text.strip() and shown(text) not in message:
        assert message.endswith(COMMENT_CUT)


def test_the_same_comment_twice_is_mirrored_once() -> None:
    rows = [_row("a"), _row("a"), _row("b", minute=1)]
    mirrored = mirrored_comments(TENANT, "41", rows)
    assert [m.message.split("\n")[1] for m in mirrored] == ["a", "b"]


def _wanted(count: int) -> list[MirroredComment]:
    return mirrored_comments(TENANT, "41", [_row(f"c{i}", minute=i) for i in range(count)])


def test_everything_fits_without_a_notice() -> None:
    plan = plan_comments(_wanted(5), {}, notice=notice_name(TENANT, "41"), url=URL)
    assert len(plan.puts) == 5
    assert plan.left_out == 0
    again = plan_comments(
        _wanted(5),
        {c.name: c.message for c in plan.puts},
        notice=notice_name(TENANT, "41"),
        url=URL,
    )
    assert again.puts == ()


def test_the_last_place_the_mirror_takes_is_a_notice_of_how_many_more_are_in_defender() -> None:
    notice = notice_name(TENANT, "41")
    plan = plan_comments(_wanted(150), {}, notice=notice, url=URL)
    assert len(plan.puts) == MAX_COMMENTS - ANALYST_RESERVE  # the last 10 are the analysts'
    assert plan.puts[-1].name == notice
    assert plan.puts[-1].message == f"61 more comments are in Defender: {URL}"
    assert plan.left_out == 61
    # Later: two more Defender comments; the notice is rewritten in place, nothing else fits.
    existing = {c.name: c.message for c in plan.puts}
    later = plan_comments(_wanted(152), existing, notice=notice, url=URL)
    assert [c.name for c in later.puts] == [notice]
    assert later.puts[0].message.startswith("63 more comments")
    unchanged = plan_comments(_wanted(150), existing, notice=notice, url=URL)
    assert unchanged.puts == ()
    assert unchanged.left_out == 61
    # Analysts write their ten: the mirror takes none of their places.
    existing |= {f"analyst-{i}": "note" for i in range(ANALYST_RESERVE)}
    assert len(existing) == MAX_COMMENTS
    full = plan_comments(_wanted(152), existing, notice=notice, url=URL)
    assert [c.name for c in full.puts] == [notice]  # rewritten in place: no new place
    assert full.left_out == 63


def test_a_notice_that_counts_comments_now_shown_is_rewritten() -> None:
    """Analysts took places, then gave them back: every Defender comment fits now, and the
    notice (which the app cannot delete) no longer says comments are missing."""
    notice = notice_name(TENANT, "41")
    analysts = {f"analyst-{i}": "note" for i in range(30)}
    first = plan_comments(_wanted(65), analysts, notice=notice, url=URL)
    assert first.left_out == 6 and first.puts[-1].message.startswith("6 more comments")
    existing = {c.name: c.message for c in first.puts} | {f"analyst-{i}": "note" for i in range(10)}
    plan = plan_comments(_wanted(65), existing, notice=notice, url=URL)
    assert plan.left_out == 0
    assert len(plan.puts) == 7 and plan.puts[-1].name == notice
    assert plan.puts[-1].message == (
        f"Every comment of the Defender incident is shown here now: {URL}"
    )
    after = existing | {c.name: c.message for c in plan.puts}
    assert plan_comments(_wanted(65), after, notice=notice, url=URL).puts == ()


def test_analysts_comments_count_and_a_full_incident_is_reported() -> None:
    notice = notice_name(TENANT, "41")
    analysts = {f"analyst-{i}": "note" for i in range(MAX_COMMENTS - ANALYST_RESERVE)}
    plan = plan_comments(_wanted(3), analysts, notice=notice, url=URL)
    assert plan.puts == ()
    assert plan.left_out == 3


@settings(max_examples=100)
@given(
    wanted=st.integers(min_value=0, max_value=160),
    analysts=st.integers(min_value=0, max_value=MAX_COMMENTS),
    mirrored_before=st.integers(min_value=0, max_value=160),
)
def test_analysts_always_keep_their_places_and_nothing_is_dropped_silently(
    wanted: int, analysts: int, mirrored_before: int
) -> None:
    notice = notice_name(TENANT, "41")
    existing = {f"analyst-{i}": "note" for i in range(analysts)}
    first = plan_comments(_wanted(min(mirrored_before, wanted)), existing, notice=notice, url=URL)
    existing.update({c.name: c.message for c in first.puts})
    assert len(existing) <= max(analysts, MAX_COMMENTS - ANALYST_RESERVE)
    plan = plan_comments(_wanted(wanted), existing, notice=notice, url=URL)
    after = dict(existing) | {c.name: c.message for c in plan.puts}
    # The mirror takes a new place only while it leaves the analysts' reserve free.
    assert len(after) <= max(len(existing), MAX_COMMENTS - ANALYST_RESERVE)
    ours = {c.name for c in _wanted(wanted)}
    missing = len(ours - set(after))
    assert plan.left_out == missing  # every comment that found no place is counted
    if missing and len(after) < MAX_COMMENTS - ANALYST_RESERVE:
        raise AssertionError("a place the mirror may take was left while comments were missing")
    if notice in after:
        counted = f"{missing} more comments are in Defender" if missing else "Every comment"
        assert after[notice].startswith(counted)


def test_a_merged_incident_links_its_survivor() -> None:
    incident = Incident.from_graph(
        {
            "id": "41",
            "status": "redirected",
            "redirectIncidentId": "77",
            "incidentWebUrl": "https://security.microsoft.com/incidents/41",
        }
    )
    comment = redirect_comment(incident, tenant_id=TENANT, tenant_name="contoso")
    assert comment is not None
    assert "incident 77 (tenant contoso)" in comment.message
    assert incident_name(TENANT, "77") in comment.message
    assert "/incidents/77?tid=" in comment.message
    same = redirect_comment(incident, tenant_id=TENANT, tenant_name="contoso")
    assert same == comment
    active = Incident.from_graph({"id": "41", "status": "active"})
    assert redirect_comment(active, tenant_id=TENANT, tenant_name="contoso") is None
