"""POST data for the sync profile admin page, with every inline's management form."""

from __future__ import annotations

from typing import Any

from profiles.models import SyncProfile


def _management(prefix: str, total: int, initial: int) -> dict[str, Any]:
    return {
        f"{prefix}-TOTAL_FORMS": total,
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }


def profile_form_data(
    *,
    profile: SyncProfile | None = None,
    organization_id: int | None,
    user_id: int,
    crm_user_id: int,
    connection_id: int,
    mailbox: str,
    calendar: dict[str, Any] | None = None,
    contacts: dict[str, Any] | None = None,
    mail: dict[str, Any] | None = None,
    pairings: list[tuple[int, str]] = (),  # type: ignore[assignment]
    mail_folders: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    existing = 1 if profile is not None else 0
    data: dict[str, Any] = {
        "mailbox": mailbox,
        "user": user_id,
        "crm_user": crm_user_id,
        "connection": connection_id,
        "active": "on",
        "mailbox_username": "",
        "mailbox_secret": "",
        "interval_minutes": 10,
        "sync_calendar": "on",
        "sync_contacts": "on",
        "conflict_policy": "newest",
        "mass_delete_min_items": 20,
        "mass_delete_min_percent": 10,
        "mass_create_min_items": 50,
    }
    if organization_id is not None:
        data["organization"] = organization_id

    def agenda(prefix: str, values: dict[str, Any], defaults: dict[str, Any]) -> None:
        data.update(_management(prefix, 1, existing))
        if profile is not None:
            settings = getattr(profile, prefix)
            data[f"{prefix}-0-id"] = settings.id
            data[f"{prefix}-0-profile"] = profile.id
        for key, value in {**defaults, **values}.items():
            if value is True:
                data[f"{prefix}-0-{key}"] = "on"
            elif value is not False and value is not None:
                data[f"{prefix}-0-{key}"] = value

    agenda("calendarsettings", calendar or {}, {
        "direction": "two_way", "days_past": 14, "days_future": 31,
        "folder_id": "calendar", "folder_path": "Calendar", "scope": "all",
        "skip_private": False, "link_attendees": True, "link_attendee_companies": False,
        "deletion_policy": "propagate", "default_category": "", "imported_status": "",
    })
    agenda("contactsettings", contacts or {}, {
        "direction": "two_way", "folder_id": "contacts", "folder_path": "Contacts",
        "only_categories": "", "scope": "owned", "classification_node": "",
        "deletion_policy": "unlink",
    })
    agenda("mailsettings", mail or {}, {
        "received_within_days": 31, "unmatched": "keep", "save_attachments": False,
        "attachment_directory": "", "attachment_category": "Příloha",
        "attachment_types": "doc;docx;xls;xlsx;pdf;jpg;jpeg;txt;png", "max_attachment_mb": 50,
    })
    data.update(_management("category_pairings", len(pairings), 0))
    for index, (category_id, exchange_category) in enumerate(pairings):
        data[f"category_pairings-{index}-crm_category"] = category_id
        data[f"category_pairings-{index}-exchange_category"] = exchange_category
    data.update(_management("mail_folders", len(mail_folders), 0))
    for index, (folder_id, folder_path) in enumerate(mail_folders):
        data[f"mail_folders-{index}-folder_id"] = folder_id
        data[f"mail_folders-{index}-folder_path"] = folder_path
    return data
