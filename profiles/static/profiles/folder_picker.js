/* The "…" folder picker of the sync profile admin.
 *
 * Beside every input marked data-folder-kind it puts a "…" button that lists the mailbox's
 * folders of that kind, live, from data-folder-list-url (JSON), as an indented tree. Choosing
 * one fills the path input and its sibling folder_id input (same name, "folder_id" instead of
 * "folder_path"). Clicks are handled by delegation, so rows added with "Add another" (clones
 * of the empty form, button included) work too.
 *
 * The list is asked for with a POST carrying the page's CSRF token: listing reaches out to the
 * mail server, so the server refuses a GET that any other page could set off. On the add page
 * (data-folder-with-form) the POST also carries the form's connection, mailbox and mailbox
 * credentials, since there is no saved profile to read them from.
 */
"use strict";
(function () {
    // The admin's JavaScript catalogue (admin:jsi18n) holds this project's djangojs
    // messages too (locale/); named gettext so that makemessages -d djangojs finds them.
    const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);
    let dialog = null;
    // What the add form's picker sends along (console/admin_setup.py reads the same names).
    const FORM_FIELDS = ["connection", "mailbox", "mailbox_username", "mailbox_secret"];

    function idInputFor(pathInput) {
        const name = pathInput.name.replace(/folder_path$/, "folder_id");
        return pathInput.form ? pathInput.form.elements.namedItem(name) : null;
    }

    function addButton(pathInput) {
        if (pathInput.nextElementSibling && pathInput.nextElementSibling.matches(".folder-picker-button")) {
            return;
        }
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button folder-picker-button";
        button.textContent = "…";
        if (pathInput.dataset.folderListUrl) {
            button.title = gettext("Choose a folder from the mailbox");
        } else {
            button.disabled = true;
            button.title = pathInput.dataset.folderHint || "";
        }
        pathInput.after(button);
    }

    function closeDialog() {
        if (dialog) {
            dialog.close();
            dialog.remove();
            dialog = null;
        }
    }

    function openDialog(button, pathInput) {
        closeDialog();
        dialog = document.createElement("dialog");
        dialog.className = "folder-picker-dialog";
        const heading = document.createElement("p");
        heading.className = "folder-picker-status";
        heading.textContent = gettext("Reading the mailbox's folders…");
        const list = document.createElement("ul");
        list.className = "folder-picker-list";
        const close = document.createElement("button");
        close.type = "button";
        close.className = "button folder-picker-close";
        close.textContent = gettext("Close");
        close.addEventListener("click", closeDialog);
        dialog.append(heading, list, close);
        dialog.addEventListener("keydown", (event) => {
            if (event.key === "Escape") {
                closeDialog();
                button.focus();
            }
        });
        document.body.append(dialog);
        const box = pathInput.getBoundingClientRect();
        dialog.style.left = `${box.left + window.scrollX}px`;
        dialog.style.top = `${box.bottom + window.scrollY + 4}px`;
        dialog.show();
        return {dialog, heading, list};
    }

    function showFolders(parts, pathInput, button, folders) {
        const {heading, list} = parts;
        if (!folders.length) {
            heading.textContent = gettext("The mailbox has no folders of this kind.");
            return;
        }
        heading.textContent = gettext("Choose a folder:");
        const idInput = idInputFor(pathInput);
        for (const folder of folders) {
            const item = document.createElement("li");
            item.style.paddingLeft = `${folder.depth * 1.5}em`;
            const choice = document.createElement("button");
            choice.type = "button";
            choice.className = "folder-picker-choice";
            choice.textContent = folder.name;
            choice.title = folder.path;
            choice.dataset.folderId = folder.id;
            choice.dataset.folderPath = folder.path;
            // A default folder is stored by its well-known name ("calendar"), not its id.
            if ((idInput && idInput.value === folder.id) || pathInput.value === folder.path) {
                choice.classList.add("selected");
            }
            choice.addEventListener("click", () => {
                pathInput.value = folder.path;
                if (idInput) {
                    idInput.value = folder.id;
                }
                pathInput.dispatchEvent(new Event("change", {bubbles: true}));
                closeDialog();
                button.focus();
            });
            item.append(choice);
            if (folder.total !== null && folder.total !== undefined) {
                const count = document.createElement("span");
                count.className = "folder-picker-count";
                count.textContent = ` (${folder.total})`;
                item.append(count);
            }
            list.append(item);
        }
        list.querySelector("button").focus();
    }

    async function pick(button) {
        const pathInput = button.previousElementSibling;
        const url = pathInput && pathInput.dataset.folderListUrl;
        if (!url) {
            return;
        }
        const parts = openDialog(button, pathInput);
        const shown = dialog;
        let data;
        try {
            // The change form's own token, sent as a form field: it works whatever the CSRF
            // settings (the cookie is unreadable with CSRF_COOKIE_HTTPONLY, absent with
            // CSRF_USE_SESSIONS; the header's name is a setting too).
            const token = pathInput.form.elements.namedItem("csrfmiddlewaretoken");
            const body = new URLSearchParams({csrfmiddlewaretoken: token ? token.value : ""});
            if (pathInput.dataset.folderWithForm) {
                // A profile not saved yet: its folders are those of the mailbox the form
                // names so far, reached through the form's connection and credentials.
                for (const name of FORM_FIELDS) {
                    const field = pathInput.form.elements.namedItem(name);
                    if (field && field.value) {
                        body.append(name, field.value);
                    }
                }
            }
            const response = await fetch(url, {
                method: "POST", credentials: "same-origin", headers: {Accept: "application/json"},
                body,
            });
            data = await response.json();
        } catch (error) {
            data = {error: gettext("The folder list could not be read from this server.")};
        }
        if (dialog !== shown) {
            return;   // closed, or another picker opened, while the list was on its way
        }
        if (data.error) {
            parts.heading.textContent = data.error;
            parts.heading.classList.add("errornote");
            return;
        }
        showFolders(parts, pathInput, button, data.folders);
    }

    document.addEventListener("click", (event) => {
        const button = event.target.closest(".folder-picker-button");
        if (button) {
            event.preventDefault();
            pick(button);
        }
    });

    document.addEventListener("DOMContentLoaded", () => {
        document.querySelectorAll("input[data-folder-kind]").forEach(addButton);
    });
})();
