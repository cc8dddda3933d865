"""`python bench/run.py contacts-first-sync --n 3000`: a profile's first contact sync, timed.

Three cases, one JSON line each:
- export: N CRM persons into an empty Exchange contacts folder;
- import: N Exchange contacts into an empty CRM;
- two-way: N/2 on each side, N/10 of them sharing an e-mail address (unique on both sides, so
  the pairs are linked, not held as duplicate candidates).

Each case runs the product's own entry point (`engine.sync.sync`) against ewsim in a child
process, on a throwaway SQLite database (or PostgreSQL when DATABASE_URL is set). Its baseline
is exchangelib alone doing the same EWS work against the same simulator in the same process, so
`ratio_to_baseline` shows what the engine adds (planning, CRM writes, links, history) on top of
the unavoidable Exchange traffic; `seconds_per_item` shows whether that grows with N. After each
case the next run (nothing changed) and the one after it (`steady_run_*`: the steady state of a
synced mailbox, the same at any N) are timed too.
"""

from __future__ import annotations

import cProfile
import dataclasses
import math
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from exchangelib import Account, Contact
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress

from bench import backend, scratch
from bench.run import USER, _account, _rss_mb, simulator

SERVICE, SERVICE_PASSWORD = "svc@example.com", "svc-secret"
CASES = ("export", "import", "two-way")

# Targets (bench/README.md): a case ends within a minute, costs at most 1.5x what exchangelib
# alone needs for the same EWS work, asks at most ~3 requests per 100 items, and the next run
# with nothing changed is one or two requests.
MAX_SECONDS = 60.0
MAX_RATIO = 1.5
NEXT_RUN_MAX_REQUESTS = 2
NEXT_RUN_MAX_SECONDS = 1.0


def max_requests(items: int) -> int:
    return 3 * math.ceil(items / 100) + 10


# --- Django in this process -------------------------------------------------------------------
def setup_django() -> None:
    """A throwaway database unless DATABASE_URL names one; migrated, quietly."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncsite.settings")
    # As in production: DEBUG off, so Django does not log every statement with its quoted
    # parameters (a tenth of a first import's time went there). Throwaway secrets instead.
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ["ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    # Removed when the benchmark's process exits, however it exits (bench/scratch.py).
    os.environ["VAR_DIR"] = str(scratch.directory("bench-contacts-"))
    # The simulator on this machine, reached through the operator's switch, as in tests.
    os.environ.setdefault("MAILBOX_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    _import_product_modules()


def _import_product_modules() -> None:
    """What a worker has imported once it has run a sync: the runners, the mailbox backends
    and the CRM kinds the product loads by name. The baseline's exchangelib is imported
    before it is timed; the product's first run should not pay for imports either."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    from engine.mailbox import BACKENDS
    from engine.sync import RUNNERS

    for path in [*RUNNERS.values(), *BACKENDS.values(), *settings.SYNC_CRM_KINDS.values()]:
        import_string(path)


@contextmanager
def counting_queries() -> Iterator[list[int]]:
    """Count SQL statements (an extra for reading a result, not a target)."""
    from django.db import connection

    count = [0]

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                context: Any) -> Any:
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield count


# --- realistic contacts -----------------------------------------------------------------------
FIRST = ("Jana", "Petr", "Lucie", "Tomáš", "Eva", "Martin", "Kateřina", "Jiří", "Anna", "Pavel",
         "Markéta", "David", "Tereza", "Jan", "Veronika", "Michal", "Zuzana", "Lukáš", "Hana",
         "Ondřej")
LAST = ("Nováková", "Svoboda", "Dvořáková", "Černý", "Procházková", "Kučera", "Veselá",
        "Horák", "Němcová", "Marek", "Pokorná", "Pospíšil", "Hájková", "Král", "Jelínková",
        "Růžička", "Benešová", "Fiala", "Sedláčková", "Doležal")
