"""Exchange Online through Microsoft Graph v1.0: the second `MailboxBackend`.

Same records, same promises as the EWS backend (tests/engine/mailbox/contract.py runs on
both); how Graph gets there:
- ids are immutable (`Prefer: IdType="ImmutableId"`), so an item keeps its id when moved;
- changes come from delta queries, checkpointed page by page: the stored state is the
  page's `@odata.nextLink` (inside a round) or `@odata.deltaLink` (after it). A link Graph no
  longer knows (410) restarts the read from scratch, marked `restarted` so the engine matches
  instead of creating. Delta lists only ids and versions; records are then fetched in
  `$batch`es, four at a time at most (Graph's limit per mailbox);
- contacts and mail: a delta per folder. Calendar: Graph v1.0 has only calendarView delta, a
  delta of the occurrences over a date window (the profile's, with a margin, so that the
  daily move of the window does not start a new round every day). Occurrences lead to their
  series master, read once per round with its exceptions and deleted occurrences (from the
  series' instances). A series deleted or moved away shows only as removed occurrences: a
  round that removed any ends by comparing the calendar's series masters with those it has
  seen;
- writes go in `$batch`es of 20 with a result per item; a stale `changeKey` (If-Match) is a
  CONFLICT; the identity stamp is a single-value extended property. Attendees are never
  written: Graph has no SendToNone and mails invitations for any event written with
  attendees (the engine keeps attendees Exchange -> CRM only anyway; a written record's
  attendees are reported in its result's message);
- attachments stream from `/$value` in chunks; small ones come with their messages (the delta
  lists their sizes), as far as a page's budget goes, or 20 to a `$batch`.
"""

from __future__ import annotations

from engine.mailbox.graph_attachments import GraphAttachments
from engine.mailbox.graph_folders import GraphFolders
from engine.mailbox.graph_locating import GraphLocating
from engine.mailbox.graph_reading import GraphReading
from engine.mailbox.graph_writing import GraphWriting


class GraphMailbox(GraphFolders, GraphReading, GraphLocating, GraphWriting, GraphAttachments):
    """The Graph backend (MailboxBackend): each base class holds one part of what it does."""
