// The mailbox connection form shows only what applies to the chosen kind: Exchange Online
// (Microsoft Graph) hides the EWS URL and the NTLM/basic sign-in, Exchange Server (EWS) hides
// the Graph fields, and the Entra ID app's fields show only where OAuth is used. The server
// ignores what does not apply (console/forms.py ConnectionForm), so this is only about sight.
"use strict";

(function () {
  function showOnly(form) {
    const kind = form.querySelector("#id_kind");
    if (!kind) {
      return;   // shown read-only
    }
    const auth = form.querySelector("#id_auth_type");
    const graph = kind.value === "graph";
    const oauth = graph || (auth !== null && auth.value === "oauth2");
    form.querySelectorAll("fieldset.connection-kind-ews").forEach((set) => {
      set.hidden = graph;
    });
    form.querySelectorAll("fieldset.connection-kind-graph").forEach((set) => {
      set.hidden = !graph;
    });
    form.querySelectorAll("fieldset.connection-oauth").forEach((set) => {
      set.hidden = !oauth;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("mailboxconnection_form");
    if (!form) {
      return;
    }
    showOnly(form);
    form.addEventListener("change", (event) => {
      if (event.target.id === "id_kind" || event.target.id === "id_auth_type") {
        showOnly(form);
      }
    });
  });
})();