JOBS = ("Sales Manager", "Accountant", "IT Administrator", "Project Manager", "CEO",
        "Purchasing", "Service Technician", "Marketing Specialist", "HR Business Partner")
DEPARTMENTS = ("Sales", "Finance", "IT", "Operations", "Management", "Purchasing", "Service")
CITIES = (("Praha", "110 00"), ("Brno", "602 00"), ("Ostrava", "702 00"), ("Plzeň", "301 00"),
          ("Olomouc", "779 00"), ("Liberec", "460 01"), ("České Budějovice", "370 01"))
STREETS = ("Vodičkova", "Masarykova", "Nádražní", "Husova", "Palackého", "Komenského", "Polní")
COMPANY_WORDS = ("Alfa", "Beta", "Stavby", "Technik", "Servis", "Data", "Energo", "Logistik",
                 "Agro", "Medica", "Soft", "Trade")
COMPANY_FORMS = ("s.r.o.", "a.s.", "spol. s r.o.", "v.o.s.")


def person(i: int, side: str) -> Any:
    """Person `i` of one side ("crm" or "ews"): names, company, job, 2-3 e-mails, business
    address, phones and a note; its e-mails are unique to it."""
    from engine.records import ContactRecord, PostalAddress

    rng = random.Random(f"{side}-{i}")
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, postal_code = rng.choice(CITIES)
    # ~400 companies: several persons work for each, as in a real address book.
    firm = random.Random(f"company-{i % 400}")
    company = (f"{firm.choice(COMPANY_WORDS)} {firm.choice(COMPANY_WORDS)} {i % 400} "
               f"{firm.choice(COMPANY_FORMS)}")
    domain = f"firma{i % 400}.example.com"
    emails = [f"{first.lower()}.{side}{i}@{domain}", f"{side}{i}@posta.example.net"]
    if i % 3 == 0:
        emails.append(f"{side}.{i}@private.example.org")
    emails += ["", ""]
    return ContactRecord(
        title="Ing." if i % 4 == 0 else "", first_name=first, last_name=last, company=company,
        job_title=rng.choice(JOBS), department=rng.choice(DEPARTMENTS),
        email1=emails[0], email2=emails[1], email3=emails[2],
        business_address=PostalAddress(f"{rng.choice(STREETS)} {rng.randint(1, 200)}", city,
                                       "", postal_code, "Czech Republic"),
        phone_business=f"+420 2{rng.randint(10, 99)} {rng.randint(100, 999)} {i % 1000:03d}",
        phone_mobile=f"+420 6{rng.randint(10, 99)} {rng.randint(100, 999)} {i % 1000:03d}",
        note=(f"Met at the trade fair in {city}.\nPrefers e-mail; "
              f"call the office before {rng.randint(8, 11)} a.m. Customer number {1000 + i}."))


def shared_pair(j: int) -> tuple[Any, Any]:
    """The same person on both sides, one e-mail address in common and unique: the CRM lacks
    the mobile phone, Exchange lacks the job title, so linking fills one field on each side."""
    base = person(j, "crm")
    address = f"shared{j}@partner.example.com"
    crm = replace(base, email1=address, email2="", email3="", phone_mobile="")
    remote = replace(base, email1=address, email2="", email3="", job_title="")
    return crm, remote


# --- the two sides, seeded fast and untimed -------------------------------------------------
def seed_crm(profile: Any, records: list[Any]) -> None:
    """Persons in bulk (one revision for the lot), with their companies: the profile's CRM
    user's, so that they are in the profile's (default) contact scope."""
    organization_id = profile.organization_id
    from crm.models import ADDRESS_PARTS, Company, Person, PersonCompany
    from engine.crmstore.builtin_persons import ADDRESS_FIELDS, PLAIN_FIELDS

    companies = {name: Company.find_or_create_by_name(organization_id, name).pk
                 for name in sorted({r.company for r in records if r.company})}
    persons = []
    for record in records:
        values = {name: getattr(record, name) for name in PLAIN_FIELDS}
        for field, prefix in ADDRESS_FIELDS.items():
            address = getattr(record, field)
            values.update({f"{prefix}_{part}": getattr(address, part) for part in ADDRESS_PARTS})
        persons.append(Person(organization_id=organization_id, owner_id=profile.crm_user_id,
                              **values))
    created = Person.objects.bulk_create(persons, batch_size=500)
    PersonCompany.objects.bulk_create(
        [PersonCompany(person_id=p.pk, company_id=companies[r.company])
         for p, r in zip(created, records, strict=True) if r.company], batch_size=500)


