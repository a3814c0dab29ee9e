// Small behaviours htmx does not cover: dialogs, copy, reveal, two-step delete, errors.
"use strict";

// 4xx answers carry a message to show (the server retargets them); 5xx and network
// failures are reported by the handlers below.
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[23]..", swap: true },
  { code: "4..", swap: true, error: true },
  { code: "...", swap: false, error: true },
];

function openDialog(id) {
  const dialog = document.getElementById(id);
  if (!dialog) return;
  const error = dialog.querySelector("[role=alert]");
  if (error) error.textContent = "";
  dialog.showModal();
  const first = dialog.querySelector("input:not([type=hidden])");
  if (first) first.focus();
}

function setCopyStatus(targetId, message) {
  document.querySelectorAll(`[data-copy-status-for="${targetId}"]`).forEach((el) => {
    el.textContent = message;
  });
}

async function copyFrom(button, targetId) {
  const source = document.getElementById(targetId);
  // A masked secret keeps its value in data-secret; the copy is the real thing.
  const text = (source.dataset.secret || source.textContent).trim();
  try {
    await navigator.clipboard.writeText(text);
    setCopyStatus(targetId, "Copied to the clipboard.");
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  } catch (_) {
    // Clipboard refused (permissions, insecure origin): select it for a manual copy.
    if (source.dataset.secret) revealSecret(source, true);
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    setCopyStatus(targetId, "Couldn't copy automatically. The text is selected: press Ctrl+C (⌘C on a Mac).");
  }
}

function revealSecret(code, show) {
  code.textContent = show ? code.dataset.secret : "whsec_••••••••••••";
  code.dataset.masked = show ? "false" : "true";
  const button = code.parentElement.querySelector("[data-toggle-secret]");
  button.textContent = show ? "Hide" : "Show";
  button.setAttribute("aria-pressed", show ? "true" : "false");
}

function toggleStart(button) {
  const code = button.parentElement.querySelector("code[data-start]");
  const masked = code.dataset.masked === "true";
  code.textContent = masked ? `${code.dataset.start}…` : `${code.dataset.start.slice(0, 3)}•••••…`;
  code.dataset.masked = masked ? "false" : "true";
  button.textContent = masked ? "Hide" : "Show";
  button.setAttribute("aria-pressed", masked ? "true" : "false");
}

function showDeleteConfirm(row, confirming) {
  row.querySelector("[data-delete-start]").hidden = confirming;
  row.querySelector(".confirm").hidden = !confirming;
  row.querySelector(".row-error").textContent = "";
  const focus = confirming ? row.querySelector(".confirm button") : row.querySelector("[data-delete-start]");
  focus.focus();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.dataset.openDialog) openDialog(target.dataset.openDialog);
  else if (target.hasAttribute("data-close-dialog")) target.closest("dialog").close();
  else if (target.dataset.copyTarget) copyFrom(target, target.dataset.copyTarget);
  else if (target.dataset.copyValue) copyFrom(target, target.dataset.copyValue);
  else if (target.hasAttribute("data-toggle-secret")) {
    const code = target.parentElement.querySelector("code[data-secret]");
    revealSecret(code, code.dataset.masked === "true");
  }
  else if (target.hasAttribute("data-toggle-start")) toggleStart(target);
  else if (target.hasAttribute("data-dismiss-banner")) target.closest(".secret-banner").remove();
  else if (target.hasAttribute("data-delete-start")) showDeleteConfirm(target.closest("tr"), true);
  else if (target.hasAttribute("data-delete-cancel")) showDeleteConfirm(target.closest("tr"), false);
});

document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (form.hasAttribute("data-dialog-form") && event.detail.successful) {
    form.reset();
    form.closest("dialog").close();
  }
});

function reportFailure(event) {
  // A 4xx carries its own message, already swapped in where the server pointed it.
  const status = event.detail.xhr ? event.detail.xhr.status : 0;
  if (status >= 400 && status < 500) return;
  const elt = event.detail.elt;
  const row = elt.closest("[data-key-row]");
  if (row) {
    row.querySelector(".row-error").textContent = row.dataset.rowError || "Couldn't delete this key; it still works. Try again.";
    return;
  }
  const dialogError = elt.closest("dialog")?.querySelector("[role=alert]");
  if (dialogError) {
    dialogError.innerHTML = '<p class="alert alert-error"></p>';
    dialogError.firstChild.textContent = "The server didn't answer. Try again.";
    return;
  }
  if (elt.dataset.loadError) {
    const banner = document.createElement("p");
    banner.className = "alert alert-error";
    banner.setAttribute("role", "alert");
    banner.textContent = elt.dataset.loadError;
    elt.replaceChildren(banner);
  }
}

document.addEventListener("htmx:responseError", reportFailure);
document.addEventListener("htmx:sendError", reportFailure);
