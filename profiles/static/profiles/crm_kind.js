// The CRM connection form shows the settings of the chosen kind of CRM only. The server keeps
// the chosen kind's values and ignores the others (console/admin_crm.py CrmConnectionForm),
// so this is only about sight.
"use strict";

(function () {
  function showOnly(form) {
    const kind = form.querySelector("#id_kind");
    if (!kind) {
      return;   // shown read-only
    }
    form.querySelectorAll("fieldset.crm-kind-fields").forEach((set) => {
      set.hidden = !set.classList.contains("crm-kind-" + kind.value);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("crmconnection_form");
    if (!form) {
      return;
    }
    showOnly(form);
    form.addEventListener("change", (event) => {
      if (event.target.id === "id_kind") {
        showOnly(form);
      }
    });
  });
})();
