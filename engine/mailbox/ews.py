"""Exchange Server over EWS, through exchangelib: `EwsMailbox`, put together from the modules
that each take care of one part of it (ews_*.py).

What it takes care of, beyond calling exchangelib (facts: exchangelib notes §0–§2):
- no discovery round trips: endpoint, auth type and version are always given (ews_protocol);
- throttling is waited out up to a budget per run, HTTP 429 included, while HTTP 401 fails at
  once ("authentication failed") instead of being retried as throttling (ews_protocol);
- cached protocols are dropped when a connection's settings change (exchangelib keeps the first
  configuration per endpoint and credentials for the life of the process; ews_protocol);
- TLS verification can be turned off per connection, not per process (ews_protocol);
- incremental reads are checkpointed page by page (exchangelib's `sync_items()` only hands out
  the state at the very end), and ask only for the fields the records need (ews_reading);
- writes go in batches with a result per item, never send invitations or cancellations, and
  report a stale ChangeKey as a conflict (ews_writing);
- watching: a group of impersonated mailboxes is read through one GetStreamingEvents request
  (one subscription per mailbox, affinity headers as Microsoft prescribes for such groups),
  and subscriptions Exchange forgot are made again (ews_streaming).
"""

from __future__ import annotations

from engine.mailbox.ews_attachments import EwsAttachments
from engine.mailbox.ews_folders import EwsFolders
from engine.mailbox.ews_locating import EwsLocating
from engine.mailbox.ews_reading import EwsReading
from engine.mailbox.ews_streaming import EwsStreaming
from engine.mailbox.ews_writing import EwsWriting


class EwsMailbox(EwsFolders, EwsReading, EwsLocating, EwsWriting, EwsAttachments, EwsStreaming):
    """The EWS backend (MailboxBackend): each base class holds one part of what it does."""