def seed_exchange(url: str, mailbox: str, records: list[Any]) -> None:
    """Contacts created by another client (no stamps), 100 per request."""
    from engine.mailbox.base import Auth, FolderInfo, MailboxAccess
    from engine.mailbox.ews import EwsMailbox
    from engine.records import Kind

    access = MailboxAccess(mailbox=mailbox, endpoint=url, auth=Auth.BASIC, username=SERVICE,
                           secret=SERVICE_PASSWORD, impersonate=True)
    with EwsMailbox(access) as backend:
        results = backend.create(FolderInfo("contacts", "Contacts", Kind.CONTACTS), records)
    failed = [r.message for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"seeding Exchange failed: {failed[:3]}")


def make_profile(url: str, name: str, mailbox: str) -> Any:
    """An organization of its own and a profile syncing `mailbox` through the service account,
    as an administrator would set it up."""
    from django.contrib.auth.models import User

    from crm.models import CrmUser
    from profiles.models import MailboxConnection, Organization, SyncProfile

    organization = Organization.objects.create(name=f"Bench {name}")
    connection = MailboxConnection(organization=organization, name="ewsim", ews_url=url,
                                   auth_type="basic", username=SERVICE)
    connection.set_secret(SERVICE_PASSWORD)
    connection.save()
    backend.use_for(connection, url)   # --backend graph: an Exchange Online connection
    user = User.objects.create_user(f"bench-{name}", mailbox, "pw")
    crm_user = CrmUser.objects.create(organization=organization, name=name, login=name)
    return SyncProfile.objects.create(organization=organization, user=user, mailbox=mailbox,
                                      crm_user=crm_user, connection=connection)


# --- the baseline: exchangelib alone --------------------------------------------------------
def ews_contact(account: Account, record: Any, stamp: str = "") -> Contact:
    """The record as a plain exchangelib Contact, with the same fields the product writes."""
    from engine.mailbox.ews_mapping import ADDRESSES, EMAILS, PHONES

    a = record.business_address
    return Contact(
        account=account, folder=account.contacts, title_prefix=record.title or None,
        given_name=record.first_name, surname=record.last_name,
        display_name=record.shown_name(), file_as=f"{record.last_name}, {record.first_name}",
        company_name=record.company or None, job_title=record.job_title or None,
        department=record.department or None,
        email_addresses=[EmailAddress(label=label, email=getattr(record, field))
                         for field, label in EMAILS.items() if getattr(record, field)],
        phone_numbers=[PhoneNumber(label=label, phone_number=getattr(record, field))
                       for field, label in PHONES.items() if getattr(record, field)] or None,
        physical_addresses=[PhysicalAddress(label=ADDRESSES["business_address"],
                                            street=a.street, city=a.city, zipcode=a.postal_code,
                                            country=a.country)],
        body=record.note or None, sync_stamp=stamp or None)


def baseline_create(account: Account, records: list[Any]) -> list[Any]:
    items = [ews_contact(account, r, f"crm:0:person:{i}") for i, r in enumerate(records)]
    results = account.bulk_create(folder=account.contacts, items=items, chunk_size=100)
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise RuntimeError(f"baseline bulk_create failed: {errors[:3]}")
    return results


def baseline_read(account: Account) -> list[Contact]:
    """What the product needs of every contact, read the plain exchangelib way."""
    from engine.mailbox.ews_mapping import CONTACT_FIELDS

    return list(account.contacts.all().only(*CONTACT_FIELDS))


