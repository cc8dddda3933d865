"""What each synced agenda says (scope, fields, matching, how records look on each side),
handed to the two-way sync (engine/run/) as a rules object."""
