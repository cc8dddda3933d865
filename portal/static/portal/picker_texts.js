/* Hands the folder picker (profiles/folder_picker.js) its words in the page's language.
 *
 * The admin has Django's JavaScript catalog; the user pages have none (and no inline script,
 * by their Content-Security-Policy), so the page puts the picker's texts, translated on the
 * server, in a JSON element, and this gives them to the picker as window.gettext.
 */
"use strict";
(function () {
    if (typeof window.gettext === "function") {
        return;
    }
    const element = document.getElementById("folder-picker-texts");
    const texts = element ? JSON.parse(element.textContent) : {};
    window.gettext = (text) => texts[text] || text;
})();