def baseline_stamp(account: Account, contacts: list[Contact]) -> None:
    """The identity stamp written onto contacts read from Exchange, 100 per request, as the
    product stamps every contact it links without writing to it (docs/sync.md, *Moving is
    not deleting*): part of the same EWS work since contacts are found by it once moved."""
    for number, contact in enumerate(contacts):
        contact.sync_stamp = f"crm:0:person:{number}"
    account.bulk_update(items=[(c, ["sync_stamp"]) for c in contacts], chunk_size=100)


# --- one case -------------------------------------------------------------------------------
@dataclass
class Measured:
    seconds: float
    requests: int
    run: Any
    queries: int
    # EWS requests per operation (SyncFolderItems, GetItem, UpdateItem...): where they go.
    by_operation: dict[str, int] = dataclasses.field(default_factory=dict)


def timed_sync(control: Any, profile: Any, agenda: str = "contacts") -> Measured:
    from engine.sync import sync
    from profiles.models import SyncProfile

    profile = SyncProfile.objects.get(pk=profile.pk)   # fresh, as a worker would load it
    control.reset_counters()
    # BENCH_PROFILE=DIR: a cProfile of each timed run, to find where a slow case goes.
    profile_dir = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_dir else None
    with counting_queries() as queries:
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        run = sync(profile, agenda, trigger="manual")
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
    if profiler is not None and profile_dir:
        profiler.dump_stats(Path(profile_dir) / f"run-{run.pk}.prof")
    by_operation = {} if backend.is_graph() else {
        operation: count for operation, count in sorted(control.counters().items()) if count}
    return Measured(seconds, backend.requests(control, run), run, queries[0], by_operation)


def timed_baseline(control: Any, work: Callable[[], Any]) -> tuple[float, int]:
    control.reset_counters()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return seconds, sum(control.counters().values())


def next_runs(control: Any, profile: Any, agenda: str = "contacts") -> tuple[Measured, Measured]:
    """The two runs after a first sync, nothing changed on either side: the next one, and the
    one after it — the steady state of a synced mailbox, which should cost the same whatever
    the number of items."""
    return timed_sync(control, profile, agenda), timed_sync(control, profile, agenda)


def no_change_changes(run: Any) -> int:
    return sum(getattr(run, f) for f in ("crm_created", "crm_updated", "remote_created",
                                         "remote_updated", "linked", "errors", "duplicates"))


def result_line(name: str, items: int, first: Measured, baseline: tuple[float, int],
                after: Measured, *, benchmark: str = "contacts-first-sync",
                steady: Measured | None = None, **extra: Any) -> dict[str, Any]:
    run = first.run
    steady_fields = {} if steady is None else {
        "steady_run_seconds": round(steady.seconds, 3), "steady_run_requests": steady.requests,
        "steady_run_db_queries": steady.queries, "steady_run_status": steady.run.status,
        "steady_run_changes": no_change_changes(steady.run)}
    return {
        "benchmark": f"{benchmark}.{name}", "items": items,
        "seconds": round(first.seconds, 3),
        # Flat when the first sync's cost per item does not grow with the folder.
        "seconds_per_item": round(first.seconds / items, 5) if items else None,
        "ews_requests": first.requests,
        **({"ews_requests_by_operation": first.by_operation} if first.by_operation else {}),
        "baseline_seconds": round(baseline[0], 3),
        "ratio_to_baseline": round(first.seconds / baseline[0], 2) if baseline[0] else None,
        "peak_rss_mb": round(_rss_mb(os.getpid(), "VmHWM"), 1),
        "baseline_ews_requests": baseline[1],
        "status": run.status, "crm_created": run.crm_created, "crm_updated": run.crm_updated,
        "remote_created": run.remote_created, "remote_updated": run.remote_updated,
        "linked": run.linked, "duplicates": run.duplicates, "conflicts": run.conflicts,
        "errors": run.errors, "db_queries": first.queries,
        "next_run_requests": after.requests, "next_run_seconds": round(after.seconds, 3),
        "next_run_db_queries": after.queries, "next_run_status": after.run.status,
        "next_run_changes": no_change_changes(after.run),
        **steady_fields, **extra,
    }


