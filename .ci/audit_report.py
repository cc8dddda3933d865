"""Reads pip-audit's JSON report (.ci/audit): prints each known vulnerability and a summary;
exits 1 on any vulnerability, or, with AUDIT_REQUIRED=1, when a package could not be checked."""

import json
import os
import sys

report, status = sys.argv[1], int(sys.argv[2])
try:
    with open(report) as f:
        dependencies = json.load(f)["dependencies"]
except (OSError, ValueError, KeyError) as exc:
    sys.exit(f"dependency audit: pip-audit gave no report (exit {status}): {exc}")
vulnerable = [d for d in dependencies if d.get("vulns")]
skipped = [d for d in dependencies if d.get("skip_reason")]
checked = len(dependencies) - len(skipped)
for dependency in vulnerable:
    for vuln in dependency["vulns"]:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
        print(f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} "
              f"(fixed in {fixed})")
print(f"dependency audit: {checked} of {len(dependencies)} packages checked, "
      f"{len(vulnerable)} with known vulnerabilities, {len(skipped)} not checked")
if vulnerable:
    sys.exit(1)
if skipped:
    reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
    print("  not checked: " + "; ".join(reasons))
    if not checked:
        print("  no package's advisories could be had from here (an offline machine, or a "
              "registry mirror without PyPI's JSON API): nothing was audited "
              "(AUDIT_REQUIRED=1 makes this a failure)")
    if os.environ.get("AUDIT_REQUIRED") == "1":
        sys.exit(1)
