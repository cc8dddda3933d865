"""Microsoft Graph v1.0 front door on the ewsim store (same mailboxes as EWS).

Base URL `http://127.0.0.1:<port>/graph/v1.0` (also on the TLS listener when the server
runs with `tls=True`). Requests need `Authorization: Bearer <token>` from
`POST /{tenant}/oauth2/v2.0/token`; app-only tokens open any mailbox the app may
(`can_impersonate`), user tokens their own (and delegated ones) and `/me`.
Headers: `Prefer: IdType="ImmutableId"` (ids kept across moves), `Prefer:
odata.maxpagesize=N` (delta pages, default 10), `Prefer: outlook.timezone="…"` (event
times), `If-Match` on PATCH/DELETE (412 when stale). `{user}` = address or UPN.

Identity platform (for MSAL; MSAL needs https, so use the TLS listener):
    GET  /{tenant}/v2.0/.well-known/openid-configuration   (400 AADSTS90002 unknown tenant)
    GET  /common/discovery/instance                         (only if pointed at it)
    POST /{tenant}/oauth2/v2.0/token   client_credentials with client_secret or
         client_assertion (certificate); AADSTS7000215 wrong secret, AADSTS700016 app
         unknown in tenant, AADSTS700027 bad assertion

Folders:
    GET /users/{user}/mailFolders                      top level (under msgfolderroot)
    GET /users/{user}/mailFolders/{id|wellKnownName}   inbox, sentitems, deleteditems,
        drafts, junkemail, outbox, msgfolderroot
    GET /users/{user}/mailFolders/{id}/childFolders
    GET /users/{user}/contactFolders                   folders inside the default Contacts
    GET /users/{user}/contactFolders/{id|contacts}     `contacts` = the default folder
    GET /users/{user}/contactFolders/{id}/childFolders
    GET /users/{user}/calendars, /calendar, /calendars/{id}

Contacts:
    GET  /users/{user}/contactFolders/{id}/contacts/delta   ($select, maxpagesize)
    GET  /users/{user}/contacts, /contactFolders/{id}/contacts   ($filter on a stamp,
         $top, $skip, $select, $expand=singleValueExtendedProperties($filter=id eq '…'))
    POST /users/{user}/contacts, /contactFolders/{id}/contacts          201 + contact
    GET|PATCH|DELETE /users/{user}/contacts/{id}                        (also below
         contactFolders/{id}/contacts/{id})
    GET|PUT|DELETE /users/{user}/contacts/{id}/photo/$value; GET …/photo (metadata)

Mail:
    GET  /users/{user}/mailFolders/{id}/messages/delta      ($select, maxpagesize)
    GET  /users/{user}/messages, /mailFolders/{id}/messages (stamp $filter, paging)
    GET|PATCH|DELETE /users/{user}/messages/{id}   ($select, $expand=attachments[($select=…)],
         singleValueExtendedProperties); PATCH: isRead, categories, flag, extended props
    GET  /users/{user}/messages/{id}/$value                 MIME
    GET  /users/{user}/messages/{id}/attachments            (contentBytes for files)
    GET  /users/{user}/messages/{id}/attachments/{id}
    GET  /users/{user}/messages/{id}/attachments/{id}/$value   raw bytes, streamed in
         chunks; an item attachment's $value is its MIME

Calendar:
    GET  /users/{user}/calendarView/delta?startDateTime=…&endDateTime=…   (and
         /calendars/{id}/calendarView/delta): instances — type singleInstance,
         occurrence, exception, with seriesMasterId; removed ones as @removed
    GET  /users/{user}/calendarView?startDateTime=…&endDateTime=…
    GET  /users/{user}/events, /calendars/{id}/events       (stamp $filter, paging;
         series masters and single events, not occurrences)
    POST /users/{user}/events, /calendars/{id}/events       201 + event
    GET|PATCH|DELETE /users/{user}/events/{id}   master, single, occurrence or exception;
         PATCH of an occurrence makes it an exception, DELETE of one deletes that instance
    GET  /users/{user}/events/{id}/instances?startDateTime=…&endDateTime=…
    GET  /users/{user}/events/{id}/calendar   the calendar the event is in now ($select)

Master categories (the same list EWS serves as the CategoryList user configuration):
    GET  /users/{user}/outlook/masterCategories, /outlook/masterCategories/{id}

Change notifications (graph/subscriptions.py, graph/notifier.py; ewsim/README.md):
    POST /subscriptions   {changeType, notificationUrl, lifecycleNotificationUrl, resource
         (me|users/{user} + messages, mailFolders/{id}/messages, contacts,
         contactFolders/{id}/contacts, events, calendar/events, calendars/{id}/events),
         expirationDateTime (<= 10080 minutes), clientState (<= 128)}; both URLs must pass
         the validationToken handshake (200 text/plain echo within 10 s) or 400 InvalidRequest
    GET /subscriptions; GET|PATCH (expirationDateTime, notificationUrl)|DELETE /subscriptions/{id}
    Notifications are POSTed in batches from background threads, retried, then dropped with
    a `missed` lifecycle event; expired subscriptions are removed.

Batching:
    POST /$batch   {"requests": [{id, method, url (relative), headers, body}]} <= 20;
         answers {"responses": [{id, status, headers, body}]}, one per request.

Errors are `{"error": {"code", "message", "innerError"}}`: 401 InvalidAuthenticationToken,
403 ErrorAccessDenied (app without admin consent or without access to the mailbox),
404 ErrorInvalidUser / MailboxNotEnabledForRESTAPI / ErrorItemNotFound, 400 BadRequest /
ErrorInvalidProperty / ErrorInvalidUrlQueryFilter, 410 SyncStateNotFound (expired or
foreign delta token; `Location` = the initial delta URL), 412 ErrorIrresolvableConflict,
429 ApplicationThrottled (more than 4 concurrent requests on one mailbox) or any
injected 429/503 with Retry-After.

Control plane (`/_control/graph/…`, see ewsim/README.md): stats (requests per route,
peak concurrency per mailbox), settings {mailbox_concurrency}, expire-delta {mailbox},
expire-tokens, mailbox {mailbox, rest_enabled}, app {client_id, admin_consent,
certificate}, release (held requests), invitations, subscriptions (list, {id}/lifecycle,
{id}/expire), notifications (counters, settings, fail). Faults (`/_control/faults`) apply
with `operation` = a route name such as `contacts.delta`, `events.create`, `batch`.
"""