def _reset_own_peak() -> None:
    Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")


def case_export(url: str, control: Any, n: int) -> dict[str, Any]:
    from crm.models import Person

    records = [person(i, "crm") for i in range(n)]
    mailbox = "export@example.com"
    control.add_user(mailbox, "export-secret", display_name="Export")
    profile = make_profile(url, "export", mailbox)
    seed_crm(profile, records)
    # Baseline: the same contacts bulk-created in the benchmark user's own mailbox, so the
    # product's run still starts with an empty folder.
    account = _account(url)
    account.contacts.refresh()
    baseline = timed_baseline(control, lambda: baseline_create(account, records))
    _reset_own_peak()
    first = timed_sync(control, profile)
    after, steady = next_runs(control, profile)
    in_exchange = control_count(control, mailbox)
    return result_line("export", n, first, baseline, after, steady=steady, expected_created=n,
                       exchange_contacts=in_exchange,
                       crm_persons=Person.objects.filter(
                           organization_id=profile.organization_id).count(),
                       ok=first.run.remote_created == n and in_exchange == n)


def case_import(url: str, control: Any, n: int) -> dict[str, Any]:
    from crm.models import Person

    # The benchmark user's mailbox holds the contacts: the baseline reads them as they are.
    records = [person(i, "ews") for i in range(n)]
    _clear_contacts(url)
    seed_exchange(url, USER, records)
    profile = make_profile(url, "import", USER)
    account = _account(url)
    account.contacts.refresh()
    baseline = timed_baseline(control, lambda: baseline_stamp(account, baseline_read(account)))
    _reset_own_peak()
    first = timed_sync(control, profile)
    after, steady = next_runs(control, profile)
    persons = Person.objects.filter(organization_id=profile.organization_id).count()
    return result_line("import", n, first, baseline, after, steady=steady, expected_created=n,
                       crm_persons=persons, ok=first.run.crm_created == n and persons == n)


def case_two_way(url: str, control: Any, n: int) -> dict[str, Any]:
    from crm.models import Person

    each, shared = n // 2, n // 10
    pairs = [shared_pair(j) for j in range(shared)]
    crm_records = [crm for crm, _ in pairs] + [person(i, "crm") for i in range(shared, each)]
    ews_records = [remote for _, remote in pairs] + [person(i, "ews")
                                                     for i in range(shared, each)]
    # The baseline's mailbox (the benchmark user's) gets the same Exchange contacts.
    _clear_contacts(url)
    seed_exchange(url, USER, ews_records)
    mailbox = "twoway@example.com"
    control.add_user(mailbox, "twoway-secret", display_name="Two-way")
    seed_exchange(url, mailbox, ews_records)
    profile = make_profile(url, "two-way", mailbox)
    seed_crm(profile, crm_records)

    account = _account(url)
    account.contacts.refresh()

    def baseline() -> None:
        # Read what Exchange has, create what only the CRM has, fill the one field each
        # shared contact lacks (the job title, with the identity stamp the write carries),
        # and stamp the contacts only Exchange had.
        found = baseline_read(account)
        baseline_create(account, crm_records[shared:])
        by_address = {c.email_addresses[0].email: c for c in found if c.email_addresses}
        updates = []
        for number, crm in enumerate(crm_records[:shared]):
            contact = by_address.pop(crm.email1)
            contact.job_title = crm.job_title
            contact.sync_stamp = f"crm:0:person:{number}"
            updates.append((contact, ["job_title", "sync_stamp"]))
        account.bulk_update(items=updates, chunk_size=100)
        baseline_stamp(account, list(by_address.values()))

    measured_baseline = timed_baseline(control, baseline)
    _reset_own_peak()
    first = timed_sync(control, profile)
    after, steady = next_runs(control, profile)
    persons = Person.objects.filter(organization_id=profile.organization_id).count()
    in_exchange = control_count(control, mailbox)
    run = first.run
    return result_line(
        "two-way", 2 * each, first, measured_baseline, after, steady=steady, shared=shared,
        expected_linked=shared, expected_crm_created=each - shared,
        expected_remote_created=each - shared, crm_persons=persons,
        exchange_contacts=in_exchange,
        ok=(run.linked == shared and run.crm_created == each - shared
            and run.remote_created == each - shared and run.duplicates == 0
            and persons == 2 * each - shared and in_exchange == 2 * each - shared))


