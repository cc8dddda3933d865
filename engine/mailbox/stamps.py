"""The identity stamp as both backends write it (ARCHITECTURE §3, identity stamps): one named
MAPI property of the product's own, so that an item stamped through one backend is found
through the other."""

# A property set of the product's own (lower case: exchangelib compares it as sent).
STAMP_PROPERTY_SET = "b7c1e0d4-2f6a-4e83-9c5d-8a1f3e2b6c47"
STAMP_PROPERTY_NAME = "CrmSyncKey"
