/* The "…" category picker of the sync profile admin.
 *
 * Beside every field marked data-category-list-url (an input holding one Exchange category,
 * or a textarea holding several, one per line: data-category-multiple) it puts a "…" button
 * that lists the mailbox's master category list, live, each category with its colour. A
 * single field takes the category clicked; a multiple one gets a checklist that adds and
 * removes its lines. The field stays editable, and the dialog takes a typed name too: a
 * category the mailbox does not list yet is still one an item may carry. When the list cannot
 * be read, the dialog and a note beside the field say why, and typing goes on as before.
 *
 * The list is asked for with a POST carrying the change form's CSRF token (listing reaches
 * out to the mail server), once per page: the fields share the answer. A failed answer is
 * not kept, so the next "…" asks again.
 */
"use strict";
(function () {
    // The words come from the server with each field (data-category-texts), in the
    // administrator's language from the same catalogue as the rest of the page.
    const say = (field, key) => JSON.parse(field.dataset.categoryTexts || "{}")[key] || key;
    const answers = new Map();   // list URL -> Promise of the JSON answer
    let dialog = null;

    // Exchange compares category names without regard to case.
    const same = (a, b) => a.toLocaleLowerCase() === b.toLocaleLowerCase();
    const isMultiple = (field) => field.dataset.categoryMultiple === "true";

    function chosen(field) {
        const values = isMultiple(field) ? field.value.split(/\r?\n/) : [field.value];
        return values.map((value) => value.trim()).filter(Boolean);
    }

    function setChosen(field, names) {
        field.value = isMultiple(field) ? names.join("\n") : (names[0] || "");
        field.dispatchEvent(new Event("change", {bubbles: true}));
    }

    function toggle(field, name, on) {
        const names = chosen(field).filter((existing) => !same(existing, name));
        if (on) {
            names.push(name);
        }
        setChosen(field, names);
    }

    function addButton(field) {
        if (field.nextElementSibling && field.nextElementSibling.matches(".category-picker-button")) {
            return;
        }
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button category-picker-button";
        button.textContent = "…";
        if (field.dataset.categoryListUrl) {
            button.title = say(field, "choose");
        } else {
            button.disabled = true;
            button.title = field.dataset.categoryHint || "";
        }
        field.after(button);
    }

    function note(button, text) {
        let shown = button.nextElementSibling;
        if (!shown || !shown.matches(".category-picker-note")) {
            if (!text) {
                return;
            }
            shown = document.createElement("span");
            shown.className = "category-picker-note";
            button.after(shown);
        }
        shown.textContent = text;
        shown.hidden = !text;
    }

    function load(url, field) {
        const form = field.form;
        if (!answers.has(url)) {
            // The change form's own token, sent as a form field (see folder_picker.js).
            const token = form.elements.namedItem("csrfmiddlewaretoken");
            const answer = fetch(url, {
                method: "POST", credentials: "same-origin", headers: {Accept: "application/json"},
                body: new URLSearchParams({csrfmiddlewaretoken: token ? token.value : ""}),
            }).then((response) => response.json()).catch(() => ({
                error: say(field, "unreadable"),
            }));
            answers.set(url, answer);
            answer.then((data) => {
                if (data.error) {
                    answers.delete(url);
                }
            });
        }
        return answers.get(url);
    }

    function closeDialog() {
        if (dialog) {
            dialog.close();
            dialog.remove();
            dialog = null;
        }
    }

    function swatch(field, category) {
        const mark = document.createElement("span");
        mark.className = "category-picker-swatch";
        if (category.hex) {
            mark.style.backgroundColor = category.hex;
        } else {
            mark.classList.add("no-colour");
        }
        mark.title = category.color_name || say(field, "no_colour");
        mark.setAttribute("aria-hidden", "true");
        return mark;
    }

    // `unlisted`: a category the field holds that the mailbox's list (read) does not have.
    function entry(field, button, category, unlisted) {
        const item = document.createElement("li");
        item.dataset.category = category.name;
        const name = document.createElement("span");
        name.className = "category-picker-name";
        name.textContent = category.name;
        const parts = [swatch(field, category), name];
        if (unlisted) {
            const mark = document.createElement("span");
            mark.className = "category-picker-unlisted";
            mark.textContent = say(field, "unlisted");
            parts.push(mark);
        }
        const isChosen = chosen(field).some((existing) => same(existing, category.name));
        if (isMultiple(field)) {
            const label = document.createElement("label");
            const box = document.createElement("input");
            box.type = "checkbox";
            box.className = "category-picker-check";
            box.checked = isChosen;
            box.addEventListener("change", () => toggle(field, category.name, box.checked));
            label.append(box, ...parts);
            item.append(label);
        } else {
            const choice = document.createElement("button");
            choice.type = "button";
            choice.className = "category-picker-choice";
            choice.classList.toggle("selected", isChosen);
            choice.append(...parts);
            choice.addEventListener("click", () => {
                setChosen(field, [category.name]);
                closeDialog();
                button.focus();
            });
            item.append(choice);
        }
        return item;
    }

    function typedEntry(field, button, list) {
        const row = document.createElement("p");
        row.className = "category-picker-typed";
        const input = document.createElement("input");
        input.type = "text";
        input.className = "vTextField category-picker-other";
        input.placeholder = say(field, "another");
        input.setAttribute("aria-label", say(field, "another"));
        const add = document.createElement("button");
        add.type = "button";
        add.className = "button category-picker-add";
        add.textContent = isMultiple(field) ? say(field, "add") : say(field, "use");
        const take = () => {
            const name = input.value.trim();
            if (!name) {
                return;
            }
            if (!isMultiple(field)) {
                setChosen(field, [name]);
                closeDialog();
                button.focus();
                return;
            }
            toggle(field, name, true);
            input.value = "";
            const listedAlready = [...list.children].find(
                (item) => same(item.dataset.category, name));
            if (listedAlready) {
                listedAlready.querySelector("input").checked = true;
            } else {
                list.append(entry(field, button, {name, hex: "", color_name: ""},
                                  list.dataset.read === "true"));
            }
        };
        add.addEventListener("click", take);
        input.addEventListener("keydown", (event) => {
            if (event.key === "Enter") {
                event.preventDefault();   // not the change form's submit
                take();
            }
        });
        row.append(input, add);
        return row;
    }

    function openDialog(field, button) {
        closeDialog();
        dialog = document.createElement("dialog");
        dialog.className = "category-picker-dialog";
        const heading = document.createElement("p");
        heading.className = "category-picker-status";
        heading.textContent = say(field, "reading");
        const list = document.createElement("ul");
        list.className = "category-picker-list";
        const close = document.createElement("button");
        close.type = "button";
        close.className = "button category-picker-close";
        close.textContent = say(field, "close");
        close.addEventListener("click", () => {
            closeDialog();
            button.focus();
        });
        dialog.append(heading, list, typedEntry(field, button, list), close);
        dialog.addEventListener("keydown", (event) => {
            if (event.key === "Escape") {
                closeDialog();
                button.focus();
            }
        });
        document.body.append(dialog);
        const box = field.getBoundingClientRect();
        dialog.style.left = `${box.left + window.scrollX}px`;
        dialog.style.top = `${box.bottom + window.scrollY + 4}px`;
        dialog.show();
        return {heading, list};
    }

    function showCategories(parts, field, button, categories) {
        const {heading, list} = parts;
        heading.textContent = categories.length
            ? (isMultiple(field) ? say(field, "choose_several") : say(field, "choose_one"))
            : say(field, "none_listed");
        const listed = new Set(categories.map((category) => category.name.toLocaleLowerCase()));
        list.dataset.read = "true";
        for (const category of categories) {
            list.append(entry(field, button, category, false));
        }
        // What the field holds that the mailbox does not list (yet) stays visible and chosen.
        for (const name of chosen(field)) {
            if (!listed.has(name.toLocaleLowerCase())) {
                list.append(entry(field, button, {name, hex: "", color_name: ""}, true));
            }
        }
        const first = list.querySelector("input, button");
        if (first) {
            first.focus();
        }
    }

    async function pick(button) {
        const field = button.previousElementSibling;
        const url = field && field.dataset.categoryListUrl;
        if (!url) {
            return;
        }
        const parts = openDialog(field, button);
        const shown = dialog;
        const data = await load(url, field);
        if (dialog !== shown) {
            return;   // closed, or another picker opened, while the list was on its way
        }
        if (data.error) {
            parts.heading.textContent = `${data.error} ${say(field, "type_instead")}`;
            parts.heading.classList.add("errornote");
            note(button, `${say(field, "missing")} ${data.error}`);
            dialog.querySelector(".category-picker-other").focus();
            return;
        }
        note(button, "");
        showCategories(parts, field, button, data.categories);
    }

    document.addEventListener("click", (event) => {
        const button = event.target.closest(".category-picker-button");
        if (button) {
            event.preventDefault();
            pick(button);
        }
    });

    document.addEventListener("DOMContentLoaded", () => {
        document.querySelectorAll("[data-category-list-url]").forEach(addButton);
    });
})();