def control_count(control: Any, mailbox: str, distinguished: str = "contacts") -> int:
    """Items in a mailbox's Contacts (or other distinguished) folder, from the simulator's
    own listing (untimed)."""
    for folder in control.call("GET", "folders", {"mailbox": mailbox}):
        if folder["distinguished"] == distinguished:
            return int(folder["total"])
    return -1


def _clear_contacts(url: str) -> None:
    """Empty the benchmark user's Contacts folder (the previous case's baseline wrote there)."""
    account = _account(url)
    ids = [c.id for c in account.contacts.all().only("id")] if account.contacts.total_count \
        else []
    for start in range(0, len(ids), 100):
        account.bulk_delete(ids=[(i, None) for i in ids[start:start + 100]],
                            delete_type="HardDelete")


CASE_FUNCTIONS: dict[str, Callable[[str, Any, int], dict[str, Any]]] = {
    "export": case_export, "import": case_import, "two-way": case_two_way}


def misses(result: dict[str, Any]) -> list[str]:
    """Which targets (and sanity checks) a case's line misses; in a smoke run (the line says
    `"timings_checked": false`) only what does not depend on the machine's speed."""
    name, items = result["benchmark"], result["items"]
    timing = result.get("timings_checked", True)
    out = []
    if timing and result["seconds"] > MAX_SECONDS:
        out.append(f"{name}: {result['seconds']} s > {MAX_SECONDS} s")
    ratio = result["ratio_to_baseline"]
    if timing and (ratio is None or ratio > MAX_RATIO):
        out.append(f"{name}: ratio_to_baseline {ratio} > {MAX_RATIO}")
    limit = backend.max_requests(items, max_requests(items))
    if result["ews_requests"] > limit:
        out.append(f"{name}: {result['ews_requests']} EWS requests > {limit}")
    if result["next_run_requests"] > NEXT_RUN_MAX_REQUESTS:
        out.append(f"{name}: next run {result['next_run_requests']} EWS requests > "
                   f"{NEXT_RUN_MAX_REQUESTS}")
    if timing and result["next_run_seconds"] > NEXT_RUN_MAX_SECONDS:
        out.append(f"{name}: next run {result['next_run_seconds']} s > "
                   f"{NEXT_RUN_MAX_SECONDS} s")
    if result["status"] != "success" or result["errors"] or not result["ok"]:
        out.append(f"{name}: wrong result (status {result['status']}, {result['errors']} "
                   "errors, or counts other than expected)")
    if result["next_run_status"] != "success" or result["next_run_changes"]:
        out.append(f"{name}: the next run was not a no-op")
    if "steady_run_status" in result and (result["steady_run_status"] != "success"
                                          or result["steady_run_changes"]
                                          or result["steady_run_requests"]
                                          > NEXT_RUN_MAX_REQUESTS):
        out.append(f"{name}: the steady (second no-change) run was not a one-request no-op")
    return out


def bench_first_sync(n: int, latency_ms: int, cases: tuple[str, ...] = CASES,
                     check_timings: bool = True) -> list[dict[str, Any]]:
    setup_django()
    results = []
    with simulator(latency_ms) as (url, control, _pid):
        control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        for case in cases:
            result = CASE_FUNCTIONS[case](url, control, n)
            result["timings_checked"] = check_timings
            results.append(result)
    return results
