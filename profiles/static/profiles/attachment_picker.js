/* The "…" picker of the attachment directory (sync profile admin, e-mail import settings).
 *
 * Like the desktop tool's "Browse for folder" dialog: it lists the organization's approved
 * attachment roots, opens a folder to list its subfolders, creates a new folder in the one
 * shown ("Folder:" name, "Create folder") and fills the input with the folder chosen. The
 * server decides what may be listed and created (console/attachment_picker.py); this page
 * only shows its answers. Every request is a POST with the change form's CSRF token.
 */
"use strict";
(function () {
    // Named gettext so that makemessages -d djangojs finds the messages (locale/).
    const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
    let dialog = null;

    function element(tag, className, text) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        if (text !== undefined) {
            node.textContent = text;
        }
        return node;
    }

    function button(className, text) {
        const node = element("button", `button ${className}`, text);
        node.type = "button";
        return node;
    }

    function addButton(input) {
        if (input.nextElementSibling && input.nextElementSibling.matches(".attachment-picker-button")) {
            return;
        }
        const open = button("attachment-picker-button", "…");
        if (input.dataset.attachmentListUrl) {
            open.title = gettext("Choose or create a folder on the share");
        } else {
            open.disabled = true;
            open.title = input.dataset.attachmentHint || "";
        }
        input.after(open);
    }

    async function post(url, input, fields) {
        const token = input.form.elements.namedItem("csrfmiddlewaretoken");
        try {
            const response = await fetch(url, {
                method: "POST", credentials: "same-origin", headers: {Accept: "application/json"},
                body: new URLSearchParams({...fields, csrfmiddlewaretoken: token ? token.value : ""}),
            });
            return await response.json();
        } catch (error) {
            return {error: gettext("The server could not be reached.")};
        }
    }

    function closeDialog() {
        if (dialog) {
            dialog.close();
            dialog.remove();
            dialog = null;
        }
    }

    function openDialog(input, opener) {
        closeDialog();
        dialog = element("dialog", "attachment-picker-dialog");
        const parts = {
            location: element("p", "attachment-picker-location"),
            error: element("p", "attachment-picker-error errornote"),
            list: element("ul", "attachment-picker-list"),
            name: element("input", "attachment-picker-name"),
            create: button("attachment-picker-create", gettext("Create folder")),
            choose: button("attachment-picker-choose default", gettext("Choose this folder")),
            close: button("attachment-picker-close", gettext("Close")),
            path: "",
        };
        hideError(parts);
        parts.name.type = "text";
        parts.name.maxLength = 150;
        const label = element("label", "attachment-picker-label", gettext("Folder:"));
        label.append(" ", parts.name);
        const creating = element("div", "attachment-picker-new");
        creating.append(label, " ", parts.create);
        const actions = element("div", "attachment-picker-actions");
        actions.append(parts.choose, " ", parts.close);
        dialog.append(parts.location, parts.error, parts.list, creating, actions);
        parts.close.addEventListener("click", () => {
            closeDialog();
            opener.focus();
        });
        parts.choose.addEventListener("click", () => {
            input.value = parts.path;
            input.dispatchEvent(new Event("change", {bubbles: true}));
            closeDialog();
            opener.focus();
        });
        parts.create.addEventListener("click", async () => {
            const data = await post(input.dataset.attachmentCreateUrl, input,
                                    {parent: parts.path, name: parts.name.value});
            if (data.error) {
                showError(parts, data.error);
                return;
            }
            parts.name.value = "";
            show(parts, input, data.path);
        });
        parts.name.addEventListener("keydown", (event) => {
            if (event.key === "Enter") {   // not the change form's submit
                event.preventDefault();
                parts.create.click();
            }
        });
        dialog.addEventListener("keydown", (event) => {
            if (event.key === "Escape") {
                closeDialog();
                opener.focus();
            }
        });
        document.body.append(dialog);
        const box = input.getBoundingClientRect();
        dialog.style.left = `${box.left + window.scrollX}px`;
        dialog.style.top = `${box.bottom + window.scrollY + 4}px`;
        dialog.show();
        return parts;
    }

    // Through the style: the admin's .errornote rule would override a `hidden` attribute.
    function showError(parts, message) {
        parts.error.textContent = message;
        parts.error.style.display = "";
    }

    function hideError(parts) {
        parts.error.textContent = "";
        parts.error.style.display = "none";
    }

    async function show(parts, input, path) {
        const shown = dialog;
        parts.location.textContent = gettext("Reading the folders…");
        const data = await post(input.dataset.attachmentListUrl, input, {path});
        if (dialog !== shown) {
            return;   // closed while the answer was on its way
        }
        hideError(parts);
        if (data.error) {
            showError(parts, data.error);
            parts.location.textContent = parts.path || gettext("Approved attachment folders");
            return;
        }
        parts.path = data.path;
        parts.location.textContent = data.path || gettext("Approved attachment folders");
        parts.list.replaceChildren();
        if (data.parent !== null) {
            const up = button("attachment-picker-up", gettext("↑ Up"));
            up.addEventListener("click", () => show(parts, input, data.parent));
            const item = element("li");
            item.append(up);
            parts.list.append(item);
        }
        for (const folder of data.folders) {
            const open = button("attachment-picker-folder", folder.name);
            open.title = folder.path;
            open.dataset.path = folder.path;
            open.addEventListener("click", () => show(parts, input, folder.path));
            const item = element("li");
            item.append(open);
            parts.list.append(item);
        }
        if (!data.folders.length) {
            parts.list.append(element("li", "attachment-picker-empty", gettext("No subfolders.")));
        }
        // At the list of roots there is no folder to choose or to create a folder in.
        const inside = Boolean(data.path);
        parts.choose.disabled = !inside;
        parts.create.disabled = !inside;
        parts.name.disabled = !inside;
    }

    document.addEventListener("click", (event) => {
        const opener = event.target.closest(".attachment-picker-button");
        if (!opener) {
            return;
        }
        event.preventDefault();
        const input = opener.previousElementSibling;
        if (!input || !input.dataset.attachmentListUrl) {
            return;
        }
        const parts = openDialog(input, opener);
        // Start where the input points, if it is inside the roots; else at the roots.
        show(parts, input, input.value).then(() => {
            if (parts.error.textContent && input.value) {
                show(parts, input, "");
            }
        });
    });

    document.addEventListener("DOMContentLoaded", () => {
        document.querySelectorAll("input.attachment-picker-path").forEach(addButton);
    });
})();
